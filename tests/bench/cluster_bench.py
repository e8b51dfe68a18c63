#!/usr/bin/env python3
"""radroute cluster mode benchmark (issue 13 "Measure"): one run, three parts, one Markdown table each.

  a  single node on PostgreSQL ([cluster]) vs single node on the local spool (no [cluster]):
     10 MB CR (cr-unc), 1 and 4 senders, classification off (path e) and on (path d, models/bodypart):
     images/s and the ratio PostgreSQL / local (goal >= 0.5x).
  b  two nodes behind HAProxy vs one node behind the same HAProxy, both on PostgreSQL, 4 and 8 senders;
     then the paper model: per-instance costs measured on the one-node runs (WAL bytes and table
     bytes written to PostgreSQL, statements and commits, CPU seconds of radroute and of postgres) and
     the node count at which PostgreSQL (CPU or disk bandwidth) becomes the limit.
  c  failover: two nodes behind HAProxy, the PACS down, a stream of retrying senders, kill -9 of one
     node mid-stream (its local directory deleted), the PACS started: time from the kill to the first
     job or received instance of the dead node taken over by the survivor, and acknowledged
     instances lost (every SOP Instance UID storescu saw acknowledged must reach the PACS).

Everything runs on this machine: its own PostgreSQL 15 (initdb + pg_ctl in a temporary directory,
PostgreSQL's durable defaults: fsync, synchronous_commit, full_page_writes on; pg_stat_statements
loaded), HAProxy (TCP mode, /readyz health checks, as tests/src/haproxy.rs and
deploy/cluster/haproxy.cfg), the fair sink and senders of tests/bench/bench.py (storescp --fork with
the generated profile, TCP_NODELAY, PDU 131072), whose helpers and measurement loop this script
imports unchanged. Medians of --reps repetitions (repetitions outermost).

Usage (from the repository root; tests/bench/cluster.sh builds radroute and picks the venv):
  tests/bench/cluster.sh --quick      # smoke run, < 2 min
  tests/bench/cluster.sh              # full run (~15 min on 2 cores)
Results: <out>/cluster-<UTC time>/{results.md,results.csv,runs/...}.
"""
import argparse
import csv
import datetime as dt
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (the single-node harness: corpus, sink, senders, measure loop)

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
HAPROXY = next((p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.path.exists(p)), "haproxy")


def log(msg):
    B.log(msg)


def free_port(base=24000):
    """A free port from a range apart from bench.py's (its rotation uses base..base+400)."""
    for p in range(base, base + 2000):
        if p not in free_port.used and B.bindable(p):
            free_port.used.add(p)
            return p
    raise RuntimeError("no free port from %d" % base)


free_port.used = set()


# ----------------------------------------------------------------------------------- PostgreSQL
class Postgres:
    """A throw-away PostgreSQL 15 server in `root` (as radroute-testkit starts it: as root the
    server runs as user postgres), with PostgreSQL's durable defaults."""

    def __init__(self, root):
        self.root, self.data = root, os.path.join(root, "data")
        self.port = free_port(25400)
        self.as_root = os.geteuid() == 0
        os.makedirs(self.data)
        os.chmod(self.data, 0o700)
        if self.as_root:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(self.data, "postgres", "postgres")
        self.run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync"])
        opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 "
                "-c shared_preload_libraries=pg_stat_statements"
                % (self.port, self.data))
        self.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w", "-t", "60", "-l",
                  os.path.join(root, "postgres.log"), "-o", opts, "start"])
        self.n_db = 0

    def run(self, argv):
        if self.as_root:
            line = " ".join("'%s'" % a.replace("'", "'\\''") for a in argv)
            argv = ["su", "postgres", "-s", "/bin/sh", "-c", line]
        r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s%s" % (argv, r.stdout, r.stderr))
        return r.stdout

    def sql(self, db, query):
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                            "postgres", "-d", db, "-AtqX", "-v", "ON_ERROR_STOP=1", "-c", query],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql %s: %s" % (query[:60], r.stderr.strip()))
        return r.stdout.strip()

    def new_database(self):
        """A fresh database (every measurement starts empty) with pg_stat_statements."""
        self.n_db += 1
        name = "bench%d" % self.n_db
        self.sql("postgres", "CREATE DATABASE %s" % name)
        self.sql(name, "CREATE EXTENSION pg_stat_statements")
        return name

    def drop_database(self, db):
        """Frees the disk of a finished measurement (10 MB and more per instance)."""
        try:
            self.sql("postgres", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        except RuntimeError as e:
            log("drop database %s: %s" % (db, e))

    def url(self, db):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def postmaster(self):
        return int(open(os.path.join(self.data, "postmaster.pid")).readline())

    def pids(self):
        """The postmaster and its children (backends, WAL writer, checkpointer, ...)."""
        root = self.postmaster()
        out = [root]
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if int(open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1]) == root:
                        out.append(int(p))
                except (OSError, ValueError, IndexError):
                    pass
        return out

    def cpu_s(self):
        """CPU seconds of the server: live processes, plus the postmaster's reaped children."""
        return sum(B.proc_cpu_s(p) or 0 for p in self.pids())

    def snapshot(self, db):
        """Cumulative counters: WAL bytes, commits, statements (pg_stat_statements, without this
        script's own queries), database size, server CPU seconds."""
        wal = self.sql(db, "SELECT wal_bytes FROM pg_stat_wal")
        commits = self.sql(db, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        stmts = self.sql(db, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d "
                             "ON d.oid = s.dbid WHERE d.datname = current_database() AND s.query NOT ILIKE "
                             "'%pg\\_stat%' AND s.query NOT ILIKE '%pg\\_database%'")
        size = self.sql(db, "SELECT pg_database_size(current_database())")
        return dict(wal=float(wal), commits=float(commits), statements=float(stmts), size=float(size),
                    cpu=self.cpu_s(), t=time.time())

    def stop(self):
        try:
            self.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"])
        except RuntimeError as e:
            log("postgres stop: %s" % e)


def idle_rates(a, server, res, secs=5.0):
    """Background cost of one idle cluster node (heartbeats, polling) per second: commits,
    statements, postgres and radroute CPU, so that the per-instance figures can be read net of it."""
    db = server.new_database()
    n = Node(a, os.path.join(res, "runs", "idle"), "idle", free_port(), False, (server.url(db), "idle", None))
    try:
        n.start()
        time.sleep(2)
        s0, c0 = server.snapshot(db), n.cpu_s()
        time.sleep(secs)
        s1, c1 = server.snapshot(db), n.cpu_s()
        dt_s = s1["t"] - s0["t"]
        return dict(commits=(s1["commits"] - s0["commits"]) / dt_s,
                    statements=(s1["statements"] - s0["statements"]) / dt_s,
                    pg_cpu=(s1["cpu"] - s0["cpu"]) / dt_s, rr_cpu=(c1 - c0) / dt_s)
    except Exception as e:  # noqa: BLE001 - informational
        log("idle rates: %s" % e)
        return None
    finally:
        n.stop()
        server.drop_database(db)


def disk_write_mb_s(d, mb=256):
    """Sequential write bandwidth of the disk under `d` (1 MiB writes, then fsync), MB/s."""
    path = os.path.join(d, "ddprobe")
    buf = os.urandom(1 << 20)
    t0 = time.time()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mb):
            os.write(fd, buf)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.remove(path)
    return mb * 1.048576 / (time.time() - t0)


