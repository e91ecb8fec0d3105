"""group_driver.py CLIENT GROUP TOPIC INPROC.jsonl: a consumer group of two remote members
(CLIENT: ck = confluent-kafka, kp = kafka-python, js = kafkajs) and the in-process member of
examples/serve_and_consume (already running, writing INPROC.jsonl).

1. Start members A and B; wait until the three members own all partitions between them, each
   at least one (the partitions are split across processes and across clients).
2. Produce 60 keyed records (confluent-kafka, acks=all); wait until all are seen.
3. Stop B (SIGTERM: it closes, leaving the group); wait until A and the in-process member own
   all partitions again; produce 60 more; wait until all are seen.
4. Every record (partition, offset) was seen exactly once across the three members.
"""
import json
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Producer

from common import BOOTSTRAP, deadline, fail, note

HERE = os.path.dirname(os.path.abspath(__file__))
client, group, topic, inproc_path = sys.argv[1:5]
PARTS = 4


def member_cmd(name):
    if client == "js":
        os.environ["KAFKAJS_NO_PARTITIONER_WARNING"] = "1"
        return ["node", os.path.join(HERE, "..", "js", "scenarios.js"), "member", name, group, topic]
    return [sys.executable, os.path.join(HERE, f"{client}.py"), "member", name, group, topic]


outs = {}
procs = {}
for name in ("A", "B"):
    path = f"{inproc_path}.{name}"
    outs[name] = path
    procs[name] = subprocess.Popen(member_cmd(name), stdout=open(path, "w"),
                                   stderr=open(path + ".err", "w"))


def events():
    evs = []
    for path in [inproc_path] + list(outs.values()):
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line.startswith("{") and line.endswith("}"):
                        evs.append(json.loads(line))
        except FileNotFoundError:
            pass
    return evs


def owners():
    """The latest assignment of each member (revoked = none)."""
    own = {}
    for e in events():
        if e.get("event") == "assigned":
            own[e["member"]] = set(e["partitions"])
        elif e.get("event") in ("revoked", "closed"):
            own[e["member"]] = set()
    return own


def wait_split(members, why, seconds=90):
    alive = deadline(seconds)
    while alive():
        for n, p in procs.items():
            if n in members and p.poll() is not None:
                fail(f"member {n} exited with {p.returncode}: {open(outs[n] + '.err').read()[-2000:]}")
        own = owners()
        sets = [own.get(m, set()) for m in members]
        union = set().union(*sets)
        disjoint = sum(len(s) for s in sets) == len(union)
        if union == set(range(PARTS)) and disjoint and all(sets):
            note(f"{why}: " + ", ".join(f"{m} owns {sorted(s)}" for m, s in zip(members, sets)))
            return
        time.sleep(0.2)
    fail(f"{why}: no split of {PARTS} partitions among {members} within {seconds} s: {owners()}")


def records():
    return [e for e in events() if "offset" in e]


def wait_seen(n, why, seconds=60):
    alive = deadline(seconds)
    while alive():
        keys = {(e["partition"], e["offset"]) for e in records()}
        if len(keys) >= n:
            return
        time.sleep(0.2)
    fail(f"{why}: saw {len({(e['partition'], e['offset']) for e in records()})} of {n} records")


producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all"})


def produce(start, n):
    for i in range(start, start + n):
        producer.produce(topic, key=f"key-{i}".encode(), value=f"v{i}".encode(), partition=i % PARTS)
    if producer.flush(20):
        fail("produce: undelivered records")


try:
    wait_split(["inproc", "A", "B"], "three members")
    produce(0, 60)
    wait_seen(60, "first 60")
    procs["B"].send_signal(signal.SIGTERM)
    procs["B"].wait(30)
    wait_split(["inproc", "A"], "after B left")
    produce(60, 60)
    wait_seen(120, "all 120")
    time.sleep(1.5)  # duplicates delivered late would show here
    seen = {}
    for e in records():
        seen.setdefault((e["partition"], e["offset"]), []).append(e["member"])
    dups = {k: v for k, v in seen.items() if len(v) > 1}
    if dups:
        fail(f"{len(dups)} records seen more than once, e.g. {sorted(dups.items())[:5]}")
    if len(seen) != 120:
        fail(f"{len(seen)} distinct records seen, expected 120")
    per = {}
    for e in records():
        per[e["member"]] = per.get(e["member"], 0) + 1
    note(f"group: 120 records seen exactly once across the members: {per}")
    for m in ("inproc", "A"):
        if not per.get(m):
            fail(f"member {m} saw no record")
finally:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
