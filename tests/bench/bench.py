#!/usr/bin/env python3
"""radroute throughput/latency benchmark against dcmtk and Orthanc (issue 6, issue 2's done-when).

One run measures, on the same corpus and the same machine, every combination of

  paths        a  storescu -> storescp                                    (the wire, no router)
               b  storescu -> storescp --exec-on-reception storescu -> storescp   (dcmtk relay)
               s  the same relay with --exec-sync (forwards before it answers the sender)
               c  storescu -> Orthanc + Lua OnStoredInstance/SendToModality -> storescp
               d  storescu -> radroute, classification on  -> storescp
               e  storescu -> radroute, classification off -> storescp
               a1 b1 s1 c1 d1 e1: the same chains into a sink that serves one association at a time
                  (storescp without --fork, like many small PACS and workstations; issue 14)
  corpora      cr-unc     synthetic 2000x2500 12-bit CR/DX, Explicit VR Little Endian (gen_corpus.py)
               cr-jpegll  the same, JPEG lossless SV1 (compress_corpus.sh)
               cr-rle     the same, RLE lossless (compress_corpus.sh)
               samples    ../shared/data/dicom-samples/good (real files, many syntaxes)
  concurrency  N storescu processes at once, each sending its slice of the corpus in one association

and reports images/s, MB/s, p50/p99 send-to-arrival latency, peak RSS of the router, d and e as
ratios against a, b and c, and the targets of issue 6. The sink is the same storescp (writing
files, --fork) for every path but the *1 ones (the same storescp without --fork). Method: tests/bench/README.md and docs/performance.md.

Usage (from the repository root; tests/bench/run.sh builds radroute and picks the venv):
  .venv/bin/python tests/bench/bench.py                       # full run (~20 min on 2 cores)
  .venv/bin/python tests/bench/bench.py --quick               # smoke: 10 images, 1 association, cr-unc
  .venv/bin/python tests/bench/bench.py --count 100 --conc 1 --corpora cr-unc --paths a,b,d,e
  .venv/bin/python tests/bench/bench.py --count 60 --conc 1 --corpora cr-unc --paths a,b,d,e,a1,b1,d1,e1
Results: <out>/results-<UTC time>/{results.md,results.csv,runs/...}; <out>/latest points there.
Needs: dcmtk (storescu, storescp, dcmodify), Orthanc for path c, pydicom, radroute built
(--radroute), ONNX Runtime for path d (--ort-dylib or ORT_DYLIB_PATH).
"""
import argparse
import csv
import datetime as dt
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared"))
CONFIGS = os.path.join(HERE, "configs")

STORESCU = os.environ.get("STORESCU", "/usr/bin/storescu")   # never PATH: pynetdicom ships one
STORESCP = os.environ.get("STORESCP", "/usr/bin/storescp")
DCMODIFY = os.environ.get("DCMODIFY", "/usr/bin/dcmodify")
ORTHANC = os.environ.get("ORTHANC_BIN", "/usr/sbin/Orthanc")
PDU = "131072"   # dcmtk's maximum; used by every dcmtk process and Orthanc

PATHS = {
    "a": "storescu → storescp (wire)",
    "b": "dcmtk relay (storescp -xcr storescu)",
    "s": "dcmtk relay, --exec-sync",
    "c": "Orthanc + Lua auto-forward",
    "d": "radroute, classification on",
    "e": "radroute, classification off",
}
for _p in list(PATHS):
    PATHS[_p + "1"] = PATHS[_p] + ", one-association sink"
CORPORA = ["cr-unc", "cr-jpegll", "cr-rle", "samples"]


def base(path):
    """The chain of a path: a1 is a into the one-association sink."""
    return path[0]


def single_sink(path):
    """True for the paths into the sink that serves one association at a time (no --fork)."""
    return path.endswith("1")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ corpora
def read_header(path):
    import pydicom  # only the harness's corpus indexing needs it
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return (str(ds.SOPInstanceUID), str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))


def prepare_corpora(a):
    """Returns {name: dir}; generates what is missing (under --corpus-dir, never in the repo)."""
    root = a.corpus_dir
    cr = os.path.join(root, "cr")
    unc = os.path.join(cr, "uncompressed")
    want = set(a.corpora)
    if want & {"cr-unc", "cr-jpegll", "cr-rle"}:
        have = len(glob.glob(os.path.join(unc, "*.dcm")))
        if have < a.count:
            log("generating %d synthetic CR images in %s (gen_corpus.py)" % (a.count, unc))
            subprocess.run([sys.executable, os.path.join(a.peers, "gen_corpus.py"), "--out", unc,
                            "--count", str(a.count)], check=True)
            for sub in ("jpegll_sv1", "rle"):
                shutil.rmtree(os.path.join(cr, sub), ignore_errors=True)
        if want & {"cr-jpegll", "cr-rle"}:
            n_unc = len(glob.glob(os.path.join(unc, "*.dcm")))
            if (len(glob.glob(os.path.join(cr, "jpegll_sv1", "*.dcm"))) < n_unc
                    or len(glob.glob(os.path.join(cr, "rle", "*.dcm"))) < n_unc):
                log("compressing %s (compress_corpus.sh)" % unc)
                subprocess.run([os.path.join(a.peers, "compress_corpus.sh"), unc, cr], check=True)
    dirs = {"cr-unc": unc, "cr-jpegll": os.path.join(cr, "jpegll_sv1"), "cr-rle": os.path.join(cr, "rle")}
    if "samples" in want:
        dirs["samples"] = prepare_samples(a.samples, os.path.join(root, "samples-unique"))
    return {k: v for k, v in dirs.items() if k in want}


