# Scenario bodies of tests/outside/run.sh (sourced by it: uses DIR (the data directory), OUT (a
# directory for the scenario's other files, so the data directory holds only the store's), PORT,
# BOOTSTRAP, PY, BIN,
# EXAMPLE, HERE and its serve/start_server/stop_server/cli_check helpers). Each body runs in a
# subshell with `set -e`; every client command runs under `timeout`.

ck() { timeout 120 "$PY" "$HERE/py/ck.py" "$@"; }
kp() { timeout 120 "$PY" "$HERE/py/kp.py" "$@"; }
js() { KAFKAJS_NO_PARTITIONER_WARNING=1 timeout 120 node "$HERE/js/scenarios.js" "$@"; }

# produce: every codec the client has, idempotent and not, acks 0/1/all; the client reads back
# exactly what it wrote, then the riverbed CLI finds the same in the data directory.
produce_body() { # CLIENT
  serve
  "$1" produce "$OUT/expected.jsonl"
  cli_check produced "$OUT/expected.jsonl"
}

# restart: a group commits 20 of 50 records; the server is killed (SIGKILL) and started again
# on the same directory; the group resumes at offset 20 and reads 20..49.
restart_body() { # CLIENT
  serve
  "$1" fill resume-t 50
  "$1" commit g-resume resume-t 20
  stop_server KILL
  serve
  "$1" resume g-resume resume-t 20 50
}

# group: two remote members of the client plus the in-process member of
# examples/serve_and_consume, which serves its own store.
group_body() { # CLIENT
  # The in-process member offers the remote client's default protocol: kafkajs offers only
  # round robin ("RoundRobinAssigner"), the others range.
  local assignor=range
  [ "$1" = js ] && assignor=roundrobin
  start_server "$DIR" "$PORT" "$EXAMPLE" "$DIR" "$BOOTSTRAP" g-span span-t 4 "$OUT/inproc.jsonl" "$assignor"
  local rc=0
  timeout 200 "$PY" "$HERE/py/group_driver.py" "$1" g-span span-t "$OUT/inproc.jsonl" || rc=$?
  touch "$OUT/inproc.jsonl.stop"
  stop_server
  if [ "$rc" != 0 ]; then
    for f in "$OUT"/inproc.jsonl*; do echo "== $f"; tail -n 20 "$f"; done
    return "$rc"
  fi
}

admin_body() { # CLIENT
  serve
  "$1" admin
}

# The transactional consume-transform-produce loop (confluent-kafka's
# send_offsets_to_transaction), with SIGKILLs of the transformer or of the server at random
# points; then a run to the end, checked exactly-once by a read_committed consumer.
txn_body() {
  serve
  ck txn-setup
  local seed="${RIVERBED_OUTSIDE_SEED:-$RANDOM}" round t
  RANDOM="$seed"
  echo "txn: seed $seed (RIVERBED_OUTSIDE_SEED=$seed repeats these kills)"
  for round in 1 2 3 4 5 6; do
    # Not under `timeout`: the SIGKILL must reach the transformer itself (killing `timeout`
    # would leave it running as a zombie producer). It stops by itself after 50 s.
    "$PY" "$HERE/py/ck.py" txn-transform 50 >>"$OUT/transform.log" 2>&1 &
    t=$!
    sleep "$((1 + RANDOM % 5)).$((RANDOM % 10))"
    if [ $((RANDOM % 2)) = 0 ]; then
      echo "round $round: SIGKILL the transformer"
      kill -KILL "$t" 2>/dev/null || true
      wait "$t" || true
    else
      echo "round $round: SIGKILL the server"
      stop_server KILL
      serve
      # The transformer may survive the restart (librdkafka reconnects) or fail; either way it
      # is killed now, mid-transaction or not.
      sleep "0.$((RANDOM % 10))"
      kill -KILL "$t" 2>/dev/null || true
      wait "$t" || true
    fi
  done
  echo "final run to the end"
  timeout 150 "$PY" "$HERE/py/ck.py" txn-transform 140 >>"$OUT/transform.log" 2>&1 || {
    tail -n 40 "$OUT/transform.log"
    return 1
  }
  ck txn-verify
}

