"""confluent-kafka (librdkafka) scenarios against `riverbed serve`; run by tests/outside/run.sh.

    ck.py produce OUT.jsonl      every codec, idempotent and not, acks 0/1/all; exact read-back
    ck.py commit GROUP TOPIC N   consume N records of TOPIC in GROUP, commit them, close
    ck.py resume GROUP TOPIC FIRST TOTAL   the group resumes at FIRST, reads to TOTAL
    ck.py member NAME GROUP TOPIC          a group member printing JSON lines (group_driver.py)
    ck.py admin                  create/delete topics, create partitions, describe/alter configs
    ck.py txn-setup / txn-transform / txn-verify   the consume-transform-produce loop
"""
import json
import os
import signal
import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic)

from common import (BOOTSTRAP, CODECS, compare, deadline, fail, note, rec, records_for,
                    write_jsonl)

BASE = {"bootstrap.servers": BOOTSTRAP, "socket.timeout.ms": 10000}


def admin():
    return AdminClient(dict(BASE))


def create_topics(topics, configs=None):
    a = admin()  # kept alive until the futures resolve (a dropped handle cancels them)
    fs = a.create_topics(
        [NewTopic(t, n, 1, config=(configs or {}).get(t, {})) for t, n in topics],
        request_timeout=15)
    for t, f in fs.items():
        f.result(20)
    note(f"created {[t for t, _ in topics]}")


def read_all(topic, partitions, count, isolation="read_committed", timeout=30):
    """Every record of the topic from the beginning (assign, no group), until `count` records
    or `timeout` seconds."""
    c = Consumer(dict(BASE, **{"group.id": "readback-unused", "enable.auto.commit": False,
                               "isolation.level": isolation, "enable.partition.eof": False}))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = []
    alive = deadline(timeout)
    while len(out) < count and alive():
        for m in c.consume(500, 1.0):
            if m.error():
                fail(f"read {topic}: {m.error()}")
            out.append(m)
    # A little longer: more than `count` records is a failure too.
    for m in c.consume(500, 0.5):
        if not m.error():
            out.append(m)
    c.close()
    return out


def as_rec(m):
    ttype, ts = m.timestamp()
    if ttype != 1:  # TIMESTAMP_CREATE_TIME
        fail(f"{m.topic()}[{m.partition()}]@{m.offset()}: timestamp type {ttype}, expected CreateTime")
    return rec(m.topic(), m.partition(), m.key(), m.value(), m.headers(), ts)


def produce(out_path):
    topic, parts = "produced", 3
    create_topics([(topic, parts)])
    modes = {
        "idem": {"enable.idempotence": True, "acks": "all"},
        "acks0": {"enable.idempotence": False, "acks": "0"},
        "acks1": {"enable.idempotence": False, "acks": "1"},
        "acksall": {"enable.idempotence": False, "acks": "all"},
    }
    expected = []
    for codec in CODECS:
        for mode, conf in modes.items():
            label = f"{codec}-{mode}"
            p = Producer(dict(BASE, **conf, **{"compression.type": codec, "linger.ms": 5}))
            errors = []

            def report(err, msg, errors=errors):
                if err is not None:
                    errors.append(err)

            for part, key, value, headers, ts in records_for(label, 20, parts):
                p.produce(topic, value=value, key=key, partition=part, headers=headers,
                          timestamp=ts, on_delivery=report)
                expected.append(rec(topic, part, key, value, headers, ts))
            left = p.flush(20)
            if left or errors:
                fail(f"{label}: {left} undelivered, errors {errors[:3]}")
    note(f"produced {len(expected)} records ({len(CODECS)} codecs x {len(modes)} modes)")
    got = read_all(topic, parts, len(expected))
    compare(expected, [as_rec(m) for m in got], "confluent-kafka read-back")
    write_jsonl(out_path, expected)


