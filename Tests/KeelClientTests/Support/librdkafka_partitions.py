#!/usr/bin/env python3
"""Prints where librdkafka's murmur2_random partitioner puts each key given on stdin.

Usage: librdkafka_partitions.py < keys (one per line)
Produces every key to a topic that librdkafka's mock cluster auto-creates, then prints the
topic's partition count on the first line and "partition<TAB>key" per delivered record, so
the Swift partitioner can be compared with the C client's own choice (which is also the
Java client's default for keyed records).
"""
import sys

import confluent_kafka

TOPIC = "partition-check"


def main():
    keys = [line.rstrip("\n") for line in sys.stdin if line.rstrip("\n")]
    producer = confluent_kafka.Producer({
        "test.mock.num.brokers": 1,
        "bootstrap.servers": "unused:1",
        "partitioner": "murmur2_random",
        "linger.ms": 0,
        "log_level": 3,
    })
    delivered = []

    def report(err, msg):
        if err is None:
            delivered.append((msg.partition(), msg.key().decode()))

    for key in keys:
        producer.produce(TOPIC, key=key.encode(), value=b"v", on_delivery=report)
    producer.flush(20)
    metadata = producer.list_topics(TOPIC, timeout=10)
    print(len(metadata.topics[TOPIC].partitions))
    for partition, key in delivered:
        print(f"{partition}\t{key}")
    return 0 if len(delivered) == len(keys) else 1


if __name__ == "__main__":
    sys.exit(main())
