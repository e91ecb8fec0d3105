#!/usr/bin/env python3
"""Writes the Kafka v2 record batches in this folder with kafka-python's own encoder
(kafka.record.default_records.DefaultRecordBatchBuilder), an implementation of Kafka's
DefaultRecordBatch independent of Riverbed. tests/kafka_batches.rs parses every one and checks
each field and record, and that BatchBuilder given the same inputs writes the same bytes.

Not run by CI. To regenerate: pip install kafka-python zstandard python-snappy lz4;
python3 generate.py (the .bin files were made with kafka-python 3.0.12, zstandard 0.25.0,
python-snappy 0.7.3 on cramjam 2.14.0 and lz4 4.4.5).

gzip.bin, snappy.bin (snappy-java's framing, 32 KiB blocks), snappy_raw.bin (one raw snappy
block, as librdkafka writes it) and lz4.bin (an LZ4 frame with the content size stored, 64 KiB
independent blocks) hold the same 60 records, about 90 KiB before compression, so that the
framed codecs span several blocks.
"""
import kafka.codec
import kafka.record.default_records as default_records
from kafka.record.default_records import DefaultRecordBatchBuilder as B

T0 = 1_700_000_000_000
NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4


def build(name, records, codec=NONE, transactional=False, pid=-1, epoch=-1, seq=-1):
    b = B(magic=2, compression_type=codec, is_transactional=transactional,
          producer_id=pid, producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
    for i, (ts, key, value, headers) in enumerate(records):
        assert b.append(i, timestamp=ts, key=key, value=value, headers=headers) is not None
    with open(name + ".bin", "wb") as f:
        f.write(bytes(b.build()))


# Keys, a null key, a tombstone, an empty key and value, headers (a repeated key, a null and an
# empty value), a timestamp before the first one (negative delta).
build("plain", [
    (T0, b"alice", b"+50", [("source", b"atm")]),
    (T0 + 5, None, b"keyless", []),
    (T0 + 7, b"bob", None, [("trace", b"1"), ("trace", None), ("empty", b"")]),
    (T0 - 3, b"", b"", []),
])
# Values long enough for two-byte varint lengths, a header key that is not ASCII.
build("long", [
    (T0, b"k" * 200, b"v" * 300, [("h\u00e9", b"x" * 130)]),
    (T0 + 100000, b"k2", b"w" * 1000, []),
])
build("idempotent", [(T0 + i, b"key-%d" % i, b"value-%d" % i, []) for i in range(5)],
      pid=12345, epoch=3, seq=42)
build("transactional", [(T0 + i, b"tx-%d" % i, b"in a transaction", []) for i in range(2)],
      transactional=True, pid=777, epoch=0, seq=0)
build("zstd", [(T0 + i, b"z%d" % i, b"compressible " * 8, [("n", b"%d" % i)]) for i in range(10)],
      codec=ZSTD)

# The same records under each of Kafka's other codecs.
CODECS = [(T0 + i, b"c%d" % i, (b"record %d of a compressed batch; " % i) * 48,
           [("i", b"%d" % i)] if i % 3 == 0 else []) for i in range(60)]
build("gzip", CODECS, codec=GZIP)
build("snappy", CODECS, codec=SNAPPY)
build("lz4", CODECS, codec=LZ4)
# Raw snappy, without snappy-java's framing.
default_records.snappy_encode = lambda data: kafka.codec.snappy_encode(data, xerial_compatible=False)
build("snappy_raw", CODECS, codec=SNAPPY)