def prepare_samples(src, dst):
    """Copy of the real sample files in which every SOP Instance UID is unique.

    The sample set holds the same image in several transfer syntaxes under one SOP Instance UID.
    A PACS keeps one copy per UID (Orthanc answers success and forwards nothing for a repeat),
    so repeats get a fresh UID (dcmodify; nothing else in the file changes) and every path is
    offered the same number of distinct instances."""
    files = sorted(glob.glob(os.path.join(src, "*.dcm")))
    stamp = os.path.join(dst, ".source")
    if os.path.exists(stamp) and open(stamp).read() == "\n".join(files):
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    seen = set()
    for i, f in enumerate(files):
        out = os.path.join(dst, os.path.basename(f))
        shutil.copyfile(f, out)
        sop = read_header(out)[0]
        if sop in seen:
            new = "2.25.%d" % (int.from_bytes(os.urandom(15), "big"))
            r = subprocess.run([DCMODIFY, "-nb", "-ie", "-m", "(0008,0018)=" + new, "-m",
                                "(0002,0003)=" + new, out], capture_output=True, text=True)
            if r.returncode != 0 or read_header(out)[0] != new:
                import pydicom
                ds = pydicom.dcmread(out)
                ds.SOPInstanceUID = new
                ds.file_meta.MediaStorageSOPInstanceUID = new
                ds.save_as(out)
            log("samples: %s repeats a SOP Instance UID, given %s" % (os.path.basename(f), new))
            sop = new
        seen.add(sop)
    open(stamp, "w").write("\n".join(files))
    return dst


def index_corpus(name, d, count, out_dir):
    """Files (sorted, first `count` for the synthetic corpora), their UIDs and sizes, and a
    storescu association profile proposing exactly the (SOP class, transfer syntax) pairs present,
    one presentation context each, so that no path ever converts a file on the way."""
    files = sorted(glob.glob(os.path.join(d, "*.dcm")))
    if name != "samples":
        files = files[:count]
    items = []
    for f in files:
        sop, cls, ts = read_header(f)
        items.append(dict(path=os.path.abspath(f), sop=sop, cls=cls, ts=ts, size=os.path.getsize(f)))
    pairs = sorted({(i["cls"], i["ts"]) for i in items})
    tss = sorted({ts for _, ts in pairs})
    # Sender side (storescu, profile "Bench"): one presentation context per (SOP class, syntax)
    # pair of the corpus. SCP side (sink and dcmtk relay, profile "Sink"): every SOP class of the
    # corpus with every syntax of the corpus plus the uncompressed ones, so that the sink never
    # refuses what a router forwards as received (storescp's +xa lacks e.g. JPEG lossless P14).
    # Preference order (the SCP picks the first of its list that a context proposes): Explicit VR
    # LE first, as storescp's default does, then the corpus's own syntaxes, then the others.
    acc = ["1.2.840.10008.1.2.1"] + [t for t in tss if t != "1.2.840.10008.1.2.1"]
    acc += [t for t in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2") if t not in acc]
    lines = ["[[TransferSyntaxes]]"]
    for k, ts in enumerate(tss):
        lines += ["[TS%d]" % k, "TransferSyntax1 = %s" % ts]
    lines += ["[SinkSyntaxes]"] + ["TransferSyntax%d = %s" % (k + 1, ts) for k, ts in enumerate(acc)]
    lines += ["[[PresentationContexts]]", "[BenchContexts]"]
    for k, (cls, ts) in enumerate(pairs):
        lines.append("PresentationContext%d = %s\\TS%d" % (k + 1, cls, tss.index(ts)))
    lines += ["[SinkContexts]"] + ["PresentationContext%d = %s\\SinkSyntaxes" % (k + 1, cls)
                                   for k, cls in enumerate(sorted({c for c, _ in pairs}))]
    lines += ["[[Profiles]]", "[Bench]", "PresentationContexts = BenchContexts",
              "[Sink]", "PresentationContexts = SinkContexts", ""]
    profile = os.path.join(out_dir, "dcmtk-%s.cfg" % name)
    with open(profile, "w") as fh:
        fh.write("\n".join(lines))
    return items, profile


# ---------------------------------------------------------------------------------- processes
def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))     # storescp and Orthanc listen on every address
            return True
        except OSError:
            return False


def free_ports(base, n):
    """Four free ports for the next measurement (other people's tests run on this machine too);
    rotates through 40 blocks of 10 so that no port is reused right away."""
    for k in range(n, n + 200):
        b = base + (k % 40) * 10
        if all(bindable(p) for p in range(b, b + 4)):
            return dict(sink=b, router=b + 1, admin=b + 2, http=b + 3), k + 1
    raise RuntimeError("no free ports from %d" % base)


def wait_port(port, proc, what, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s before listening on %d" % (what, proc.returncode, port))
        if port_open(port):
            return time.time() - t0
        time.sleep(0.05)
    raise RuntimeError("%s not listening on %d after %ss" % (what, port, timeout))


def spawn(args, logfile, env=None, cwd=None):
    fh = open(logfile, "ab")
    e = dict(os.environ)
    e["TCP_NODELAY"] = "1"          # dcmtk and Orthanc: no Nagle (else ~40 ms per DIMSE message)
    if env:
        e.update(env)
    return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=e, cwd=cwd)


