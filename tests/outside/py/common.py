"""Shared helpers of the outside-client scenarios (tests/outside/run.sh): the records a scenario
writes, and an exact comparison of what was written with what was read back."""
import json
import os
import sys
import time

BOOTSTRAP = os.environ.get("BOOTSTRAP", "127.0.0.1:9092")
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
# Explicit CreateTime timestamps, so that a read-back compares them exactly.
TS0 = 1_700_000_000_000


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def note(msg):
    print(msg, flush=True)


def text(b):
    if b is None:
        return None
    return b.decode() if isinstance(b, (bytes, bytearray)) else b


def rec(topic, partition, key, value, headers, ts):
    """One record as the scenarios compare it: text key/value (None for null), headers as
    [name, value] pairs in order, CreateTime in ms."""
    return {"topic": topic, "partition": partition, "key": text(key), "value": text(value),
            "headers": [[text(k), text(v)] for k, v in (headers or [])], "timestamp": ts}


def records_for(label, n, partitions):
    """n records with keys, headers (two, one repeated name) and timestamps; a null key and a
    null value among them. Returns (partition, key, value, headers, ts) tuples."""
    out = []
    for i in range(n):
        key = None if i == 3 else f"{label}-k{i}"
        value = None if i == 5 else (f"{label}-v{i}-" + "x" * (i * 7 % 50))
        headers = [("h1", f"{label}-{i}".encode()), ("h2", b"two"), ("h1", b"again")]
        if i % 4 == 1:
            headers = []
        out.append((i % partitions, key, value, headers, TS0 + i * 1000 + len(label)))
    return out


def by_partition(recs):
    parts = {}
    for r in recs:
        parts.setdefault((r["topic"], r["partition"]), []).append(
            {k: r[k] for k in ("key", "value", "headers", "timestamp")})
    return parts


def compare(expected, actual, what):
    """Exact: the same records in the same order in every partition."""
    e, a = by_partition(expected), by_partition(actual)
    if e == a:
        note(f"{what}: {len(expected)} records match exactly")
        return
    for tp in sorted(set(e) | set(a)):
        el, al = e.get(tp, []), a.get(tp, [])
        if el != al:
            note(f"{what}: {tp}: expected {len(el)} records, got {len(al)}")
            for i, (x, y) in enumerate(zip(el, al)):
                if x != y:
                    note(f"  first difference at #{i}:\n    expected {x}\n    got      {y}")
                    break
    fail(f"{what}: records differ")


def write_jsonl(path, recs):
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def deadline(seconds):
    end = time.monotonic() + seconds
    return lambda: time.monotonic() < end
