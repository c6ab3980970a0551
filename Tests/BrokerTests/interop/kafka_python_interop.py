"""kafka-python 3 against a live keel broker, with the producer's defaults (acks=all,
idempotent) and a KafkaConsumer with assign(). Checks content and order.
Usage: kafka_python_interop.py BOOTSTRAP
"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

BOOTSTRAP = sys.argv[1]
DEADLINE = time.monotonic() + 100


def fail(message):
    print("FAIL:", message, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def message(i):
    key = None if i % 7 == 3 else f"key-{i}".encode()
    value = None if i % 11 == 5 else f"value-{i}-".encode() + b"y" * (i % 30)
    headers = [("n", str(i).encode())] if i % 4 == 0 else []
    if key is None and value is None:
        key = b"both-null-not-allowed-by-this-client"
    return key, value, headers


admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
admin.create_topics([NewTopic("kp-plain", 2, 1), NewTopic("kp-lz4", 2, 1)])
check({"kp-plain", "kp-lz4"} <= set(admin.list_topics()), "topics created")

for topic, codec in [("kp-plain", None), ("kp-lz4", "lz4")]:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec, linger_ms=5)
    check(producer.config["acks"] in ("all", -1) and producer.config["enable_idempotence"], "defaults")
    count = 3000
    sent = {0: [], 1: []}
    futures = []
    for i in range(count):
        key, value, headers = message(i)
        futures.append((i % 2, producer.send(topic, key=key, value=value, headers=headers, partition=i % 2)))
        sent[i % 2].append((key, value, headers))
    producer.flush(timeout=60)
    offsets = {0: [], 1: []}
    for partition, future in futures:
        offsets[partition].append(future.get(timeout=30).offset)
    for p in (0, 1):
        check(offsets[p] == list(range(len(sent[p]))), f"{topic}-{p}: offsets {offsets[p][:5]}...")
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, fetch_max_wait_ms=100)
    partitions = [TopicPartition(topic, p) for p in (0, 1)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    got = {0: [], 1: []}
    while sum(len(v) for v in got.values()) < count:
        check(time.monotonic() < DEADLINE, f"{topic}: consumed {[len(v) for v in got.values()]}")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                got[tp.partition].append((record.key, record.value, list(record.headers)))
    for p in (0, 1):
        check(len(got[p]) == len(sent[p]), f"{topic}-{p}: {len(got[p])} vs {len(sent[p])}")
        for i, (a, b) in enumerate(zip(got[p], sent[p])):
            check(a == b, f"{topic}-{p} #{i}: got {a}, expected {b}")
    ends = consumer.end_offsets(partitions)
    check([ends[tp] for tp in partitions] == [len(sent[0]), len(sent[1])], f"end offsets {ends}")
    starts = consumer.beginning_offsets(partitions)
    check([starts[tp] for tp in partitions] == [0, 0], f"beginning offsets {starts}")
    consumer.seek(partitions[1], 100)
    records = []
    while not records:
        check(time.monotonic() < DEADLINE, "seek: nothing consumed")
        records = consumer.poll(timeout_ms=500).get(partitions[1], [])
    check(records[0].offset == 100 and records[0].value == sent[1][100][1], "seek to 100")
    consumer.close()
    print(f"ok {topic}", flush=True)
admin.close()
print("PASS", flush=True)