def stop(proc, grace=20):
    """SIGTERM the process group we created (its own session), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def dcmtk_logcfg(path, logfile):
    tpl = open(os.path.join(CONFIGS, "dcmtk-log.cfg.in")).read()
    with open(path, "w") as fh:
        fh.write(tpl.format(file=logfile))
    return path


def proc_status(pid, key):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def proc_cpu_s(pid):
    """utime+stime (+ waited-for children) of pid, seconds."""
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_busy_s():
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq, steal)."""
    f = open("/proc/stat").readline().split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Peak of the summed VmRSS of a process tree (the relay's storescu children come and go)."""

    def __init__(self, root_pid, period=0.1):
        super().__init__(daemon=True)
        self.root, self.period, self.peak = root_pid, period, 0
        self.halt = threading.Event()

    def tree(self):
        kids = {}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    ppid = int(open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                kids.setdefault(ppid, []).append(int(p))
        out, todo = [], [self.root]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return out

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, sum(proc_status(p, "VmRSS") or 0 for p in self.tree()))
            self.halt.wait(self.period)


def http_get(port, path, timeout=5):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.read().decode(errors="replace")


# ------------------------------------------------------------------------------- the routers
class Router:
    """One path's middle hop. start() -> (proc, listen port, called AE title); a has none."""

    def __init__(self, a, path, run_dir, ports, profile, conc):
        self.a, self.path, self.dir, self.ports, self.profile, self.conc = a, path, run_dir, ports, profile, conc
        self.proc, self.info = None, {}

    def start(self):
        getattr(self, "start_" + base(self.path))()

    def start_a(self):
        self.port, self.aet = self.ports["sink"], "SINK"

    def start_s(self):
        self.start_b(sync=True)

    def start_b(self, sync=False):
        # A plain dcmtk relay: storescp writes each instance, then runs storescu on it; by
        # default asynchronously (storescp forks the command and answers the sender without
        # waiting), with --exec-sync (path s) it waits for the forward before it answers.
        d = os.path.join(self.dir, "relay")
        os.makedirs(d)
        fwd = "%s -aet RELAY -aec SINK -pdu %s -xf %s Bench 127.0.0.1 %d #p/#f" % (
            STORESCU, PDU, self.profile, self.ports["sink"])
        args = [STORESCP, "-aet", "RELAY", "-xf", self.profile, "Sink", "--fork", "-pdu", PDU, "-dhl", "-fe", ".dcm",
                "-od", d, "-xcr", fwd]
        if sync:
            args.append("--exec-sync")
        args.append(str(self.ports["router"]))
        self.proc = spawn(args, os.path.join(self.dir, "relay.log"))
        wait_port(self.ports["router"], self.proc, "relay storescp")
        self.port, self.aet = self.ports["router"], "RELAY"

    def start_c(self):
        d = os.path.join(self.dir, "orthanc")
        db = os.path.join(d, "db")
        os.makedirs(db)
        cfg = {
            "Name": "bench-relay", "StorageDirectory": db, "IndexDirectory": db, "Plugins": [],
            "HttpServerEnabled": True, "HttpPort": self.ports["http"], "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DicomServerEnabled": True, "DicomAet": "ORTHANC",
            "DicomPort": self.ports["router"], "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomCheckModalityHost": False,
            "DicomModalities": {"sink": ["SINK", "127.0.0.1", self.ports["sink"]]},
            "SaveJobs": False, "StableAge": 60, "OverwriteInstances": False,
            "SyncStorageArea": True,                 # Orthanc's default: fsync each file, like radroute
            "MaximumPduLength": int(PDU),
            "DicomThreadsCount": max(4, self.conc),  # Orthanc's default is 4 threads
            "LuaScripts": [os.path.join(CONFIGS, "orthanc-forward.lua")],
        }
        path = os.path.join(d, "orthanc.json")
        json.dump(cfg, open(path, "w"), indent=1)
        self.proc = spawn([ORTHANC, "--no-jobs", path], os.path.join(self.dir, "orthanc.log"), cwd=d)
        wait_port(self.ports["router"], self.proc, "Orthanc")
        t0 = time.time()
        while True:
            try:
                http_get(self.ports["http"], "/system")
                break
            except (urllib.error.URLError, OSError):
                if time.time() - t0 > 30:
                    raise RuntimeError("Orthanc REST not up")
                time.sleep(0.1)
        self.port, self.aet = self.ports["router"], "ORTHANC"

    def radroute_config(self, classify):
        spool = os.path.join(self.dir, "spool")
        os.makedirs(spool)
        section = ""
        if classify:
            section = open(os.path.join(CONFIGS, "classify.toml.in")).read().format(model_dir=self.a.model)
            # extra [classify] keys, e.g. device = "cuda" and workers for tests/bench/gpu_e2e.sh
            section += os.environ.get("BENCH_CLASSIFY_EXTRA", "").replace("\\n", "\n") + "\n"
        tpl = open(os.path.join(CONFIGS, "radroute.toml.in")).read()
        # the template's comment names the placeholders in braces too: fill by plain replacement
        body = tpl
        for k, v in (("port", self.ports["router"]), ("admin_port", self.ports["admin"]),
                     ("sink_port", self.ports["sink"]), ("spool", spool), ("classify", section)):
            body = body.replace("{%s}" % k, str(v))
        path = os.path.join(self.dir, "radroute.toml")
        open(path, "w").write(body)
        return path

    def start_radroute(self, classify):
        cfg = self.radroute_config(classify)
        env = {"ORT_DYLIB_PATH": self.a.ort_dylib} if self.a.ort_dylib else {}
        env.update({"RUST_LOG": os.environ.get("BENCH_RUST_LOG", os.environ.get("RUST_LOG", "info"))})
        self.proc = spawn([self.a.radroute, "serve", "--config", cfg], os.path.join(self.dir, "radroute.log"), env=env)
        wait_port(self.ports["router"], self.proc, "radroute")
        t0 = time.time()
        while time.time() - t0 < 60:
            try:
                http_get(self.ports["admin"], "/readyz")
                break
            except urllib.error.HTTPError:
                time.sleep(0.1)          # not ready yet (e.g. model loading)
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.port, self.aet = self.ports["router"], "RADROUTE"

    def start_d(self):
        self.start_radroute(True)

    def start_e(self):
        self.start_radroute(False)

    def finish(self):
        """Scrape what the router says about itself, then stop it."""
        if self.proc is None:
            return
        pid = self.proc.pid
        self.info["hwm"] = proc_status(pid, "VmHWM")
        self.info["cpu_s"] = proc_cpu_s(pid)
        if base(self.path) in "de":
            try:
                m = http_get(self.ports["admin"], "/metrics")
                open(os.path.join(self.dir, "metrics.txt"), "w").write(m)
                self.info["metrics"] = m
            except (urllib.error.URLError, OSError) as e:
                log("metrics scrape failed: %s" % e)
        stop(self.proc)


def classify_wired(a):
    """(True, '') when this radroute accepts a [classify] section, else (False, why)."""
    if not os.path.exists(a.radroute):
        return False, "radroute binary %s missing" % a.radroute
    if not os.path.isdir(a.model):
        return False, "model directory %s missing" % a.model
    tmp = os.path.join(a.out, "check-classify")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    r = Router(a, "d", tmp, {"router": 1, "admin": 2, "sink": 3}, None, 1)
    cfg = r.radroute_config(True)
    env = dict(os.environ)
    if a.ort_dylib:
        env["ORT_DYLIB_PATH"] = a.ort_dylib
    p = subprocess.run([a.radroute, "check-config", cfg], capture_output=True, text=True, env=env)
    if p.returncode == 0:
        return True, ""
    why = " ".join((p.stderr or p.stdout).split())
    return False, "check-config refuses [classify]: " + (why[:300] or "rc %d" % p.returncode)


# ------------------------------------------------------------------------------- one measurement
TS_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\d+) (.*)$")


