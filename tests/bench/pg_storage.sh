#!/usr/bin/env bash
# Instance storage through the InstanceStore trait: local files vs PostgreSQL chunk rows vs
# PostgreSQL large objects (put throughput with 1 and 4 threads, read, another node's first
# fetch), then deletion at volume (size, WAL, VACUUM, space reuse, VACUUM FULL) for both
# PostgreSQL layouts. Prints Markdown tables (medians of BENCH_ROUNDS rounds) and the machine.
#
# Needs PostgreSQL 15 from Debian (deploy/setup.sh --test); runs as root or another user (the
# throw-away server runs as `postgres` when run as root). The server keeps PostgreSQL's durable
# defaults (fsync, synchronous_commit, full_page_writes on). Runs in a temporary directory on
# the file system of $TMPDIR (the local spool of the comparison is there too).
#
# Environment: BENCH_MB (instance size, default 10), BENCH_BATCH (instances per round,
# default 20), BENCH_ROUNDS (default 5), BENCH_VOLUME (instances of the deletion test,
# default 500; 0 skips it), BENCH_LOG (also append the output to this file).
set -euo pipefail
cd "$(dirname "$0")/../.."
log=${BENCH_LOG:-/dev/null}
{
    echo "# pg_storage $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -n): $(nproc) cores," \
        "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
        "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);" \
        "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    cargo bench -q -p radroute-store-postgres --bench pg_storage 2>/dev/null
    echo
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$log"
