#!/usr/bin/env python3
"""A confluent-kafka (librdkafka) consumer in a consumer group, for tests that put it in the same
group as a KeelConsumer.

Usage: group_member.py '{"bootstrap": "...", "group": "...", "topic": "...", "assignor": "range",
                         "instance": null, "session_timeout_ms": 3000}'
Prints one line per event, flushed: "assigned t-0,t-1" after every assignment (nothing after the
word when it is empty), "revoked ..." before giving partitions up, "record <partition> <offset>"
per record. Runs until its stdin closes (the test ends or dies) or 120 s pass, then closes the
consumer (which commits, and leaves the group unless it is a static member).
With GROUP_MEMBER_DEBUG set, librdkafka logs its group protocol to stderr (see BackgroundProcess).
"""
import json
import os
import select
import sys
import time

import confluent_kafka


def names(partitions):
    return ",".join(f"{p.topic}-{p.partition}" for p in sorted(partitions, key=lambda p: (p.topic, p.partition)))


def main():
    args = json.loads(sys.argv[1])
    conf = {
        "bootstrap.servers": args["bootstrap"],
        "group.id": args["group"],
        "partition.assignment.strategy": args.get("assignor", "range"),
        "session.timeout.ms": args.get("session_timeout_ms", 3000),
        "heartbeat.interval.ms": 300,
        "auto.offset.reset": "earliest",
        "log_level": 3,
    }
    if args.get("instance"):
        conf["group.instance.id"] = args["instance"]
    if os.environ.get("GROUP_MEMBER_DEBUG"):
        conf["debug"] = "cgrp,protocol"
        conf["log_level"] = 7
    consumer = confluent_kafka.Consumer(conf)

    def on_assign(_, partitions):
        print("assigned " + names(partitions), flush=True)

    def on_revoke(_, partitions):
        print("revoked " + names(partitions), flush=True)

    consumer.subscribe([args["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.time() + 120
    while time.time() < deadline:
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            print(f"record {message.partition()} {message.offset()}", flush=True)
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if ready and not os.read(sys.stdin.fileno(), 1024):
            break
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
