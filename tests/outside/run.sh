#!/usr/bin/env bash
# Kafka clients that no one here wrote, against `riverbed serve` (issue 17, item 5).
#
# Installs kcat (apt), a Python venv with kafka-python and confluent-kafka (pip, pinned below)
# and kafkajs (npm ci of tests/outside/js, whose package-lock.json pins it), builds `riverbed`
# once, then runs every client's scenarios, each against a fresh server on its own data
# directory, started and stopped here. A client whose install failed for lack of network is
# skipped with a message saying so; any other install failure, and any failed scenario, fails the
# run. The last line is `outside: N passed, N failed, N skipped`.
#
# Usage: tests/outside/run.sh [FILTER]    (FILTER: run only scenarios whose name contains it)
# Env:   RIVERBED_OUTSIDE_KEEP=1 keeps the work directory (data dirs, server logs) for a look.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tests/outside"
FILTER="${1:-}"
export CARGO_TERM_COLOR=never

# Pinned clients (the research used these: ../shared/research/kafka-wire.md).
PIP_PKGS=(kafka-python==3.0.12 confluent-kafka==2.16.2
  # kafka-python's optional codecs: snappy, zstd, lz4 (gzip is in Python's stdlib).
  python-snappy==0.7.3 zstandard==0.25.0 lz4==4.4.5)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/riverbed-outside.XXXXXX")"
VENV="${RIVERBED_OUTSIDE_VENV:-$ROOT/target/outside-venv}"
PY="$VENV/bin/python"
BIN="$ROOT/target/release/riverbed"
EXAMPLE="$ROOT/target/release/examples/serve_and_consume"

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
  done
  if [ "${RIVERBED_OUTSIDE_KEEP:-0}" = 1 ]; then
    echo "outside: work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "outside: $*"; }

# An install's output that says the registry could not be reached (as opposed to a package that
# does not exist or a build that failed, which must fail the run).
NET_RE='Temporary failure|Could not resolve|Name or service not known|Network is unreachable|Failed to establish a new connection|Connection refused|Connection timed out|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|Could not connect to|Failed to fetch|No route to host'
install_failed() { # NAME LOGFILE -> 0 = skip (network), exits 1 otherwise
  if grep -Eq "$NET_RE" "$2"; then
    log "SKIP $1: its install could not reach the package registry (no network):"
    tail -n 5 "$2" | sed 's/^/    /'
    return 0
  fi
  log "FAIL: installing $1 failed (not a network failure):"
  tail -n 30 "$2" | sed 's/^/    /'
  exit 1
}

# ---------------------------------------------------------------- installs
HAVE_KCAT=0 HAVE_PY=0 HAVE_JS=0
if command -v kcat >/dev/null 2>&1; then
  HAVE_KCAT=1
else
  log "installing kcat (apt)"
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; } \
    >"$WORK/apt.log" 2>&1 && command -v kcat >/dev/null 2>&1; then
    HAVE_KCAT=1
  else
    install_failed kcat "$WORK/apt.log"
  fi
fi

if [ -x "$PY" ] && "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "confluent-kafka==2.16.2" &&
  "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "kafka-python==3.0.12"; then
  HAVE_PY=1
else
  log "installing kafka-python and confluent-kafka (pip, venv $VENV)"
  if { python3 -m venv "$VENV" && "$VENV/bin/pip" install --disable-pip-version-check \
    "${PIP_PKGS[@]}"; } >"$WORK/pip.log" 2>&1; then
    HAVE_PY=1
  else
    install_failed "kafka-python/confluent-kafka" "$WORK/pip.log"
  fi
fi

if [ -d "$HERE/js/node_modules/kafkajs" ] &&
  grep -q '"version": "2.2.4"' "$HERE/js/node_modules/kafkajs/package.json"; then
  HAVE_JS=1
else
  log "installing kafkajs (npm ci)"
  if (cd "$HERE/js" && npm ci --no-audit --no-fund) >"$WORK/npm.log" 2>&1; then
    HAVE_JS=1
  else
    install_failed kafkajs "$WORK/npm.log"
  fi
fi

# A tool that cannot be installed and cannot be reached is skipped; none at all means no test ran,
# which must not pass silently as a green run of nothing: say so and stop.
if [ $((HAVE_KCAT + HAVE_PY + HAVE_JS)) = 0 ]; then
  log "SKIPPED: no outside client could be installed (no network)"
  exit 0
fi
[ "$HAVE_PY" = 1 ] && log "$("$PY" -c 'import confluent_kafka, kafka, importlib.metadata as m; print("confluent-kafka", m.version("confluent-kafka"), "(librdkafka", confluent_kafka.libversion()[0] + ") | kafka-python", kafka.__version__)')"
[ "$HAVE_JS" = 1 ] && log "kafkajs $(node -p 'require(process.argv[1]).version' "$HERE/js/node_modules/kafkajs/package.json") (node $(node --version))"
[ "$HAVE_KCAT" = 1 ] && log "$(kcat -V 2>&1 | grep -i -m1 "version")"