def parse_ts(s):
    return dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def sink_arrivals(logfile, sops):
    """[(time, sop)] of instances the sink finished receiving ("storing DICOM file: DIR/XX.<uid>.dcm")."""
    out = []
    try:
        lines = open(logfile, errors="replace").read().splitlines()
    except OSError:
        return out
    for line in lines:
        m = TS_RE.match(line)
        if m and m.group(3).startswith("storing DICOM file: "):
            base = os.path.basename(m.group(3)[len("storing DICOM file: "):].strip())
            uid = base.split(".", 1)[1][: -len(".dcm")] if base.endswith(".dcm") and "." in base else base
            if uid in sops:
                out.append((parse_ts(m.group(1)), uid))
    return out


def sender_events(logfile, by_path):
    """Per sender log: [(time, sop)] of "Sending file", numbers of successful and failed stores,
    time of the last store response."""
    sends, ok, failed, last = [], 0, 0, None
    for line in open(logfile, errors="replace").read().splitlines():
        m = TS_RE.match(line)
        if not m:
            continue
        msg = m.group(3)
        if msg.startswith("Sending file: "):
            p = msg[len("Sending file: "):].strip()
            if p in by_path:
                sends.append((parse_ts(m.group(1)), by_path[p]["sop"]))
        elif msg.startswith("Received Store Response"):
            last = parse_ts(m.group(1))
            if "(Success" in msg or "(Warning" in msg:
                ok += 1
            else:
                failed += 1
        elif "Store Failed" in msg or "No presentation context" in msg or "Association Rejected" in msg:
            failed += 1
    return sends, ok, failed, last


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))   # nearest rank
    return xs[k]


