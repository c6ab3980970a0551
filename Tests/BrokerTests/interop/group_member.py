"""One consumer-group member for the cluster group tests, with a client of choice.

Subscribes to TOPIC in GROUP, and for every batch it receives: writes each record to OUT
("rec" events), then commits the positions after them synchronously ("commit" events, or
"commit-failed" when the commit is refused, e.g. during a rebalance), so that what is
committed was processed first. Assignment changes are "assigned" / "revoked" events. Events
are JSON lines, flushed one by one, so that a test can follow along and SIGKILL the member at
any moment. Stops cleanly (closing the consumer, which leaves the group) when OUT.stop exists.

Usage: group_member.py CLIENT BOOTSTRAP TOPIC GROUP OUT [INSTANCE_ID]
CLIENT: confluent | kafka-python | aiokafka. INSTANCE_ID makes the member static.
"""
import json
import os
import sys
import time

client, bootstrap, topic, group, out_path = sys.argv[1:6]
instance_id = sys.argv[6] if len(sys.argv) > 6 else None
SESSION_MS = 6000
HEARTBEAT_MS = 500
DEADLINE = time.monotonic() + 300
out = open(out_path, "a", buffering=1)


def event(kind, **fields):
    out.write(json.dumps({"e": kind, "t": time.time(), **fields}) + "\n")


def should_stop():
    if time.monotonic() > DEADLINE:
        event("error", error="ran for 300 s without being stopped")
        return True
    return os.path.exists(out_path + ".stop")


def process(records):
    """records: (partition, offset, value) in the order received. Returns the next offset per partition."""
    positions = {}
    for partition, offset, value in records:
        event("rec", p=partition, o=offset, v=value)
        positions[partition] = offset + 1
    return positions


def run_confluent():
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    config = {
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS, "fetch.wait.max.ms": 100,
        "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    if instance_id:
        config["group.instance.id"] = instance_id
    consumer = Consumer(config)
    consumer.subscribe(
        [topic],
        on_assign=lambda c, tps: event("assigned", p=sorted(tp.partition for tp in tps)),
        on_revoke=lambda c, tps: event("revoked", p=sorted(tp.partition for tp in tps)),
        on_lost=lambda c, tps: event("revoked", p=sorted(tp.partition for tp in tps), lost=True))
    while not should_stop():
        messages = consumer.consume(num_messages=200, timeout=0.2)
        records = []
        for m in messages:
            if m.error():
                event("client-error", error=m.error().name())
                continue
            records.append((m.partition(), m.offset(), m.value().decode()))
        positions = process(records)
        if not positions:
            continue
        offsets = [TopicPartition(topic, p, o) for p, o in sorted(positions.items())]
        try:
            result = consumer.commit(offsets=offsets, asynchronous=False)
            bad = [tp for tp in (result or []) if tp.error]
            if bad:
                event("commit-failed", error=",".join(tp.error.name() for tp in bad))
            else:
                event("commit", p={str(p): o for p, o in positions.items()})
        except KafkaException as e:
            event("commit-failed", error=str(e))
    consumer.close()


def run_kafka_python():
    from kafka import KafkaConsumer, TopicPartition
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.structs import OffsetAndMetadata

    class Listener(ConsumerRebalanceListener):
        def on_partitions_assigned(self, assigned):
            event("assigned", p=sorted(tp.partition for tp in assigned))

        def on_partitions_revoked(self, revoked):
            event("revoked", p=sorted(tp.partition for tp in revoked))

    config = dict(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
        fetch_max_wait_ms=100, metadata_max_age_ms=2000)
    if instance_id:
        config["group_instance_id"] = instance_id
    consumer = KafkaConsumer(**config)
    consumer.subscribe([topic], listener=Listener())
    while not should_stop():
        batches = consumer.poll(timeout_ms=200)
        records = [(tp.partition, m.offset, m.value.decode()) for tp, ms in batches.items() for m in ms]
        positions = process(records)
        if not positions:
            continue
        try:
            consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in positions.items()})
            event("commit", p={str(p): o for p, o in positions.items()})
        except Exception as e:  # CommitFailedError during a rebalance: these records come again
            event("commit-failed", error=repr(e))
    consumer.close()


def run_aiokafka():
    import asyncio

    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_assigned(self, assigned):
            event("assigned", p=sorted(tp.partition for tp in assigned))

        async def on_partitions_revoked(self, revoked):
            event("revoked", p=sorted(tp.partition for tp in revoked))

    async def main():
        config = dict(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS, fetch_max_wait_ms=100,
            metadata_max_age_ms=2000)
        if instance_id:
            config["group_instance_id"] = instance_id
        consumer = AIOKafkaConsumer(**config)
        await consumer.start()
        consumer.subscribe([topic], listener=Listener())
        try:
            while not should_stop():
                batches = await consumer.getmany(timeout_ms=200)
                records = [(tp.partition, m.offset, m.value.decode()) for tp, ms in batches.items() for m in ms]
                positions = process(records)
                if not positions:
                    continue
                try:
                    await consumer.commit({TopicPartition(topic, p): o for p, o in positions.items()})
                    event("commit", p={str(p): o for p, o in positions.items()})
                except Exception as e:  # CommitFailedError during a rebalance
                    event("commit-failed", error=repr(e))
        finally:
            await consumer.stop()

    asyncio.run(main())


event("started", client=client)
{"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}[client]()
event("stopped")