# ---------------------------------------------------------------- build
log "building riverbed (cli, server) and examples/serve_and_consume"
if ! (cd "$ROOT" && cargo build --release --features cli,server --bin riverbed \
  --example serve_and_consume) >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log"
  log "FAIL: build"
  exit 1
fi

# ---------------------------------------------------------------- servers
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until something accepts on PORT (at most 30 s) while PID lives.
wait_port() {
  local i
  for i in $(seq 300); do
    if ! kill -0 "$2" 2>/dev/null; then return 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# start_server DIR PORT [COMMAND...]: `riverbed -d DIR serve --listen 127.0.0.1:PORT` (or the given
# command) in the background, its log appended to DIR.log; sets SERVER_PID.
start_server() {
  local dir="$1" port="$2"
  shift 2
  if [ $# = 0 ]; then set -- "$BIN" -d "$dir" serve --listen "127.0.0.1:$port"; fi
  echo "--- start: $*" >>"$dir.log"
  "$@" >>"$dir.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  if ! wait_port "$port" "$SERVER_PID"; then
    echo "server did not listen on 127.0.0.1:$port within 30 s (or exited)" >&2
    return 1
  fi
}

# stop_server [SIGNAL]: SIGTERM (a clean shutdown, at most 15 s, then SIGKILL) or the given signal.
stop_server() {
  local sig="${1:-TERM}" i
  [ -n "${SERVER_PID:-}" ] || return 0
  # (Every status ignored: the bodies run under `set -e`, and a killed server's is not 0.)
  kill "-$sig" "$SERVER_PID" 2>/dev/null || true
  for i in $(seq 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server $SERVER_PID did not stop within 15 s of SIG$sig; killing it" >&2
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# ---------------------------------------------------------------- scenarios
PASSED=0 FAILED=0 SKIPPED=0 FAILED_NAMES=()

# scenario NAME NEEDS BODY...: runs BODY (a shell function) with DIR (a fresh data directory),
# PORT and BOOTSTRAP set. NEEDS: py, js, kcat.
scenario() {
  local name="$1" needs="$2"
  shift 2
  if [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]]; then return; fi
  case "$needs" in
  py) [ "$HAVE_PY" = 1 ] || { SKIPPED=$((SKIPPED + 1)); log "skip $name (no Python clients)"; return; } ;;
  # kafkajs scenarios use the Python side too (the group driver, the data-directory compare).
  js) [ "$HAVE_JS$HAVE_PY" = 11 ] || { SKIPPED=$((SKIPPED + 1)); log "skip $name (no kafkajs or no Python clients)"; return; } ;;
  kcat) [ "$HAVE_KCAT" = 1 ] || { SKIPPED=$((SKIPPED + 1)); log "skip $name (no kcat)"; return; } ;;
  esac
  export DIR="$WORK/$name" OUT="$WORK/$name.files" PORT
  PORT="$(free_port)"
  export BOOTSTRAP="127.0.0.1:$PORT"
  mkdir -p "$DIR" "$OUT"
  local start=$SECONDS rc
  # Every client command in a body runs under `timeout`, and the server waits are bounded, so a
  # hung client or server fails its scenario instead of stalling CI.
  (
    set -e
    SERVER_PID=
    trap 'rc=$?; stop_server KILL; exit $rc' EXIT
    "$@"
  ) >"$DIR.out" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    PASSED=$((PASSED + 1))
    log "ok   $name ($((SECONDS - start)) s)"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    log "FAIL $name (exit $rc, $((SECONDS - start)) s)"
    sed 's/^/    | /' "$DIR.out" | tail -n 60
    if [ -f "$DIR.log" ]; then
      echo "    server log ($DIR.log), last 60 lines:"
      sed 's/^/    > /' "$DIR.log" | tail -n 60
    fi
  fi
}

# Shared steps of the scenario bodies ---------------------------------------------

# serve: a fresh `riverbed serve` on DIR.
serve() { start_server "$DIR" "$PORT"; }

# cli_check TOPIC EXPECTED_JSONL: the data directory, read by the `riverbed` CLI with the server
# stopped, holds exactly the records the client wrote (key, value, headers, timestamp, partition).
cli_check() {
  stop_server
  "$BIN" -d "$DIR" topics list >"$OUT/topics.txt"
  grep -qw "$1" "$OUT/topics.txt" || { echo "riverbed topics list has no $1:"; cat "$OUT/topics.txt"; return 1; }
  "$BIN" -d "$DIR" consume "$1" -o beginning -e --json >"$OUT/cli-$1.jsonl"
  "$PY" "$HERE/py/compare.py" "$2" "$OUT/cli-$1.jsonl"
}

# The scenario bodies live in one file per client.
# shellcheck source=tests/outside/scenarios.sh
. "$HERE/scenarios.sh"

echo "outside: $PASSED passed, $FAILED failed, $SKIPPED skipped"
if [ "$FAILED" != 0 ]; then
  log "failed: ${FAILED_NAMES[*]}"
  exit 1
fi