# kcat (librdkafka 2.0.2, which mis-skips tagged fields written with default values): metadata,
# keyed produce, consume, and a group consume.
kcat_body() {
  serve
  local md
  md="$(timeout 30 kcat -b "$BOOTSTRAP" -L -J)"
  echo "$md" | "$PY" -c 'import json,sys; m=json.load(sys.stdin); assert m["brokers"], m; print("kcat -L: brokers", [b["name"] for b in m["brokers"]])'
  printf 'alice:+50\nbob:-20\nalice:+5\ncarol:7\n' >"$OUT/in.txt"
  # The topic is created through the wire (kafka-python's admin) so that the server holds it.
  timeout 60 "$PY" -c "
from kafka import KafkaAdminClient
KafkaAdminClient(bootstrap_servers='$BOOTSTRAP').create_topics({'events': {'num_partitions': 2, 'replication_factor': 1}})"
  timeout 30 kcat -b "$BOOTSTRAP" -t events -P -K: -X enable.idempotence=true <"$OUT/in.txt"
  timeout 30 kcat -b "$BOOTSTRAP" -t events -C -e -q -f '%k:%s\n' | sort >"$OUT/out.txt"
  diff <(sort "$OUT/in.txt") "$OUT/out.txt"
  echo "kcat -P -K: / -C: 4 records round-trip"
  # Headers and a codec (lz4) through librdkafka 2.0.2, into another topic (auto-created).
  timeout 30 kcat -b "$BOOTSTRAP" -t events-lz4 -P -K: -z lz4 -H src=kcat -H n=1 <"$OUT/in.txt"
  timeout 30 kcat -b "$BOOTSTRAP" -t events-lz4 -C -e -q -f '%k:%s:%h\n' | sort >"$OUT/out-lz4.txt"
  diff <(sed 's/$/:src=kcat,n=1/' "$OUT/in.txt" | sort) "$OUT/out-lz4.txt"
  echo "kcat -z lz4 -H: 4 records with their headers round-trip"
  timeout 60 kcat -b "$BOOTSTRAP" -G billing events -e -q -f '%k:%s\n' -X auto.offset.reset=earliest |
    sort >"$OUT/group.txt"
  diff <(sort "$OUT/in.txt") "$OUT/group.txt"
  echo "kcat -G billing: 4 records"
  # The group committed its offsets: a second run of the group has nothing left to read.
  timeout 60 kcat -b "$BOOTSTRAP" -G billing events -e -q -f '%k:%s\n' >"$OUT/group2.txt"
  [ ! -s "$OUT/group2.txt" ] || { echo "second group run read again:"; cat "$OUT/group2.txt"; return 1; }
  echo "kcat -G billing again: nothing left (offsets committed)"
  stop_server
  "$BIN" -d "$DIR" consume events -o beginning -e -K: | sort >"$OUT/cli.txt"
  diff <(sort "$OUT/in.txt") "$OUT/cli.txt"
  echo "riverbed consume: the same 4 records in the data directory"
}

scenario confluent-produce py produce_body ck
scenario confluent-restart py restart_body ck
scenario confluent-group py group_body ck
scenario confluent-admin py admin_body ck
scenario confluent-txn-sigkill py txn_body
scenario kafka-python-produce py produce_body kp
scenario kafka-python-restart py restart_body kp
scenario kafka-python-group py group_body kp
scenario kafka-python-admin py admin_body kp
scenario kafkajs-produce js produce_body js
scenario kafkajs-restart js restart_body js
scenario kafkajs-group js group_body js
scenario kafkajs-admin js admin_body js
scenario kcat kcat kcat_body