def commit(group, topic, n):
    n = int(n)
    c = Consumer(dict(BASE, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    c.subscribe([topic])
    got = []
    alive = deadline(60)
    while len(got) < n and alive():
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            fail(f"poll: {m.error()}")
        got.append(m)
    if len(got) < n:
        fail(f"consumed {len(got)} of {n}")
    # Commit exactly the first n (the topic has one partition here).
    c.commit(offsets=[TopicPartition(topic, 0, got[n - 1].offset() + 1)], asynchronous=False)
    committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    if committed != got[n - 1].offset() + 1:
        fail(f"committed() = {committed}, expected {got[n - 1].offset() + 1}")
    c.close()
    note(f"group {group} committed offset {committed}")


def resume(group, topic, first, total):
    first, total = int(first), int(total)
    c = Consumer(dict(BASE, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    c.subscribe([topic])
    got = []
    alive = deadline(60)
    while len(got) < total - first and alive():
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            fail(f"poll: {m.error()}")
        got.append(m)
    offsets = [m.offset() for m in got]
    if offsets != list(range(first, total)):
        fail(f"after the restart the group read offsets {offsets[:5]}..{offsets[-5:]} "
             f"({len(offsets)}), expected {first}..{total - 1}")
    values = [m.value().decode() for m in got]
    if values != [f"r{i}" for i in range(first, total)]:
        fail(f"values after restart differ: {values[:3]}...")
    c.commit(asynchronous=False)
    c.close()
    note(f"group {group} resumed at {first} and read {len(got)} records")


def member(name, group, topic):
    """A member of `group`: prints {"member","event":"assigned","partitions"} on each assignment
    and {"member","partition","offset","key"} per record, commits synchronously after each
    batch; on SIGTERM closes (LeaveGroup) and exits."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def emit(**kw):
        print(json.dumps(dict(member=name, **kw)), flush=True)

    def on_assign(c, parts):
        emit(event="assigned", partitions=sorted(p.partition for p in parts))

    def on_revoke(c, parts):
        emit(event="revoked", partitions=sorted(p.partition for p in parts))

    c = Consumer(dict(BASE, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False, "session.timeout.ms": 10000,
                               "heartbeat.interval.ms": 500,
                               "partition.assignment.strategy": "range"}))
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    alive = deadline(200)
    while not stop and alive():
        msgs = c.consume(100, 0.2)
        good = [m for m in msgs if not m.error()]
        for m in msgs:
            if m.error():
                emit(event="error", error=str(m.error()))
        for m in good:
            emit(partition=m.partition(), offset=m.offset(), key=m.key().decode())
        if good:
            try:
                c.commit(asynchronous=False)
            except KafkaException as e:
                emit(event="commit-failed", error=str(e))
    c.close()
    emit(event="closed")


def admin_scenario():
    a = admin()
    create_topics([("adm-a", 2), ("adm-b", 1)], {"adm-b": {"retention.ms": "3600000"}})
    md = a.list_topics(timeout=10)
    for t, n in (("adm-a", 2), ("adm-b", 1)):
        if t not in md.topics or len(md.topics[t].partitions) != n:
            fail(f"metadata after create: {t} missing or wrong partition count")
    # Creating an existing topic: TOPIC_ALREADY_EXISTS (36).
    f = a.create_topics([NewTopic("adm-a", 2, 1)])["adm-a"]
    try:
        f.result(15)
        fail("creating an existing topic succeeded")
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            fail(f"create existing: {e}, expected TOPIC_ALREADY_EXISTS")
    # CreatePartitions 2 -> 4; then the metadata shows 4 and a produce to partition 3 works.
    a.create_partitions([NewPartitions("adm-a", 4)])["adm-a"].result(15)
    alive = deadline(10)
    while alive():
        if len(a.list_topics("adm-a", timeout=10).topics["adm-a"].partitions) == 4:
            break
        time.sleep(0.2)
    else:
        fail("partitions did not grow to 4")
    p = Producer(dict(BASE))
    p.produce("adm-a", value=b"p3", partition=3)
    if p.flush(15):
        fail("produce to the new partition 3")
    # DescribeConfigs: the value set at creation.
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-b")
    cfg = a.describe_configs([res])[res].result(15)
    if cfg["retention.ms"].value != "3600000":
        fail(f"retention.ms = {cfg['retention.ms'].value}, expected 3600000")
    # IncrementalAlterConfigs: set retention.ms, then describe shows it.
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-b", incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(15)
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-b")
    cfg = a.describe_configs([res])[res].result(15)
    if cfg["retention.ms"].value != "7200000":
        fail(f"after alter retention.ms = {cfg['retention.ms'].value}, expected 7200000")
    # DeleteTopics; the topic leaves the metadata; deleting it again: UNKNOWN_TOPIC_OR_PART (3).
    a.delete_topics(["adm-b"])["adm-b"].result(15)
    if "adm-b" in a.list_topics(timeout=10).topics:
        fail("adm-b still listed after delete")
    try:
        a.delete_topics(["adm-b"])["adm-b"].result(15)
        fail("deleting a deleted topic succeeded")
    except KafkaException as e:
        if e.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            fail(f"delete unknown: {e}, expected UNKNOWN_TOPIC_OR_PART")
    note("admin: create, create existing, create partitions, describe, alter, delete: ok")


# ------------------------------------------------------------------ transactions
IN, OUT, N_IN = "txn-in", "txn-out", 400


def txn_setup():
    create_topics([(IN, 2), (OUT, 2)])
    p = Producer(dict(BASE, **{"enable.idempotence": True}))
    for i in range(N_IN):
        p.produce(IN, key=f"k{i}", value=f"in-{i}", partition=i % 2)
    if p.flush(20):
        fail("txn-setup: undelivered input")
    note(f"txn-setup: {N_IN} input records")


def txn_transform(max_seconds):
    """Reads IN in group `xform` (read_committed), writes `out-<n>` for each `in-<n>` to OUT and
    the consumed offsets in one transaction per batch (send_offsets_to_transaction). Exits when
    every input record is processed (its committed offsets reach the ends) or after
    max_seconds."""
    c = Consumer(dict(BASE, **{"group.id": "xform", "auto.offset.reset": "earliest",
                               "enable.auto.commit": False, "isolation.level": "read_committed",
                               "session.timeout.ms": 6000}))
    p = Producer(dict(BASE, **{"transactional.id": "xform-1", "transaction.timeout.ms": 10000}))
    p.init_transactions(30)
    c.subscribe([IN])
    alive = deadline(float(max_seconds))
    idle = 0
    while alive():
        msgs = [m for m in c.consume(50, 0.5) if not m.error()]
        if not msgs:
            idle += 1
            parts = c.assignment()
            if parts and idle >= 4:
                pos = c.position(parts)
                ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
                n_parts = len(c.list_topics(IN, timeout=10).topics[IN].partitions)
                # (A partition never read from has no position: done if it is empty.)
                if len(parts) == n_parts and all(q.offset == e or e == 0
                                                 for q, e in zip(pos, ends)):
                    note("txn-transform: input processed to the end")
                    break
            continue
        idle = 0
        p.begin_transaction()
        for m in msgs:
            n = m.value().decode().split("-")[1]
            p.produce(OUT, key=m.key(), value=f"out-{n}".encode(), partition=m.partition())
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
    c.close()


def txn_verify():
    got = read_all(OUT, 2, N_IN, isolation="read_committed", timeout=30)
    values = [m.value().decode() for m in got]
    dup = {v for v in values if values.count(v) > 1}
    want = {f"out-{i}" for i in range(N_IN)}
    missing = want - set(values)
    if dup or missing or len(values) != N_IN:
        fail(f"exactly-once broken: {len(values)} committed outputs, {len(dup)} duplicated "
             f"(e.g. {sorted(dup)[:5]}), {len(missing)} missing (e.g. {sorted(missing)[:5]})")
    # Per partition, the outputs keep the inputs' order.
    for part in (0, 1):
        ns = [int(m.value().decode()[4:]) for m in got if m.partition() == part]
        if ns != sorted(ns):
            fail(f"{OUT}[{part}] out of order")
    raw = read_all(OUT, 2, 10**9, isolation="read_uncommitted", timeout=3)
    note(f"txn-verify: {N_IN} outputs exactly once (read_committed); read_uncommitted sees "
         f"{len(raw)} records, aborted attempts included")


def fill(topic, n):
    create_topics([(topic, 1)])
    p = Producer(dict(BASE, **{"enable.idempotence": True}))
    for i in range(int(n)):
        p.produce(topic, key=f"k{i}", value=f"r{i}", partition=0)
    if p.flush(20):
        fail("fill: undelivered records")
    note(f"{topic}: {n} records")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"produce": produce, "fill": fill, "commit": commit, "resume": resume, "member": member,
     "admin": admin_scenario, "txn-setup": txn_setup, "txn-transform": txn_transform,
     "txn-verify": txn_verify}[cmd](*args)