def measure(a, corpus, items, profile, path, conc, run_dir, ports):
    os.makedirs(run_dir)
    sink_dir = os.path.join(run_dir, "sink")
    os.makedirs(sink_dir)
    sink_log = os.path.join(run_dir, "sink-events.log")
    # the same storescp for every path; without --fork it serves one association at a time
    fork = [] if single_sink(path) else ["--fork"]
    sink = spawn([STORESCP, "-lc", dcmtk_logcfg(os.path.join(run_dir, "sink-log.cfg"), sink_log),
                  "-aet", "SINK", "-xf", profile, "Sink"] + fork + ["-pdu", PDU, "-dhl", "-fe", ".dcm", "-od", sink_dir,
                  str(ports["sink"])], os.path.join(run_dir, "sink.out"))
    router = Router(a, path, run_dir, ports, profile, conc)
    row = dict(corpus=corpus, path=path, conc=conc, offered=len(items))
    sampler = None
    try:
        wait_port(ports["sink"], sink, "sink storescp")
        router.start()
        if router.proc is not None:
            sampler = RssSampler(router.proc.pid)
            sampler.start()
        perf = None
        if a.perf and base(path) in "de":
            # diagnostic only: perf's sampling costs CPU, so --perf runs are not results of record
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-o",
                                     os.path.join(run_dir, "perf.data"), "-p", str(router.proc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        by_path = {i["path"]: i for i in items}
        sops = {i["sop"] for i in items}
        slices = [items[k::conc] for k in range(conc)]
        senders = []
        # the CPU budget of the sending window (senders, router, sink, kernel): from the first send
        # to the last arrival, so start-up and model loading are left out
        busy0 = machine_busy_s()
        router_cpu0 = proc_cpu_s(router.proc.pid) if router.proc is not None else None
        t0 = time.time()
        for k, sl in enumerate(slices):
            if not sl:
                continue
            lf = os.path.join(run_dir, "send-%d.log" % k)
            cfg = dcmtk_logcfg(os.path.join(run_dir, "send-%d.cfg" % k), lf)
            args = [STORESCU, "-lc", cfg, "-aet", "BENCHSCU%d" % k, "-aec", router.aet, "-pdu", PDU,
                    "-xf", profile, "Bench", "-nh", "127.0.0.1", str(router.port)] + [i["path"] for i in sl]
            senders.append((spawn(args, os.path.join(run_dir, "send-%d.out" % k)), lf))
        # wait: senders done, then every accepted instance at the sink, or no progress for --stall s
        deadline = t0 + a.run_timeout
        last_n, last_change, senders_done = 0, time.time(), None
        while time.time() < deadline:
            if senders_done is None and all(p.poll() is not None for p, _ in senders):
                senders_done = time.time()
            n = len({s for _, s in sink_arrivals(sink_log, sops)})
            if n != last_n:
                last_n, last_change = n, time.time()
            if senders_done is not None:
                accepted = sum(sender_events(lf, by_path)[1] for _, lf in senders)
                if n >= accepted or time.time() - max(last_change, senders_done) > a.stall:
                    break
            time.sleep(0.1)
        else:
            log("run timeout after %ss" % a.run_timeout)
        window, busy = time.time() - t0, machine_busy_s() - busy0
        router_cpu = (proc_cpu_s(router.proc.pid) - router_cpu0
                      if router_cpu0 is not None and router.proc.poll() is None else None)
        for p, _ in senders:
            stop(p, 5)
        if sampler:
            sampler.halt.set()
            sampler.join()
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
            with open(os.path.join(run_dir, "perf.txt"), "w") as fh:
                subprocess.run(["perf", "report", "-i", os.path.join(run_dir, "perf.data"), "--stdio",
                                "--no-children", "--sort", "comm,dso,symbol", "--percent-limit", "0.5",
                                "-g", "none"], stdout=fh, stderr=subprocess.DEVNULL)
        router.finish()
        # --- results
        sends, ok, failed, acked = [], 0, 0, []
        for _, lf in senders:
            s, o, f, last = sender_events(lf, by_path)
            sends += s; ok += o; failed += f
            acked += [last] if last else []
        arr = sink_arrivals(sink_log, sops)
        first_arrival = {}
        for t, s in sorted(arr):
            first_arrival.setdefault(s, t)
        first_send = {}
        for t, s in sorted(sends):
            first_send.setdefault(s, t)
        lat = [first_arrival[s] - first_send[s] for s in first_arrival if s in first_send]
        delivered = len(first_arrival)
        size = {i["sop"]: i["size"] for i in items}
        nbytes = sum(size[s] for s in first_arrival)
        t_end = max(first_arrival.values()) if first_arrival else None
        dur = (t_end - t0) if t_end else None
        row.update(accepted=ok, send_failed=failed, delivered=delivered,
                   seconds=round(dur, 3) if dur else None,
                   images_per_s=round(delivered / dur, 2) if dur else None,
                   mb_per_s=round(nbytes / 1e6 / dur, 1) if dur else None,
                   ack_seconds=round(max(acked) - t0, 3) if acked else None,
                   p50_ms=round(1000 * pct(lat, 50), 1) if lat else None,
                   p99_ms=round(1000 * pct(lat, 99), 1) if lat else None,
                   max_ms=round(1000 * max(lat), 1) if lat else None)
        if delivered:
            # where the CPU went, per delivered image; util: busy share of all cores in the window
            row.update(machine_cpu_ms_img=round(1000 * busy / delivered, 1),
                       cpu_util=round(busy / (window * os.cpu_count()), 2),
                       router_cpu_ms_img=round(1000 * router_cpu / delivered, 1) if router_cpu is not None else None)
        if router.proc is not None:
            peak = max(sampler.peak if sampler else 0, router.info.get("hwm") or 0)
            row["peak_rss_mb"] = round(peak / 1e6, 1)
            row["router_cpu_s"] = round(router.info["cpu_s"], 2) if router.info.get("cpu_s") is not None else None
        if "metrics" in router.info:
            row.update(radroute_metrics(router.info["metrics"]))
        if base(path) in "de":
            row.update(radroute_log_timings(os.path.join(run_dir, "radroute.log")))
        return row
    finally:
        for p in (router.proc, sink):
            stop(p)
        if not a.keep:
            for sub in ("sink", "relay", "spool", "orthanc"):
                shutil.rmtree(os.path.join(run_dir, sub), ignore_errors=True)


def radroute_metrics(text):
    """Mean seconds per pipeline stage and label counters from radroute's /metrics."""
    out, sums, counts, labels, abst = {}, {}, {}, 0, 0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'radroute_stage_seconds_(sum|count)\{[^}]*stage="([^"]+)"[^}]*\} ([0-9.eE+-]+)', line)
        if m:
            (sums if m.group(1) == "sum" else counts)[m.group(2)] = float(m.group(3))
            continue
        m = re.match(r"radroute_(labels|abstentions)\w*(\{[^}]*\})? ([0-9.eE+-]+)", line)
        if m:
            if m.group(1) == "labels":
                labels += float(m.group(3))
            else:
                abst += float(m.group(3))
    for st in sorted(sums):
        if counts.get(st):
            out["stage_%s_ms" % st] = round(1000 * sums[st] / counts[st], 2)
            out["stage_%s_n" % st] = int(counts[st])
    out["labelled"] = int(labels)
    out["abstained"] = int(abst)
    # issue 14: the forward associations radroute learned the sink serves, and the openings that
    # stalled beside a sibling (one per learning, on a one-association sink)
    for line in text.splitlines():
        m = re.match(r"radroute_forward_(associations_limit|association_stalls_total)\{[^}]*\} ([0-9.eE+-]+)", line)
        if m:
            out["forward_" + m.group(1)] = int(float(m.group(2)))
    return out


