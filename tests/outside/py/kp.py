"""kafka-python (a pure-Python protocol implementation that checks CRCs) scenarios against
`riverbed serve`; run by tests/outside/run.sh. Same subcommands as ck.py (no transactions:
the exactly-once loop is confluent-kafka's)."""
import json
import signal
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from kafka.structs import OffsetAndMetadata

from common import BOOTSTRAP, CODECS, compare, deadline, fail, note, rec, records_for, write_jsonl


def admin():
    return KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=15000)


def create_topics(topics, configs=None):
    a = admin()
    a.create_topics({t: {"num_partitions": n, "replication_factor": 1,
                         "configs": (configs or {}).get(t, {})} for t, n in topics})
    a.close()
    note(f"created {[t for t, _ in topics]}")


def read_all(topic, partitions, count, timeout=30):
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, check_crcs=True)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out = []
    alive = deadline(timeout)
    while len(out) < count and alive():
        for recs in c.poll(timeout_ms=1000).values():
            out.extend(recs)
    for recs in c.poll(timeout_ms=500).values():
        out.extend(recs)
    c.close()
    return out


def as_rec(m):
    if m.timestamp_type != 0:  # CreateTime
        fail(f"{m.topic}[{m.partition}]@{m.offset}: timestamp type {m.timestamp_type}")
    return rec(m.topic, m.partition, m.key, m.value, m.headers, m.timestamp)


def produce(out_path):
    topic, parts = "produced", 3
    create_topics([(topic, parts)])
    modes = {
        "idem": {"enable_idempotence": True, "acks": "all"},
        "acks0": {"enable_idempotence": False, "acks": 0},
        "acks1": {"enable_idempotence": False, "acks": 1},
        "acksall": {"enable_idempotence": False, "acks": "all"},
    }
    expected = []
    for codec in CODECS:
        for mode, conf in modes.items():
            label = f"{codec}-{mode}"
            p = KafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5,
                              compression_type=None if codec == "none" else codec, **conf)
            futures = []
            for part, key, value, headers, ts in records_for(label, 20, parts):
                futures.append(p.send(topic, value=value and value.encode(),
                                      key=key and key.encode(), partition=part,
                                      headers=headers, timestamp_ms=ts))
                expected.append(rec(topic, part, key, value, headers, ts))
            p.flush(20)
            for f in futures:
                f.get(timeout=20)
            p.close(10)
    note(f"produced {len(expected)} records ({len(CODECS)} codecs x {len(modes)} modes)")
    got = read_all(topic, parts, len(expected))
    compare(expected, [as_rec(m) for m in got], "kafka-python read-back")
    write_jsonl(out_path, expected)


def group_consumer(group, **kw):
    return KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", **kw)


def commit(group, topic, n):
    n = int(n)
    c = group_consumer(group)
    c.subscribe([topic])
    got = []
    alive = deadline(60)
    while len(got) < n and alive():
        for recs in c.poll(timeout_ms=1000, max_records=n - len(got)).values():
            got.extend(recs)
    if len(got) < n:
        fail(f"consumed {len(got)} of {n}")
    tp = TopicPartition(topic, 0)
    c.commit({tp: OffsetAndMetadata(got[n - 1].offset + 1, "", -1)})
    if c.committed(tp) != got[n - 1].offset + 1:
        fail(f"committed() = {c.committed(tp)}, expected {got[n - 1].offset + 1}")
    c.close()
    note(f"group {group} committed offset {n}")


def resume(group, topic, first, total):
    first, total = int(first), int(total)
    c = group_consumer(group)
    c.subscribe([topic])
    got = []
    alive = deadline(60)
    while len(got) < total - first and alive():
        for recs in c.poll(timeout_ms=1000).values():
            got.extend(recs)
    offsets = [m.offset for m in got]
    if offsets != list(range(first, total)):
        fail(f"after the restart the group read offsets {offsets[:5]}..{offsets[-5:]} "
             f"({len(offsets)}), expected {first}..{total - 1}")
    if [m.value.decode() for m in got] != [f"r{i}" for i in range(first, total)]:
        fail("values after restart differ")
    c.commit()
    c.close()
    note(f"group {group} resumed at {first} and read {len(got)} records")


def member(name, group, topic):
    from kafka import ConsumerRebalanceListener
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def emit(**kw):
        print(json.dumps(dict(member=name, **kw)), flush=True)

    c = group_consumer(group, session_timeout_ms=10000, heartbeat_interval_ms=500)

    class L(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            try:
                c.commit()
            except Exception as e:  # noqa: BLE001 - reported, the check decides
                emit(event="commit-failed", error=str(e))
            emit(event="revoked", partitions=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            emit(event="assigned", partitions=sorted(tp.partition for tp in assigned))

    c.subscribe([topic], listener=L())
    alive = deadline(200)
    while not stop and alive():
        got = [m for recs in c.poll(timeout_ms=200).values() for m in recs]
        for m in got:
            emit(partition=m.partition, offset=m.offset, key=m.key.decode())
        if got:
            try:
                c.commit()
            except Exception as e:  # noqa: BLE001
                emit(event="commit-failed", error=str(e))
    c.close()
    emit(event="closed")


def admin_scenario():
    create_topics([("adm-a", 2), ("adm-b", 1)], {"adm-b": {"retention.ms": "3600000"}})
    a = admin()
    topics = set(a.list_topics())
    if not {"adm-a", "adm-b"} <= topics:
        fail(f"list_topics after create: {topics}")
    try:
        a.create_topics({"adm-a": {"num_partitions": 2, "replication_factor": 1}})
        fail("creating an existing topic succeeded")
    except TopicAlreadyExistsError:
        pass
    a.create_partitions({"adm-a": 4})
    alive = deadline(10)
    while alive():
        d = {t["name"]: t for t in a.describe_topics(["adm-a"])}
        if len(d["adm-a"]["partitions"]) == 4:
            break
        time.sleep(0.2)
    else:
        fail("partitions did not grow to 4")

    def retention():
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "adm-b",
                                                 ["retention.ms"])], config_filter="all")
        return json.dumps(res, default=str)

    if "3600000" not in retention():
        fail(f"describe_configs: {retention()}")
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "adm-b", {"retention.ms": "7200000"})],
                    raise_on_unknown=False, incremental=True)
    if "7200000" not in retention():
        fail(f"after alter: {retention()}")
    a.delete_topics(["adm-b"])
    if "adm-b" in set(a.list_topics()):
        fail("adm-b still listed after delete")
    try:
        a.delete_topics(["adm-b"])
        fail("deleting a deleted topic succeeded")
    except UnknownTopicOrPartitionError:
        pass
    a.close()
    note("admin: create, create existing, create partitions, describe, alter, delete: ok")


def fill(topic, n):
    create_topics([(topic, 1)])
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for i in range(int(n)):
        p.send(topic, key=f"k{i}".encode(), value=f"r{i}".encode(), partition=0)
    p.flush(20)
    p.close(10)
    note(f"{topic}: {n} records")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"produce": produce, "fill": fill, "commit": commit, "resume": resume, "member": member,
     "admin": admin_scenario}[cmd](*args)
