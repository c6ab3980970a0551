"""confluent-kafka (librdkafka 2.16) against a live keel broker.

Admin: CreateTopics with configs, TOPIC_ALREADY_EXISTS, INVALID_CONFIG, DescribeConfigs for a
topic and the broker, DeleteTopics. Produce with acks=all and idempotence, one topic per codec
(lz4, gzip, snappy, zstd, none), null keys and values, headers, many small messages and a 1 MiB
value; then a consumer with assign (no group subscription), seek and offsets_for_times. Every
check compares content and order. Usage: confluent_interop.py BOOTSTRAP
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

BOOTSTRAP = sys.argv[1]
DEADLINE = time.monotonic() + 100


def fail(message):
    print("FAIL:", message, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def expect_error(future, code, what):
    try:
        future.result(timeout=30)
    except KafkaException as error:
        check(error.args[0].code() == code, f"{what}: expected {code}, got {error.args[0]}")
        return
    fail(f"{what}: expected error {code}, got success")


def message(i, big=False):
    key = None if i % 7 == 3 else f"key-{i}".encode()
    value = None if i % 11 == 5 else (b"v" * (1024 * 1024) if big else f"value-{i}-".encode() + b"x" * (i % 40))
    headers = [("n", str(i).encode()), ("empty", None)] if i % 5 == 0 else None
    return key, value, headers


def produce(topic, codec, count, partitions, big=False, timestamps=None):
    config = {
        "bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
        "compression.type": codec, "message.max.bytes": 5 * 1024 * 1024, "message.timeout.ms": 30000,
    }
    producer = Producer(config)
    delivered = {p: [] for p in range(partitions)}
    errors = []

    def on_delivery(error, msg):
        if error is not None:
            errors.append(str(error))
        else:
            delivered[msg.partition()].append((msg.offset(), msg.value()))

    sent = {p: [] for p in range(partitions)}
    for i in range(count):
        key, value, headers = message(i, big)
        partition = i % partitions
        kwargs = {"timestamp": timestamps[i]} if timestamps else {}
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, partition=partition,
                                 on_delivery=on_delivery, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
                check(time.monotonic() < DEADLINE, "producer queue stayed full")
        sent[partition].append((key, value, headers))
    remaining = producer.flush(60)
    check(remaining == 0, f"{topic}: {remaining} messages not delivered")
    check(not errors, f"{topic}: delivery errors {errors[:3]}")
    for p in range(partitions):
        offsets = [offset for offset, _ in delivered[p]]
        check(sorted(offsets) == offsets and len(set(offsets)) == len(offsets),
              f"{topic}-{p}: acknowledged offsets not increasing")
    return sent


def consume(topic, partitions, expected, start=0):
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP, "group.id": "keel-interop-unused", "enable.auto.commit": False,
        "enable.partition.eof": True, "auto.offset.reset": "error", "fetch.wait.max.ms": 100,
    })
    consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    at_end = set()
    while len(at_end) < partitions:
        check(time.monotonic() < DEADLINE, f"{topic}: consume timed out with {[len(v) for v in got.values()]}")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if len(got[msg.partition()]) >= len(expected[msg.partition()]) - start:
                    at_end.add(msg.partition())
                continue
            fail(f"{topic}: consumer error {msg.error()}")
        headers = msg.headers()
        got[msg.partition()].append((msg.key(), msg.value(), headers if headers else None))
    for p in range(partitions):
        want = expected[p][start:]
        check(len(got[p]) == len(want), f"{topic}-{p}: consumed {len(got[p])}, expected {len(want)}")
        for i, (a, b) in enumerate(zip(got[p], want)):
            check(a == b, f"{topic}-{p} message {i}: got {str(a)[:80]}, expected {str(b)[:80]}")
    return consumer


admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
codecs = ["lz4", "gzip", "snappy", "zstd", "none"]
topics = [NewTopic(f"cf-{codec}", num_partitions=2, replication_factor=1) for codec in codecs]
topics.append(NewTopic("cf-big", num_partitions=1, replication_factor=1, config={
    "max.message.bytes": str(4 * 1024 * 1024), "retention.ms": "86400000", "segment.bytes": str(64 * 1024 * 1024),
    "compression.type": "producer", "cleanup.policy": "delete", "retention.bytes": "-1"}))
topics.append(NewTopic("cf-time", num_partitions=1, replication_factor=1))
for name, future in admin.create_topics(topics, operation_timeout=30).items():
    future.result(timeout=30)
expect_error(admin.create_topics([NewTopic("cf-lz4", 1, 1)])["cf-lz4"], KafkaError.TOPIC_ALREADY_EXISTS, "exists")
expect_error(admin.create_topics([NewTopic("cf-bad", 1, 1, config={"cleanup.policy": "compact"})])["cf-bad"],
             KafkaError.INVALID_CONFIG, "compact")
expect_error(admin.create_topics([NewTopic("cf-bad2", 1, 3)])["cf-bad2"],
             KafkaError.INVALID_REPLICATION_FACTOR, "rf 3")
expect_error(admin.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"], KafkaError.TOPIC_EXCEPTION, "name")

resource = ConfigResource(ResourceType.TOPIC, "cf-big")
configs = admin.describe_configs([resource])[resource].result(timeout=30)
for name, value in [("max.message.bytes", "4194304"), ("compression.type", "producer"), ("retention.ms", "86400000"),
                    ("segment.bytes", str(64 * 1024 * 1024)), ("cleanup.policy", "delete"),
                    ("retention.bytes", "-1"), ("min.insync.replicas", "1"), ("message.timestamp.type", "CreateTime")]:
    check(name in configs and configs[name].value == value, f"describe {name}: {configs.get(name)}")
resource = ConfigResource(ResourceType.TOPIC, "cf-lz4")
configs = admin.describe_configs([resource])[resource].result(timeout=30)
check(configs["compression.type"].value == "lz4", "default compression.type is lz4")
broker = ConfigResource(ResourceType.BROKER, "1")
configs = admin.describe_configs([broker])[broker].result(timeout=30)
check(configs["auto.create.topics.enable"].value == "true", f"broker configs {list(configs)}")

for codec in codecs:
    count = 6000 if codec == "none" else 1500
    sent = produce(f"cf-{codec}", codec, count, 2)
    consumer = consume(f"cf-{codec}", 2, sent)
    if codec == "lz4":
        # seek back: the next message of partition 0 must be its 10th.
        consumer.seek(TopicPartition("cf-lz4", 0, 10))
        while True:
            check(time.monotonic() < DEADLINE, "seek: nothing consumed")
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            check(msg.partition() == 0 and msg.offset() == 10, f"seek: got {msg.partition()}/{msg.offset()}")
            check((msg.key(), msg.value()) == sent[0][10][:2], "seek: wrong message")
            break
        low, high = consumer.get_watermark_offsets(TopicPartition("cf-lz4", 0), timeout=10)
        check((low, high) == (0, len(sent[0])), f"watermarks {low} {high}")
    consumer.close()
    print(f"ok {codec}", flush=True)

big = produce("cf-big", "none", 3, 1, big=True)
consume("cf-big", 1, big).close()
print("ok 1 MiB values", flush=True)

base = 1_700_000_000_000
stamps = [base + 1000 * i for i in range(40)]
timed = produce("cf-time", "lz4", 40, 1, timestamps=stamps)
consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "keel-interop-unused", "enable.auto.commit": False})
for index in [0, 7, 39]:
    found = consumer.offsets_for_times([TopicPartition("cf-time", 0, stamps[index])], timeout=10)
    check(found[0].offset == index, f"offsets_for_times({stamps[index]}) = {found[0].offset}, expected {index}")
    found = consumer.offsets_for_times([TopicPartition("cf-time", 0, stamps[index] - 500)], timeout=10)
    check(found[0].offset == index, f"offsets_for_times(just before {index}) = {found[0].offset}")
found = consumer.offsets_for_times([TopicPartition("cf-time", 0, stamps[-1] + 1)], timeout=10)
check(found[0].offset < 0, f"offsets_for_times(after the end) = {found[0].offset}")
consumer.assign([TopicPartition("cf-time", 0, 20)])
msg = None
while msg is None or msg.error():
    check(time.monotonic() < DEADLINE, "assign at offset 20: nothing consumed")
    msg = consumer.poll(1.0)
check(msg.offset() == 20 and msg.timestamp()[1] == stamps[20], f"assign at 20: {msg.offset()} {msg.timestamp()}")
consumer.close()
print("ok offsets_for_times", flush=True)

for name, future in admin.delete_topics(["cf-gzip"], operation_timeout=30).items():
    future.result(timeout=30)
metadata = admin.list_topics(timeout=10)
check("cf-gzip" not in metadata.topics and "cf-lz4" in metadata.topics, f"after delete: {list(metadata.topics)}")
expect_error(admin.delete_topics(["cf-gzip"])["cf-gzip"], KafkaError.UNKNOWN_TOPIC_OR_PART, "delete twice")
print("PASS", flush=True)