def radroute_log_timings(logfile):
    """Mean per-instance milliseconds radroute logs: receive+spool+queue ("C-STORE stored ... ms=")
    and processing ("instance routed ... ms=")."""
    out = {}
    try:
        text = re.sub(r"\x1b\[[0-9;]*m", "", open(logfile, errors="replace").read())
    except OSError:
        return out
    m = re.search(r"model loaded model=(\S+) version=(\S+) .*?execution_provider=\"?(\w+)", text)
    if m:
        out["model"] = "%s %s (%s)" % m.groups()
    for key, pat in (("log_store_ms", r"C-STORE stored .* ms=(\d+)"), ("log_routed_ms", r"instance routed .* ms=(\d+)")):
        v = [int(x) for x in re.findall(pat, text)]
        if v:
            out[key] = round(sum(v) / len(v), 1)
    return out


# --------------------------------------------------------------------------------- reporting
def fmt(v, nd=1):
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def tables(rows, a):
    md = []
    for corpus in a.corpora:
        rs = [r for r in rows if r["corpus"] == corpus]
        if not rs:
            continue
        md += ["", "### %s" % corpus, "",
               "| conc | path | delivered | images/s | MB/s | ack images/s | p50 ms | p99 ms | peak RSS MB | router CPU s | classified (labelled / abstained) |",
               "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rs:
            if r.get("note"):
                md.append("| %s | %s %s | **%s** | | | | | | | | |" % (r["conc"], r["path"], PATHS[r["path"]], r["note"]))
                continue
            ack = r["accepted"] / r["ack_seconds"] if r.get("ack_seconds") else None
            lab = ("%s (%s / %s)" % (r.get("stage_classify_n", 0), r["labelled"], r["abstained"])
                   if base(r["path"]) in "de" and "labelled" in r else "")
            md.append("| %s | %s %s | %s/%s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["conc"], r["path"], PATHS[r["path"]], r["delivered"], r["offered"], fmt(r["images_per_s"]),
                fmt(r["mb_per_s"]), fmt(ack), fmt(r["p50_ms"], 0), fmt(r["p99_ms"], 0),
                fmt(r.get("peak_rss_mb"), 0), fmt(r.get("router_cpu_s"), 1), lab))
        # where the CPU of the sending window went: on a machine this small, senders, router and
        # sink share the cores, so images/s can never pass cores x 1000 / (machine CPU ms per image)
        md += ["", "CPU budget of the sending window (%s, %d cores): machine = every process and the kernel; "
               "ceiling = cores x 1000 / machine ms per image, reached only at 100 %% busy" % (corpus, os.cpu_count()), "",
               "| conc | path | images/s | machine CPU ms/image | router CPU ms/image | rest ms/image | busy | ceiling images/s |",
               "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in rs:
            m = r.get("machine_cpu_ms_img")
            if r.get("note") or not m:
                continue
            rcpu = r.get("router_cpu_ms_img")
            md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["conc"], r["path"], fmt(r["images_per_s"]), fmt(m), fmt(rcpu),
                fmt(m - rcpu if rcpu is not None else None), fmt(r.get("cpu_util"), 2),
                fmt(os.cpu_count() * 1000.0 / m)))
    # ratios of images/s: d and e against a, b, c
    md += ["", "### Ratios (images/s of d and e over a, b, s, c)", "",
           "| corpus | conc | d/a | d/b | d/s | d/c | e/a | e/b | e/s | e/c |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    key = {(r["corpus"], r["conc"], r["path"]): r for r in rows}

    def ratio(c, n, x, y):
        rx, ry = key.get((c, n, x)), key.get((c, n, y))
        if not rx or not ry or not rx.get("images_per_s") or not ry.get("images_per_s"):
            return None
        # a ratio of throughputs is only meaningful when both delivered everything offered
        return rx["images_per_s"] / ry["images_per_s"]

    for corpus in a.corpora:
        for n in a.conc:
            if not any(k[0] == corpus and k[1] == n for k in key):
                continue
            md.append("| %s | %d | %s |" % (corpus, n, " | ".join(
                fmt(ratio(corpus, n, x, y), 2) for x in "de" for y in "absc")))
    if any(single_sink(p) for p in a.paths):
        # issue 14: into a one-association sink against the same chain into the forking one
        md += ["", "### One-association sink (images/s ratios; X1 = path X into storescp without --fork)", "",
               "| corpus | conc | a1/a | b1/b | d1/d | e1/e | d1/b1 | d1/b | e1/b1 | d/b |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        pairs = [("a1", "a"), ("b1", "b"), ("d1", "d"), ("e1", "e"), ("d1", "b1"), ("d1", "b"), ("e1", "b1"),
                 ("d", "b")]
        for corpus in a.corpora:
            for n in a.conc:
                if not any(k[0] == corpus and k[1] == n for k in key):
                    continue
                md.append("| %s | %d | %s |" % (corpus, n, " | ".join(
                    fmt(ratio(corpus, n, x, y), 2) for x, y in pairs)))
    # targets of issue 6
    md += ["", "### Targets (issue 6)", "", "| target | measured | verdict |", "|---|---|---|"]

    def target(name, vals, ok):
        vals = [(lbl, v) for lbl, v in vals if v is not None]
        if not vals:
            md.append("| %s | not measured | – |" % name)
            return
        verdict = "PASS" if all(ok(v) for _, v in vals) else "FAIL"
        md.append("| %s | %s | %s |" % (name, ", ".join("%s: %s" % (l, fmt(v, 2)) for l, v in vals), verdict))

    def get(c, n, p, f):
        r = key.get((c, n, p))
        return r.get(f) if r else None

    target("d ≥ 33 images/s, cr-unc", [("c=%d" % n, get("cr-unc", n, "d", "images_per_s")) for n in a.conc],
           lambda v: v >= 33)
    def vs_relay(n):   # against the faster of the two dcmtk relays, b and s
        rs = [v for v in (ratio("cr-unc", n, "d", "b"), ratio("cr-unc", n, "d", "s")) if v is not None]
        return min(rs) if rs else None
    target("d ≥ 2× b (faster of b, s), cr-unc", [("c=%d" % n, vs_relay(n)) for n in a.conc], lambda v: v >= 2)
    target("e ≥ 0.9× a, cr-unc", [("c=%d" % n, ratio("cr-unc", n, "e", "a")) for n in a.conc], lambda v: v >= 0.9)
    target("d1 ≥ 0.9× d (one-association sink, issue 14), cr-unc",
           [("c=%d" % n, ratio("cr-unc", n, "d1", "d")) for n in a.conc], lambda v: v >= 0.9)
    target("d1 ≥ 33 images/s, cr-unc", [("c=%d" % n, get("cr-unc", n, "d1", "images_per_s")) for n in a.conc],
           lambda v: v >= 33)
    target("p99 ≤ 1 s at 8 associations (d, e; ms)",
           [("%s %s" % (c, p), get(c, 8, p, "p99_ms")) for c in a.corpora for p in "de"], lambda v: v <= 1000)
    target("peak RSS ≤ 500 MB (d, e; MB)",
           [("max", max([r["peak_rss_mb"] for r in rows if base(r["path"]) in "de" and r.get("peak_rss_mb")], default=None))],
           lambda v: v <= 500)
    return "\n".join(md)


def machine_info(a):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001 - informational only
            return "?"
    cpu = sh("lscpu | sed -n 's/^Model name: *//p' | head -1")
    mem = sh("free -g | awk '/Mem:/{print $2\" GiB\"}'")
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": "%s, %s, %d CPUs, %s RAM, kernel %s" % (platform.node(), cpu, os.cpu_count(), mem, platform.release()),
        "disk": sh("df -h %s | tail -1 | awk '{print $1}'" % a.out),
        "dcmtk": sh(STORESCU + " --version | head -1"),
        "orthanc": sh(ORTHANC + " --version | head -1"),
        "radroute": sh("git -C %s describe --always --dirty" % REPO) + " (" + a.radroute + ")",
        "load": open("/proc/loadavg").read().strip(),
    }


