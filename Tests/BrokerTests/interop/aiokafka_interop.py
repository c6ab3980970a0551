"""aiokafka 0.14 against a live keel broker: an idempotent producer (lz4 and uncompressed)
and a consumer with assign(). Checks content and order. Usage: aiokafka_interop.py BOOTSTRAP
"""
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

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
    value = None if i % 11 == 5 else f"value-{i}-".encode() + b"z" * (i % 30)
    headers = [("n", str(i).encode())] if i % 4 == 0 else []
    if key is None and value is None:
        key = b"both-null-not-allowed-by-this-client"
    return key, value, headers


async def run(topic, codec):
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, compression_type=codec,
                                linger_ms=5)
    await producer.start()
    count = 2000
    sent = []
    futures = []
    try:
        for i in range(count):
            key, value, headers = message(i)
            futures.append(await producer.send(topic, key=key, value=value, headers=headers, partition=0))
            sent.append((key, value, headers))
        offsets = [(await future).offset for future in futures]
    finally:
        await producer.stop()
    check(offsets == list(range(count)), f"{topic}: offsets {offsets[:5]}")

    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        got = []
        while len(got) < count:
            check(time.monotonic() < DEADLINE, f"{topic}: consumed {len(got)}")
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend((r.key, r.value, list(r.headers)) for r in records)
        check(len(got) == count, f"{topic}: consumed {len(got)}")
        for i, (a, b) in enumerate(zip(got, sent)):
            check(a == b, f"{topic} #{i}: got {a}, expected {b}")
        ends = await consumer.end_offsets([partition])
        check(ends[partition] == count, f"end offset {ends}")
    finally:
        await consumer.stop()
    print(f"ok {topic}", flush=True)


async def main():
    await run("aio-plain", None)
    await run("aio-lz4", "lz4")
    print("PASS", flush=True)


asyncio.run(main())
