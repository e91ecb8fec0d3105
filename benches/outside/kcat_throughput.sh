#!/usr/bin/env bash
# librdkafka through kcat (C, no interpreter in the way) against `riverbed serve`: produce N
# records of 100 B with acks=all, then consume them all, timing each. Usage:
#   benches/outside/kcat_throughput.sh [N]      (needs target/release/riverbed: --features cli,server)
# Its in-process reference: `cargo bench --features server --bench wire` (same record size).
set -euo pipefail
N="${1:-1000000}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/target/release/riverbed"
WORK="$(mktemp -d)"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" -d "$WORK/data" serve --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do grep -q serving "$WORK/serve.log" && break; sleep 0.1; done
python3 -c "import sys; sys.stdout.write(('x'*100+'\n')*$N)" > "$WORK/in"
t0=$(date +%s.%N)
kcat -b "127.0.0.1:$PORT" -t bench -P -X acks=all -X linger.ms=5 -X batch.num.messages=10000 \
  -X queue.buffering.max.messages=1000000 -l "$WORK/in"
t1=$(date +%s.%N)
got=$(kcat -b "127.0.0.1:$PORT" -t bench -C -o beginning -e -q -X fetch.max.bytes=52428800 \
  -X max.partition.fetch.bytes=10485760 -f '%o\n' | wc -l)
t2=$(date +%s.%N)
python3 - "$N" "$got" "$t0" "$t1" "$t2" <<'PY'
import sys
n, got, t0, t1, t2 = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:])
print(f"kcat produce acks=all: {n} x 100 B in {t1-t0:.2f} s = {n/(t1-t0):,.0f} rec/s")
print(f"kcat consume: {got} records in {t2-t1:.2f} s = {got/(t2-t1):,.0f} rec/s (process start included)")
assert got == n, (got, n)
PY
