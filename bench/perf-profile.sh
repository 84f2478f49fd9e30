#!/bin/bash
# perf-profile.sh — CPU profile of the dfs processes (three servers and the
# client) during one stretch of a dfs-only benchmark run, grouped by the
# packages in each stack. dfs serves no pprof, so this uses perf(1) with
# the cpu-clock event (no PMU needed); Go keeps frame pointers.
#
# Usage (as root, after make build):
#   bench/perf-profile.sh AFTER SECONDS [DFSBENCH FLAGS...]
# AFTER is the phase whose log line starts the recording ("start" for
# right after the mount is up); the recording then covers the next phase.
# Examples:
#   bench/perf-profile.sh start 8 -quick -seq-mib 512          # seq write
#   bench/perf-profile.sh "seq read" 8 -quick -files 3000     # small create
#   bench/perf-profile.sh "  remove" 30 -quick -skip-tree=false   # tree copy
# Output: OUT/perf.data (perf report -i ...) and the grouped summary.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,16p "$0"; exit 2; }
AFTER=$1 SECS=$2; shift 2
OUT=${OUT:-/tmp/dfs-perf-profile}
HOSTS=${HOSTS:-127.0.0.32,127.0.0.33,127.0.0.34}
WORK=/var/tmp/dfsbench-profile
command -v perf >/dev/null || { echo "perf not installed (apt-get install linux-perf)"; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
go build -o bench/bin/dfsbench ./bench/cmd/dfsbench
bench/bin/dfsbench -dfs bin/dfs -systems dfs -dfs-hosts "$HOSTS" -results "$OUT" -workdir "$WORK" "$@" \
	>"$OUT/run.out" 2>"$OUT/run.err" &
BP=$!
trap 'kill $BP 2>/dev/null || true' INT TERM
first=${HOSTS%%,*}
for _ in $(seq 600); do mountpoint -q "$WORK/dfs/mnt" && break; sleep 0.1; done
pids=""
for h in ${HOSTS//,/ }; do pids="$pids,$(pgrep -f "server --listen $h:24007" | head -1)"; done
pids="${pids#,},$(pgrep -f "mount -f -o log-level=WARNING $first:" | head -1)"
echo "profiling pids $pids"
if [ "$AFTER" != start ]; then
	for _ in $(seq 6000); do grep -q -- "$AFTER" "$OUT/run.err" && break; sleep 0.2; done
fi
perf record -q -e cpu-clock -F 499 -g -p "$pids" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null || true
wait $BP || true
cat "$OUT/run.err"
perf script -i "$OUT/perf.data" 2>/dev/null | python3 -c '
import sys, re, collections
cats = [
 ("Pebble compaction/flush", r"pebble.*compact|pebble.*(flush|Flush)"),
 ("Pebble WAL/commit", r"pebble.*(record|wal|commitPipeline|\(\*DB\)\.(Apply|Set|commitWrite))"),
 ("Raft transport (msgpack)", r"go-msgpack|NetworkTransport|raft\.\(\*netConn|raft.*(sendRPC|decodeResponse|handleCommand)"),
 ("Raft log store (raftstore)", r"raftstore"),
 ("brick store apply (FSM)", r"brick/store"),
 ("gRPC/protobuf", r"grpc|protobuf"),
 ("FUSE and client library", r"go-fuse|dfs/fuse|pkg/client"),
 ("Raft (other)", r"hashicorp/raft"),
 ("Go GC", r"runtime\.(gcBgMarkWorker|bgsweep|gcDrain|mallocgc|scanobject|bgscavenge)"),
 ("Go scheduler", r"runtime\.(schedule|findRunnable|mcall|park_m|goexit)"),
]
tot, n = collections.Counter(), 0
for s in sys.stdin.read().split("\n\n"):
    lines = s.strip().split("\n")
    if not lines or not lines[0].startswith("dfs"):
        continue
    n += 1
    st = "\n".join(lines[1:])
    tot[next((c for c, p in cats if re.search(p, st)), "other")] += 1
for k, v in tot.most_common():
    print(f"{100*v/max(n,1):5.1f}%  {k}")
print(f"{n} samples")
'