# --------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100, help="images per synthetic corpus (default 100)")
    ap.add_argument("--conc", default="1,4,8", help="concurrent associations, list (default 1,4,8)")
    ap.add_argument("--corpora", default=",".join(CORPORA), help="list of " + ",".join(CORPORA))
    ap.add_argument("--paths", default="a,b,s,c,d,e", help="list of a,b,s,c,d,e and a1,b1,s1,c1,d1,e1 (see above)")
    ap.add_argument("--reps", type=int, default=3, help="repeat each measurement (default 3); the table shows "
                    "the repetition with the median images/s")
    ap.add_argument("--quick", action="store_true", help="smoke run: --count 10 --conc 1 --corpora cr-unc")
    ap.add_argument("--out", default="/tmp/radroute-bench")
    ap.add_argument("--corpus-dir", help="default <out>/corpus")
    ap.add_argument("--peers", default=os.path.join(SHARED, "peers"))
    ap.add_argument("--samples", default=os.path.join(SHARED, "data", "dicom-samples", "good"))
    ap.add_argument("--radroute", default=os.path.join(REPO, "target", "release", "radroute"))
    ap.add_argument("--model", default=None, help="model dir for path d (default models/bodypart, "
                    "else tests/fixtures/models/tiny)")
    ap.add_argument("--ort-dylib", default=os.environ.get("ORT_DYLIB_PATH") or next(iter(sorted(glob.glob(
        os.path.join(REPO, ".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*")))), None))
    ap.add_argument("--base-port", type=int, default=21100,
                    help="first port; below the ephemeral range (32768+), so outgoing connections cannot take it")
    ap.add_argument("--stall", type=float, default=20, help="give up waiting after this long without an arrival")
    ap.add_argument("--run-timeout", type=float, default=600)
    ap.add_argument("--perf", action="store_true", help="profile radroute (d, e) with perf record; "
                    "perf.txt per run (diagnostic: perturbs the numbers)")
    ap.add_argument("--keep", action="store_true", help="keep received files, spools and Orthanc storage")
    a = ap.parse_args()
    if a.quick:
        a.count, a.conc, a.corpora, a.reps = 10, "1", "cr-unc", 1
    a.conc = [int(x) for x in str(a.conc).split(",") if x]
    a.corpora = [x for x in a.corpora.split(",") if x]
    a.paths = [x for x in a.paths.split(",") if x]
    for c in a.corpora:
        if c not in CORPORA:
            ap.error("unknown corpus %s" % c)
    for p in a.paths:
        if p not in PATHS:
            ap.error("unknown path %s" % p)
    if a.model is None:
        real = os.path.join(REPO, "models", "bodypart")
        a.model = real if os.path.exists(os.path.join(real, "manifest.toml")) else os.path.join(REPO, "tests", "fixtures", "models", "tiny")
    a.corpus_dir = a.corpus_dir or os.path.join(a.out, "corpus")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    res = os.path.join(a.out, "results-" + stamp)
    os.makedirs(os.path.join(res, "runs"), exist_ok=True)
    latest = os.path.join(a.out, "latest")
    if os.path.islink(latest):
        os.remove(latest)
    if not os.path.exists(latest):
        os.symlink(res, latest)

    info = machine_info(a)
    dirs = prepare_corpora(a)
    corpora = {}
    for name in a.corpora:
        items, profile = index_corpus(name, dirs[name], a.count, res)
        corpora[name] = (items, profile)
        mb = sum(i["size"] for i in items) / 1e6
        log("corpus %s: %d files, %.1f MB, syntaxes %s" % (name, len(items), mb, sorted({i["ts"] for i in items})))
        # warm the page cache: every path reads the corpus from memory, not from disk
        for i in items:
            with open(i["path"], "rb") as fh:
                while fh.read(1 << 22):
                    pass
    d_ok, d_why = (True, "")
    if any(base(p) == "d" for p in a.paths):
        d_ok, d_why = classify_wired(a)
        if not d_ok:
            log("NOT MEASURED: path d, classification not wired yet (%s)" % d_why)
    model_note = a.model if d_ok else "–"

    n_run = 0
    fields = ["corpus", "conc", "path", "rep", "offered", "accepted", "send_failed", "delivered", "seconds",
              "ack_seconds", "images_per_s", "mb_per_s", "p50_ms", "p99_ms", "max_ms", "peak_rss_mb",
              "router_cpu_s", "machine_cpu_ms_img", "router_cpu_ms_img", "cpu_util", "labelled", "abstained",
              "model", "note"]
    extra = set()
    raw = []
    t_all = time.time()
    # repetitions outermost, paths innermost: slow drift of the machine hits every path alike
    for rep in range(a.reps):
        for corpus in a.corpora:
            items, profile = corpora[corpus]
            for conc in a.conc:
                for path in a.paths:
                    if base(path) == "d" and not d_ok:
                        continue
                    ports, n_run = free_ports(a.base_port, n_run)
                    run_dir = os.path.join(res, "runs", "%s-c%d-%s-r%d" % (corpus, conc, path, rep))
                    subprocess.run(["sync"])      # no write-back of the previous run during this one
                    time.sleep(1)
                    try:
                        r = measure(a, corpus, items, profile, path, conc, run_dir, ports)
                    except Exception as e:  # noqa: BLE001 - one failed path must not end the run
                        log("%s c=%d %s: ERROR %s" % (corpus, conc, path, e))
                        r = dict(corpus=corpus, conc=conc, path=path, offered=len(items), note="ERROR: %s" % e)
                    r["rep"] = rep
                    raw.append(r)
                    extra |= set(r) - set(fields)
                    log("%-9s c=%d %s: %s/%s delivered, %s img/s, %s MB/s, p50 %s ms, p99 %s ms, RSS %s MB%s" % (
                        corpus, conc, path, r.get("delivered"), r.get("offered"), r.get("images_per_s"),
                        r.get("mb_per_s"), r.get("p50_ms"), r.get("p99_ms"), r.get("peak_rss_mb"),
                        " " + r["note"] if r.get("note") else ""))
    rows = []   # per (corpus, conc, path): the repetition with the median images/s
    for corpus in a.corpora:
        for conc in a.conc:
            for path in a.paths:
                reps = [r for r in raw if (r["corpus"], r["conc"], r["path"]) == (corpus, conc, path)]
                if base(path) == "d" and not d_ok:
                    rows.append(dict(corpus=corpus, conc=conc, path=path, offered=len(corpora[corpus][0]),
                                     note="NOT MEASURED: classification not wired yet"))
                    continue
                ok = [r for r in reps if r.get("images_per_s")]
                rows.append(sorted(ok, key=lambda r: r["images_per_s"])[len(ok) // 2] if ok else reps[-1])
    with open(os.path.join(res, "results.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields + sorted(extra), extrasaction="ignore")
        w.writeheader()
        for r in raw:
            w.writerow(r)
    info["load_end"] = open("/proc/loadavg").read().strip()
    loaded = sorted({r["model"] for r in raw if r.get("model")})
    if d_ok:
        model_note = "%s, %s" % (a.model, " / ".join(loaded) or "model not reported loaded")
    cmd = " ".join([os.path.relpath(sys.argv[0], REPO) if sys.argv[0].startswith(REPO) else sys.argv[0]] + sys.argv[1:])
    head = ["## radroute benchmark, %s" % info["date"], "",
            "- command: `%s` (%.0f s)" % (cmd, time.time() - t_all),
            "- machine: %s; spool/sink disk %s" % (info["host"], info["disk"]),
            "- load average at start / end: %s / %s" % (info["load"], info["load_end"]),
            "- dcmtk: %s; Orthanc: %s; radroute: %s" % (info["dcmtk"], info["orthanc"], info["radroute"]),
            "- model (path d): %s; corpus: %s" % (model_note if d_ok else "NOT MEASURED: " + d_why, ", ".join(
                "%s %d files %.0f MB" % (c, len(corpora[c][0]), sum(i["size"] for i in corpora[c][0]) / 1e6)
                for c in a.corpora)),
            "- TCP_NODELAY=1 for dcmtk and Orthanc; PDU 131072 for dcmtk and Orthanc, radroute defaults;"
            " sink: storescp --fork writing files (paths X1: the same storescp without --fork) (accepts the corpus's syntaxes); latency: sender's \"Sending file\" to sink's"
            " \"storing DICOM file\", matched by SOP Instance UID"]
    md = "\n".join(head) + "\n" + tables(rows, a) + "\n"
    open(os.path.join(res, "results.md"), "w").write(md)
    print(md)
    log("results in %s" % res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