# ----------------------------------------------------------------------------------- radroute
def node_config(a, d, port, admin, sink_port, classify, cluster=None, extra=""):
    """radroute.toml from bench.py's template (everything else radroute's defaults), plus
    `[cluster]` when `cluster` = (url, node_id, takeover_secs) is given."""
    spool = os.path.join(d, "spool")
    os.makedirs(spool, exist_ok=True)
    section = ""
    if classify:
        section = open(os.path.join(B.CONFIGS, "classify.toml.in")).read().format(model_dir=a.model)
    body = open(os.path.join(B.CONFIGS, "radroute.toml.in")).read()
    for k, v in (("port", port), ("admin_port", admin), ("sink_port", sink_port), ("spool", spool),
                 ("classify", section)):
        body = body.replace("{%s}" % k, str(v))
    if cluster:
        url, node_id, takeover = cluster
        body += "\n[cluster]\npostgres = %s\nnode_id = %s\n" % (json.dumps(url), json.dumps(node_id))
        if takeover is not None:
            body += "takeover_after_secs = %d\nheartbeat_secs = %d\n" % (takeover, max(1, min(5, takeover // 5)))
    body += extra
    path = os.path.join(d, "radroute.toml")
    open(path, "w").write(body)
    return path


class Node:
    """One radroute process."""

    def __init__(self, a, d, name, sink_port, classify, cluster=None, extra="", port=None, admin=None):
        os.makedirs(d, exist_ok=True)
        self.a, self.dir, self.name = a, d, name
        self.port, self.admin = port or free_port(), admin or free_port()
        self.config = node_config(a, d, self.port, self.admin, sink_port, classify, cluster, extra)
        self.log = os.path.join(d, "radroute.log")
        self.proc = None

    def start(self):
        env = {"ORT_DYLIB_PATH": self.a.ort_dylib} if self.a.ort_dylib else {}
        env["RUST_LOG"] = os.environ.get("BENCH_RUST_LOG", os.environ.get("RUST_LOG", "info"))
        self.proc = B.spawn([self.a.radroute, "serve", "--config", self.config], self.log, env=env)
        B.wait_port(self.port, self.proc, "radroute %s" % self.name)
        t0 = time.time()
        while True:
            try:
                B.http_get(self.admin, "/readyz")
                return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.time() - t0 > 60:
                    raise RuntimeError("radroute %s not ready: %s" % (self.name, tail(self.log)))
                time.sleep(0.1)

    def cpu_s(self):
        return B.proc_cpu_s(self.proc.pid) if self.proc else None

    def metrics(self):
        try:
            return B.http_get(self.admin, "/metrics")
        except (urllib.error.URLError, OSError):
            return ""

    def kill9(self):
        os.killpg(self.proc.pid, 9)
        self.proc.wait(10)

    def stop(self):
        B.stop(self.proc)


def tail(path, n=15):
    try:
        return "\n".join(open(path, errors="replace").read().splitlines()[-n:])
    except OSError:
        return ""


class HaProxy:
    """HAProxy in TCP mode in front of `nodes`, health checks on /readyz (tests/src/haproxy.rs)."""

    def __init__(self, d, port, nodes):
        os.makedirs(d, exist_ok=True)
        cfg = ["global", "  maxconn 2000", "", "defaults", "  mode tcp", "  timeout connect 2s",
               "  timeout client 120s", "  timeout server 120s", "  timeout check 2s", "  retries 2",
               "  option redispatch", "", "frontend dicom", "  bind 127.0.0.1:%d" % port,
               "  default_backend radroute", "", "backend radroute", "  balance roundrobin",
               "  option httpchk GET /readyz", "  http-check expect status 200",
               "  default-server inter 500ms fall 2 rise 2"]
        cfg += ["  server %s 127.0.0.1:%d check port %d" % (n.name, n.port, n.admin) for n in nodes]
        path = os.path.join(d, "haproxy.cfg")
        open(path, "w").write("\n".join(cfg) + "\n")
        self.port = port
        self.proc = B.spawn([HAPROXY, "-f", path, "-db"], os.path.join(d, "haproxy.log"))
        B.wait_port(port, self.proc, "haproxy")
        time.sleep(1.2)      # two health checks: every node in the rotation

    def stop(self):
        B.stop(self.proc)


# ------------------------------------------------------------------ parts a and b: bench.measure
class Topology:
    """What the next bench.measure() runs as its router (set before each call)."""
    pg = False        # [cluster] on the shared PostgreSQL server
    nodes = 1
    lb = False        # behind HAProxy
    server = None     # Postgres
    last = None       # the ClusterRouter of the last measurement (its costs)


class ClusterRouter(B.Router):
    """bench.Router for paths d/e whose middle hop is `Topology`: one or two radroute nodes, on
    the local spool or on PostgreSQL, directly or behind HAProxy. Records per-run costs."""

    def start_radroute(self, classify):
        Topology.last = self
        self.nodes, self.lb, self.db, self.costs = [], None, None, {}
        cluster = None
        if Topology.pg:
            self.db = Topology.server.new_database()
        for k in range(Topology.nodes):
            if Topology.pg:
                cluster = (Topology.server.url(self.db), "n%d" % (k + 1), None)
            direct = not Topology.lb and k == 0
            n = Node(self.a, os.path.join(self.dir, "n%d" % (k + 1)), "n%d" % (k + 1), self.ports["sink"],
                     classify, cluster, port=self.ports["router"] if direct else None,
                     admin=self.ports["admin"] if k == 0 else None)
            n.start()
            self.nodes.append(n)
        if Topology.lb:
            self.lb = HaProxy(os.path.join(self.dir, "haproxy"), self.ports["router"], self.nodes)
        self.proc = self.nodes[0].proc
        self.port, self.aet = self.ports["router"], "RADROUTE"
        self.cpu0 = [n.cpu_s() for n in self.nodes]
        self.pg0 = Topology.server.snapshot(self.db) if self.db else None

    def finish(self):
        if not getattr(self, "nodes", None):
            return
        self.info["hwm"] = B.proc_status(self.proc.pid, "VmHWM")
        self.costs["radroute_cpu_s"] = sum((n.cpu_s() or 0) - (c or 0) for n, c in zip(self.nodes, self.cpu0))
        self.info["cpu_s"] = self.costs["radroute_cpu_s"]
        m = self.nodes[0].metrics()
        if m:
            open(os.path.join(self.dir, "metrics.txt"), "w").write(m)
            self.info["metrics"] = m
        if self.db:
            pg1 = Topology.server.snapshot(self.db)
            for k in ("wal", "commits", "statements", "size", "cpu"):
                self.costs["pg_" + k] = pg1[k] - self.pg0[k]
            self.costs["instances"] = float(Topology.server.sql(self.db, "SELECT count(*) FROM instances"))
            # which statements: the top 20 by calls (pg_stat_statements), for the round-trip count
            top = Topology.server.sql(self.db, "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) "
                                      "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE "
                                      "d.datname = current_database() ORDER BY calls DESC LIMIT 20")
            open(os.path.join(self.dir, "statements.txt"), "w").write(top + "\n")
        # bench.measure reads radroute.log of the run directory (log timings): node 1's
        try:
            shutil.copy(self.nodes[0].log, os.path.join(self.dir, "radroute.log"))
        except OSError:
            pass
        if self.lb:
            self.lb.stop()
        for n in self.nodes:
            n.stop()
            if not self.a.keep:
                shutil.rmtree(os.path.join(n.dir, "spool"), ignore_errors=True)
        if self.db and not self.a.keep:
            Topology.server.drop_database(self.db)


B.Router = ClusterRouter     # bench.measure builds its router by this name


def run_measure(a, corpus, items, profile, label, path, conc, rep, res, ports):
    run_dir = os.path.join(res, "runs", "%s-c%d-%s-r%d" % (label, conc, path, rep))
    subprocess.run(["sync"])
    time.sleep(1)
    Topology.last = None
    try:
        r = B.measure(a, corpus, items, profile, path, conc, run_dir, ports)
    except Exception as e:  # noqa: BLE001 - one failed run must not end the others
        log("%s c=%d %s: ERROR %s" % (label, conc, path, e))
        r = dict(note="ERROR: %s" % e)
    if Topology.last is not None:
        r.update(Topology.last.costs)
        if Topology.last.lb is not None:
            r["haproxy"] = True
    r.update(label=label, path=path, conc=conc, rep=rep)
    log("%-10s c=%d %s r%d: %s/%s delivered, %s img/s, p50 %s ms, p99 %s ms%s" % (
        label, conc, path, rep, r.get("delivered"), r.get("offered"), r.get("images_per_s"), r.get("p50_ms"),
        r.get("p99_ms"), " " + r["note"] if r.get("note") else ""))
    return r


def median_row(raw, **key):
    reps = [r for r in raw if all(r.get(k) == v for k, v in key.items())]
    ok = sorted([r for r in reps if r.get("images_per_s")], key=lambda r: r["images_per_s"])
    if not ok:
        return None, reps
    return ok[len(ok) // 2], reps


def med(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def fmt(v, nd=1):
    return B.fmt(v, nd)


def cell(raw, **key):
    row, reps = median_row(raw, **key)
    if row is None:
        return None, "–" if not reps else "failed"
    runs = ", ".join(fmt(r.get("images_per_s")) for r in reps)
    bad = [r for r in reps if r.get("delivered") != r.get("offered")]
    note = "" if not bad else " (%d runs not all delivered)" % len(bad)
    return row["images_per_s"], "%s (%s)%s" % (fmt(row["images_per_s"]), runs, note)


def table_a(raw, a):
    out = ["### a. Single node: PostgreSQL ([cluster]) vs local spool", "",
           "| senders | classification | local spool img/s (runs) | PostgreSQL img/s (runs) | ratio PG/local | goal |",
           "|---:|---|---|---|---:|---|"]
    for conc in a.conc_a:
        for path in a.paths_a:
            lv, lt = cell(raw, label="local", path=path, conc=conc)
            pv, pt = cell(raw, label="pg", path=path, conc=conc)
            ratio = pv / lv if lv and pv else None
            out.append("| %d | %s | %s | %s | %s | %s |" % (
                conc, "on" if path == "d" else "off", lt, pt, fmt(ratio, 2) + "x" if ratio else "–",
                ("met" if ratio >= 0.5 else "NOT met") + " (≥ 0.5x)" if ratio else "–"))
    return "\n".join(out)


def table_b(raw, a):
    out = ["### b. Two nodes vs one node, both behind HAProxy, both on PostgreSQL (classification off)", "",
           "| senders | 1 node img/s (runs) | 2 nodes img/s (runs) | ratio 2/1 |", "|---:|---|---|---:|"]
    for conc in a.conc_b:
        v1, t1 = cell(raw, label="lb1", path="e", conc=conc)
        v2, t2 = cell(raw, label="lb2", path="e", conc=conc)
        out.append("| %d | %s | %s | %s |" % (conc, t1, t2, fmt(v2 / v1, 2) + "x" if v1 and v2 else "–"))
    out += ["", "Both nodes, HAProxy, PostgreSQL, the sink and the senders share this machine's %d cores: "
            "the ratio is not evidence of scaling (see the model below)." % os.cpu_count()]
    return "\n".join(out)


def costs(raw, label, path, conc):
    """Per-instance medians over the repetitions of one cell."""
    reps = [r for r in raw if r.get("label") == label and r.get("path") == path and r.get("conc") == conc
            and r.get("instances")]
    if not reps:
        return None

    def per(k):
        return med([r[k] / r["instances"] for r in reps if r.get(k) is not None])
    return dict(conc=conc, path=path, src="one node" if label == "pg" else "one node behind HAProxy", wal=per("pg_wal"), size=per("pg_size"), commits=per("pg_commits"),
                statements=per("pg_statements"), pg_cpu=per("pg_cpu"), rr_cpu=per("radroute_cpu_s"),
                n=len(reps))


def model(raw, a, disk_mb_s, idle):
    cores = os.cpu_count()
    lines = ["### b. Paper model: the node count at which PostgreSQL becomes the limit", "",
             "Per-instance costs (10 MB CR, medians over the repetitions; from the single-node PostgreSQL "
             "runs of parts a and b, all counters as deltas over the run, divided by the instances stored):", "",
             "| run | WAL MB | table growth MB | commits | statements | postgres CPU ms | radroute CPU ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    rows = {}
    for path in a.paths_a:
        for conc in sorted(set(a.conc_a) | (set(a.conc_b) if path == "e" else set())):
            c = costs(raw, "pg", path, conc) or (costs(raw, "lb1", path, conc) if path == "e" else None)
            if not c:
                continue
            rows[(path, conc)] = c
            lines.append("| %s, %s, %d sender(s) | %s | %s | %s | %s | %s | %s |" % (
                c["src"], "classification on" if path == "d" else "classification off", conc,
                fmt(c["wal"] / 1e6), fmt(c["size"] / 1e6), fmt(c["commits"]), fmt(c["statements"]),
                fmt(1000 * c["pg_cpu"], 0) if c["pg_cpu"] is not None else "–",
                fmt(1000 * c["rr_cpu"], 0) if c["rr_cpu"] is not None else "–"))
    if idle:
        lines.append("| one idle node, per second (heartbeat, polling; included in the rows above) | – | – | %s | %s "
                     "| %s | %s |" % (fmt(idle["commits"]), fmt(idle["statements"]), fmt(1000 * idle["pg_cpu"], 0),
                                      fmt(1000 * idle["rr_cpu"], 0)))
    base = rows.get(("e", max(a.conc_a))) or (next(iter(rows.values())) if rows else None)
    base_d = rows.get(("d", max(a.conc_a)))
    if not base or not base["pg_cpu"] or not base["rr_cpu"] or not base["wal"]:
        return "\n".join(lines + ["", "Model NOT computed: no single-node PostgreSQL costs measured."])
    disk_per = base["wal"] + base["size"]
    pg_cpu_cap = cores / base["pg_cpu"]
    pg_disk_cap = disk_mb_s * 1e6 / disk_per
    node_cap = cores / base["rr_cpu"]
    limit = min(pg_cpu_cap, pg_disk_cap)
    lines += ["",
              "Model: N nodes of C cores each, one PostgreSQL host of P cores and disk write bandwidth D. A "
              "node handles at most R_node = C / c_rr instances/s (c_rr: radroute CPU per instance); "
              "PostgreSQL at most R_pg = min(P / c_pg, D / (w_wal + w_table)) (c_pg: postgres CPU per "
              "instance; w_wal, w_table: bytes of WAL and of table per instance). PostgreSQL is the limit "
              "from N* = R_pg / R_node nodes on. Deleting an instance after retention writes about its size "
              "in WAL again (docs/cluster.md, storage measurements): at steady state D / (2 w_wal + w_table).",
              "",
              "With this machine's figures (%s, classification off, %d sender(s); C = P = %d cores, D = %.0f MB/s "
              "measured by a 256 MiB sequential write + fsync on the disk of PostgreSQL's data directory):"
              % (base["src"], base["conc"], cores, disk_mb_s), "",
              "- c_rr = %.0f ms, c_pg = %.0f ms, w_wal = %.1f MB, w_table = %.1f MB per instance" % (
                  1000 * base["rr_cpu"], 1000 * base["pg_cpu"], base["wal"] / 1e6, base["size"] / 1e6),
              "- R_node = %.1f instances/s; R_pg = min(%.1f CPU, %.1f disk) = %.1f instances/s "
              "(with deletion: disk %.1f)" % (node_cap, pg_cpu_cap, pg_disk_cap, limit,
                                             disk_mb_s * 1e6 / (2 * base["wal"] + base["size"])),
              "- **N* = %.1f nodes**: PostgreSQL's %s is the limit first" % (
                  limit / node_cap, "disk bandwidth" if pg_disk_cap < pg_cpu_cap else "CPU")]
    if base_d and base_d["rr_cpu"]:
        nd = cores / base_d["rr_cpu"]
        lines.append("- with classification: c_rr = %.0f ms, R_node = %.1f instances/s, N* = %.1f nodes" % (
            1000 * base_d["rr_cpu"], nd, limit / nd))
    big_p, big_d = 16, 1000.0
    big = min(big_p / base["pg_cpu"], big_d * 1e6 / disk_per)
    lines.append("- the same costs on a dedicated PostgreSQL host of P = %d cores and D = %.0f MB/s (an "
                 "assumption, not measured): R_pg = min(%.0f CPU, %.0f disk) = %.0f instances/s, N* = %.1f "
                 "nodes of %d cores" % (big_p, big_d, big_p / base["pg_cpu"], big_d * 1e6 / disk_per, big,
                                        big / node_cap, cores))
    lines += ["", "These CPU figures come from a 2-core machine shared by nodes, PostgreSQL, sink and senders "
              "(and other users' jobs): each process also pays for contention. A dedicated PostgreSQL host "
              "with its own disk changes P and D; put its figures into the formula."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ part c
def acked_sops(logfile, by_path):
    """SOP Instance UIDs storescu saw acknowledged: each "Received Store Response (Success|Warning"
    belongs to the file of the "Sending file:" before it."""
    out, cur = set(), None
    try:
        text = open(logfile, errors="replace").read()
    except OSError:
        return out
    for line in text.splitlines():
        m = B.TS_RE.match(line)
        if not m:
            continue
        msg = m.group(3)
        if msg.startswith("Sending file: "):
            cur = by_path.get(msg[len("Sending file: "):].strip(), {}).get("sop")
        elif msg.startswith("Received Store Response"):
            if cur and ("(Success" in msg or "(Warning" in msg):
                out.add(cur)
            cur = None
    return out


class RetryingSender(threading.Thread):
    """Sends its files through `port` one association at a time, and sends again what was not
    acknowledged (as a modality does) until everything is acknowledged or `deadline` passes."""

    def __init__(self, k, items, profile, port, run_dir, deadline):
        super().__init__(daemon=True)
        self.k, self.items, self.profile, self.port, self.dir, self.deadline = k, items, profile, port, run_dir, deadline
        self.by_path = {i["path"]: i for i in items}
        self.acked, self.attempts, self.halt = set(), 0, threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.halt.is_set() and time.time() < self.deadline:
            todo = [i for i in self.items if i["sop"] not in self.acked]
            if not todo:
                return
            self.attempts += 1
            lf = os.path.join(self.dir, "send-%d-%d.log" % (self.k, self.attempts))
            cfg = B.dcmtk_logcfg(lf + ".cfg", lf)
            p = B.spawn([B.STORESCU, "-lc", cfg, "-aet", "BENCHSCU%d" % self.k, "-aec", "RADROUTE", "-pdu", B.PDU,
                         "-xf", self.profile, "Bench", "-nh", "127.0.0.1", str(self.port)] + [i["path"] for i in todo],
                        lf + ".out")
            while p.poll() is None and not self.halt.is_set():
                with self.lock:
                    self.acked |= acked_sops(lf, self.by_path)
                time.sleep(0.2)
            B.stop(p, 5)
            with self.lock:
                self.acked |= acked_sops(lf, self.by_path)
            time.sleep(0.5)

    def acked_now(self):
        with self.lock:
            return set(self.acked)


def failover(a, server, items, profile, res, kill_no):
    """One kill: returns a row (takeover seconds, acknowledged, lost, duplicates)."""
    run_dir = os.path.join(res, "runs", "failover-%d" % kill_no)
    os.makedirs(run_dir)
    db = server.new_database()
    url = server.url(db)
    sink_port = free_port()
    extra = "\n[queue]\nbackoff_base_secs = 1\nbackoff_max_secs = 2\n"
    nodes = [Node(a, os.path.join(run_dir, n), n, sink_port, False, (url, n, a.takeover), extra=extra)
             for n in ("n1", "n2")]
    lb, sink, senders = None, None, []
    row = dict(kill=kill_no, takeover_after_secs=a.takeover or 30, offered=len(items))
    try:
        for n in nodes:
            n.start()
        lb = HaProxy(os.path.join(run_dir, "haproxy"), free_port(), nodes)
        deadline = time.time() + a.run_timeout
        senders = [RetryingSender(k, items[k::a.fail_senders], profile, lb.port, run_dir, deadline)
                   for k in range(a.fail_senders)]
        for s in senders:
            s.start()
        victim, survivor = nodes[0], nodes[1]

        def dead_received():
            return int(server.sql(db, "SELECT count(*) FROM instances WHERE received_by = '%s'" % victim.name))
        # Mid-stream: a third of the instances acknowledged, some of them by the victim, and
        # (waiting up to 5 s more for it) the victim holding work: a lease or an instance it
        # received and has not processed, so that the takeover has something to take over.
        held = pending = ""
        mark = None
        while time.time() < deadline:
            n_acked = sum(len(s.acked_now()) for s in senders)
            if mark is None and n_acked >= len(items) // 3 and dead_received() > 0:
                mark = time.time()
            if mark is not None:
                held = server.sql(db, "SELECT id FROM jobs WHERE state = 'in_flight' AND lease_owner = '%s'"
                                  % victim.name)
                pending = server.sql(db, "SELECT id FROM instances WHERE state = 'received' AND received_by = "
                                     "'%s'" % victim.name)
                if held or pending or time.time() - mark > 5:
                    break
            time.sleep(0.1)
        t_kill = time.time()
        victim.kill9()
        shutil.rmtree(victim.dir + "/spool", ignore_errors=True)     # its disk is gone too
        # what the dead victim holds (read after the kill: nothing changes it any more)
        held = server.sql(db, "SELECT id FROM jobs WHERE state = 'in_flight' AND lease_owner = '%s'" % victim.name)
        pending = server.sql(db, "SELECT id FROM instances WHERE state = 'received' AND received_by = '%s'"
                             % victim.name)
        held_jobs = [x for x in held.split("\n") if x]
        pending_ids = [x for x in pending.split("\n") if x]
        row.update(acked_at_kill=sum(len(s.acked_now()) for s in senders), victim_received=dead_received(),
                   leases_at_kill=len(held_jobs), unprocessed_at_kill=len(pending_ids))
        time.sleep(a.pacs_after)
        sink_dir = os.path.join(run_dir, "sink")
        os.makedirs(sink_dir)
        sink_log = os.path.join(run_dir, "sink-events.log")
        sink = B.spawn([B.STORESCP, "-lc", B.dcmtk_logcfg(os.path.join(run_dir, "sink-log.cfg"), sink_log),
                        "-aet", "SINK", "-xf", profile, "Sink", "--fork", "-pdu", B.PDU, "-dhl", "-fe", ".dcm",
                        "-od", sink_dir, str(sink_port)], os.path.join(run_dir, "sink.out"))
        B.wait_port(sink_port, sink, "sink storescp")
        t_pacs = time.time()
        # takeover: the first of the victim's leases leased again by the survivor, or the first of
        # its unprocessed instances routed (only a survivor can: the victim is dead)
        kill_ms = int(t_kill * 1000)
        conds = []
        if held_jobs:
            conds.append("(SELECT min(leased_at) FROM jobs WHERE id IN (%s) AND lease_owner = '%s' "
                         "AND leased_at >= %d)" % (",".join(held_jobs), survivor.name, kill_ms))
        if pending_ids:
            conds.append("(SELECT min(updated_at) FROM instances WHERE id IN (%s) AND state <> 'received')"
                         % ",".join("'%s'" % i for i in pending_ids))
        # and, whatever the victim held: its instances' first job leased by the survivor after the kill
        conds.append("(SELECT min(j.leased_at) FROM jobs j JOIN instances i ON i.id = j.instance_id "
                     "WHERE i.received_by = '%s' AND j.lease_owner = '%s' AND j.leased_at >= %d)"
                     % (victim.name, survivor.name, kill_ms))
        takeover_ms = None
        sops = {i["sop"] for i in items}
        while time.time() < deadline:
            if takeover_ms is None and (held_jobs or pending_ids):
                v = server.sql(db, "SELECT least(%s)" % ", ".join(conds[:-1]))
                takeover_ms = int(v) if v else None
            done = all(not s.is_alive() for s in senders)
            acked = set().union(*(s.acked_now() for s in senders))
            arrived = {s for _, s in B.sink_arrivals(sink_log, sops)}
            if done and acked <= arrived and (takeover_ms is not None or not (held_jobs or pending_ids)):
                break
            time.sleep(0.2)
        any_ms = server.sql(db, "SELECT %s" % conds[-1])
        for s in senders:
            s.halt.set()
        for s in senders:
            s.join(10)
        time.sleep(2)    # late duplicates show up within a lease cycle
        acked = set().union(*(s.acked_now() for s in senders))
        arrivals = B.sink_arrivals(sink_log, sops)
        arrived = {s for _, s in arrivals}
        stored_twice = server.sql(db, "SELECT count(*) FROM (SELECT sop_instance_uid FROM instances "
                                      "GROUP BY 1 HAVING count(*) > 1) x")
        row.update(acked=len(acked), arrived=len(arrived), lost=len(acked - arrived), stored_twice=int(stored_twice),
                   duplicates=len(arrivals) - len(arrived),
                   takeover_s=round(takeover_ms / 1000 - t_kill, 1) if takeover_ms else None,
                   first_survivor_lease_s=round(int(any_ms) / 1000 - t_kill, 1) if any_ms else None,
                   pacs_up_s=round(t_pacs - t_kill, 1),
                   sender_attempts=sum(s.attempts for s in senders))
        if acked - arrived:
            open(os.path.join(run_dir, "lost.txt"), "w").write("\n".join(sorted(acked - arrived)) + "\n")
    except Exception as e:  # noqa: BLE001 - report and go on with the next kill
        row["note"] = "ERROR: %s" % e
    finally:
        for s in senders:
            s.halt.set()
        if lb:
            lb.stop()
        for n in nodes:
            n.stop()
        B.stop(sink)
        if not a.keep:
            shutil.rmtree(os.path.join(run_dir, "sink"), ignore_errors=True)
            for n in nodes:
                shutil.rmtree(os.path.join(n.dir, "spool"), ignore_errors=True)
            server.drop_database(db)
    log("failover %d: %s" % (kill_no, {k: v for k, v in row.items() if k != "kill"}))
    return row


def table_c(rows, a):
    out = ["### c. Failover: kill -9 of one of two nodes mid-stream, PACS down until %.0f s after the kill"
           % a.pacs_after, "",
           "| kill | takeover_after_secs | instances acked at kill | victim's leases / unprocessed at kill "
           "| kill → takeover s | kill → first survivor lease of a victim's job s | acked | arrived | lost | duplicates "
           "at the PACS | SOPs stored twice |",
           "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("note"):
            out.append("| %d | %s | %s |" % (r["kill"], r.get("takeover_after_secs"), r["note"]))
            continue
        out.append("| %d | %d | %s | %s / %s | %s | %s | %s | %s | **%s** | %s | %s |" % (
            r["kill"], r["takeover_after_secs"], r.get("acked_at_kill"), r.get("leases_at_kill"),
            r.get("unprocessed_at_kill"), fmt(r.get("takeover_s")) if r.get("takeover_s") is not None else "– (none held)",
            fmt(r.get("first_survivor_lease_s")), r.get("acked"), r.get("arrived"), r.get("lost"), r.get("duplicates"),
            r.get("stored_twice")))
    ok = [r for r in rows if not r.get("note")]
    lost = sum(r["lost"] for r in ok)
    out += ["", "Takeover: the first of the victim's in-flight leases or unprocessed instances (read right after the kill) "
            "that the survivor leased or routed. Jobs the victim had queued (PACS down: between retries) are in "
            "the shared queue and any node sends them when due, without a takeover (last but one column). "
            "Duplicates: instances the PACS received twice. SOPs stored twice: the victim stored an instance "
            "and died before its sender saw the response, so the sender sent it again through HAProxy and the "
            "survivor stored it as a second instance (a retried, unacknowledged C-STORE: the protocol cannot tell "
            "it apart; docs/cluster.md); a job taken over after its send began is the other source. Retry backoff 1-2 s ([queue] backoff_base_secs/backoff_max_secs) so that "
            "delivery follows the PACS's start; senders resend what was not acknowledged through HAProxy."]
    out += ["", "Acknowledged instances lost over %d kills: **%d** (goal 0)%s." % (
        len(ok), lost, "" if len(ok) == len(rows) else "; %d kill(s) failed to run" % (len(rows) - len(ok)))]
    return "\n".join(out)


# -------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run (< 2 min): 8 images, 1 rep, part a at 1 "
                    "sender without classification, part b at 4 senders, 1 kill with takeover_after_secs = 5")
    ap.add_argument("--parts", default="a,b,c")
    ap.add_argument("--count", type=int, default=60, help="images (10 MB CR) per measurement (default 60)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conc-a", default="1,4")
    ap.add_argument("--paths-a", default="e,d", help="e: classification off, d: on")
    ap.add_argument("--conc-b", default="4,8")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--takeover", type=int, default=None, help="[cluster] takeover_after_secs of part c "
                    "(default: radroute's default, 30 s)")
    ap.add_argument("--fail-count", type=int, default=40, help="images per kill (default 40)")
    ap.add_argument("--fail-senders", type=int, default=2)
    ap.add_argument("--pacs-after", type=float, default=1.0, help="start the PACS this long after the kill")
    ap.add_argument("--out", default="/tmp/radroute-bench")
    ap.add_argument("--corpus-dir")
    ap.add_argument("--peers", default=os.path.join(B.SHARED, "peers"))
    ap.add_argument("--radroute", default=os.path.join(B.REPO, "target", "release", "radroute"))
    ap.add_argument("--model", default=os.path.join(B.REPO, "models", "bodypart"))
    ap.add_argument("--ort-dylib", default=os.environ.get("ORT_DYLIB_PATH") or next(iter(sorted(glob.glob(
        os.path.join(B.REPO, ".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*")))), None))
    ap.add_argument("--base-port", type=int, default=22600)
    ap.add_argument("--stall", type=float, default=30)
    ap.add_argument("--run-timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.count, a.reps, a.conc_a, a.paths_a, a.conc_b = 8, 1, "1", "e", "4"
        a.kills, a.fail_count, a.takeover = 1, 12, a.takeover or 5
    a.conc_a = [int(x) for x in a.conc_a.split(",") if x]
    a.conc_b = [int(x) for x in a.conc_b.split(",") if x]
    a.paths_a = [x for x in a.paths_a.split(",") if x]
    parts = set(a.parts.split(","))
    a.perf, a.corpora = False, ["cr-unc"]
    a.count = max(a.count, a.fail_count if "c" in parts else 0)
    a.corpus_dir = a.corpus_dir or os.path.join(a.out, "corpus")
    if "d" in a.paths_a and not os.path.exists(os.path.join(a.model, "manifest.toml")):
        sys.exit("no model in %s (path d)" % a.model)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    res = os.path.join(a.out, "cluster-" + stamp)
    os.makedirs(os.path.join(res, "runs"))
    info = B.machine_info(a)
    dirs = B.prepare_corpora(a)
    items, profile = B.index_corpus("cr-unc", dirs["cr-unc"], a.count, res)
    for i in items:                       # page cache: every run reads the corpus from memory
        with open(i["path"], "rb") as fh:
            while fh.read(1 << 22):
                pass
    t_all = time.time()
    server = Postgres(os.path.join(res, "pg"))
    Topology.server = server
    disk = disk_write_mb_s(server.root)
    idle = idle_rates(a, server, res) if parts & {"a", "b"} else None
    raw, fail_rows, n_run = [], [], 0
    try:
        for rep in range(a.reps):
            if "a" in parts:
                for conc in a.conc_a:
                    for path in a.paths_a:
                        for label, pg in (("local", False), ("pg", True)):
                            Topology.pg, Topology.nodes, Topology.lb = pg, 1, False
                            ports, n_run = B.free_ports(a.base_port, n_run)
                            raw.append(run_measure(a, "cr-unc", items[:a.count], profile, label, path, conc, rep,
                                                   res, ports))
            if "b" in parts:
                for conc in a.conc_b:
                    for label, n in (("lb1", 1), ("lb2", 2)):
                        Topology.pg, Topology.nodes, Topology.lb = True, n, True
                        ports, n_run = B.free_ports(a.base_port, n_run)
                        raw.append(run_measure(a, "cr-unc", items[:a.count], profile, label, "e", conc, rep,
                                               res, ports))
        if "c" in parts:
            for k in range(a.kills):
                fail_rows.append(failover(a, server, items[:a.fail_count], profile, res, k + 1))
    finally:
        server.stop()
    fields = sorted({k for r in raw for k in r if k not in ("metrics",)})
    with open(os.path.join(res, "results.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(raw)
    with open(os.path.join(res, "failover.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted({k for r in fail_rows for k in r}) or ["kill"])
        w.writeheader()
        w.writerows(fail_rows)
    cmd = " ".join(["tests/bench/cluster.sh"] + sys.argv[1:])
    head = ["## radroute cluster benchmark, %s" % info["date"], "",
            "- command: `%s` (%.0f s)" % (cmd, time.time() - t_all),
            "- machine: %s; disk %s (sequential write + fsync %.0f MB/s)" % (info["host"], info["disk"], disk),
            "- load average at start / end: %s / %s" % (info["load"], open("/proc/loadavg").read().strip()),
            "- radroute: %s; PostgreSQL 15 on this machine (fsync, synchronous_commit, full_page_writes on), "
            "loopback TCP; HAProxy %s" % (info["radroute"], subprocess.run(
                [HAPROXY, "-v"], capture_output=True, text=True).stdout.split("\n")[0]),
            "- corpus: %d × cr-unc (10 MB CR, Explicit VR LE) per measurement, %d repetition(s), median "
            "(runs in brackets); sink storescp --fork, TCP_NODELAY, PDU 131072 (tests/bench/bench.py); part c: "
            "%d images per kill from %d retrying senders" % (a.count, a.reps, a.fail_count, a.fail_senders)]
    md = ["\n".join(head)]
    if "a" in parts:
        md.append(table_a(raw, a))
    if "b" in parts:
        md.append(table_b(raw, a))
        md.append(model(raw, a, disk, idle))
    if "c" in parts:
        md.append(table_c(fail_rows, a))
    text = "\n\n".join(md) + "\n"
    open(os.path.join(res, "results.md"), "w").write(text)
    print(text)
    log("results in %s" % res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
