#!/usr/bin/env python3
"""librdkafka (confluent-kafka) against `riverbed serve`: produce N records of 100 B with
acks=all, then consume them, printing records per second; and the produce latency percentiles
with linger 0 (one record at a time, each awaited).

Not a criterion benchmark (the client is Python's binding of a C library); it gives the figures
issue 17 asks for with a real Kafka client. Its in-process reference is `cargo bench --features
server --bench wire` (same record size) and `--bench baselines`. Usage:

    riverbed -d /tmp/rb serve --listen 127.0.0.1:19092 &
    python3 benches/outside/librdkafka_throughput.py 127.0.0.1:19092 1000000
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    topic = "bench-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(30)
    value = b"x" * 100

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.num.messages": 10000, "queue.buffering.max.messages": 2_000_000,
                  "compression.type": "none"})
    errors = []

    def cb(err, _msg):
        if err is not None:
            errors.append(err)

    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10000 == 0:
            p.poll(0)
    left = p.flush(120)
    dt = time.perf_counter() - t0
    assert left == 0 and not errors, (left, errors[:3])
    print(f"produce acks=all: {n} x 100 B in {dt:.2f} s = {n / dt:,.0f} rec/s")

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-" + topic,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760,
                  "isolation.level": "read_uncommitted"})
    c.subscribe([topic])
    seen = 0
    t0 = None
    deadline = time.time() + 120
    while seen < n and time.time() < deadline:
        msgs = c.consume(10000, 1.0)
        if msgs and t0 is None:
            t0 = time.perf_counter()
        seen += sum(1 for m in msgs if m.error() is None)
    dt = time.perf_counter() - t0
    c.close()
    assert seen >= n, seen
    print(f"consume: {seen} records in {dt:.2f} s = {seen / dt:,.0f} rec/s (from the first fetch)")

    lp = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    lat = []
    for i in range(2000):
        t = time.perf_counter()
        done = []
        lp.produce(topic, value, on_delivery=lambda e, m: done.append(e))
        while not done:
            lp.poll(0.0001)
        lat.append(time.perf_counter() - t)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6
    print(f"produce latency linger 0, acks=all: p50 {pct(0.5):.0f} us, p99 {pct(0.99):.0f} us")
    admin.delete_topics([topic])


if __name__ == "__main__":
    main()
