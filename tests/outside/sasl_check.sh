#!/usr/bin/env bash
# SASL (PLAIN, SCRAM-SHA-256/512) and TLS of `riverbed serve` against an outside client:
# kafka-python's SASL mechanisms and Python's ssl module (sasl_kafka_python.py), and
# librdkafka through confluent-kafka (sasl_librdkafka.py). Makes a
# credentials file with `riverbed credential`, a self-signed certificate with openssl, starts a
# SASL_PLAINTEXT and a SASL_SSL server on free ports, runs the checks, stops the servers.
#
# Usage: tests/outside/sasl_check.sh PATH_TO_RIVERBED PYTHON   (riverbed built with
# --features cli,server-tls; PYTHON with kafka-python and confluent-kafka installed)
set -euo pipefail
RIVERBED=${1:?riverbed binary}
PYTHON=${2:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
echo 'alice-secret' | "$RIVERBED" credential alice --mechanism SCRAM-SHA-256 > creds
echo 'alice-secret' | "$RIVERBED" credential alice --mechanism SCRAM-SHA-512 >> creds
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
"$RIVERBED" -d plain-data serve --listen 127.0.0.1:0 --sasl-credentials creds 2> plain.log &
PIDS+=($!)
"$RIVERBED" -d tls-data serve --listen 127.0.0.1:0 --sasl-credentials creds \
    --tls-cert cert.pem --tls-key key.pem 2> tls.log &
PIDS+=($!)
port() {
    for _ in $(seq 100); do
        p=$(sed -n 's/.* on 127.0.0.1:\([0-9]*\)$/\1/p' "$1")
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.1
    done
    echo "no port in $1" >&2; cat "$1" >&2; exit 1
}
PLAIN_PORT=$(port plain.log)
TLS_PORT=$(port tls.log)
"$PYTHON" "$HERE/sasl_kafka_python.py" "$PLAIN_PORT" "$TLS_PORT" "$WORK/cert.pem"
"$PYTHON" "$HERE/sasl_librdkafka.py" "$PLAIN_PORT" "$TLS_PORT" "$WORK/cert.pem"
