#!/usr/bin/env python3
"""Starts librdkafka's built-in mock Kafka cluster (through confluent-kafka) on loopback.

Usage: mock_cluster.py BROKERS OUTFILE
Writes the cluster's bootstrap address ("host:port,...") to OUTFILE, then stays alive until
its stdin closes (the test ends or dies) or 600 s pass, whichever comes first.
"""
import logging
import os
import select
import sys
import time

import confluent_kafka


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.servers = None

    def emit(self, record):
        message = record.getMessage()
        marker = "replaced with "
        if "Mock cluster enabled" in message and marker in message:
            self.servers = message.split(marker, 1)[1].strip()


def main():
    brokers, outfile = int(sys.argv[1]), sys.argv[2]
    capture = Capture()
    logger = logging.getLogger("mock")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    # The producer owns the mock cluster: it lives as long as this handle does.
    handle = confluent_kafka.Producer(
        {"test.mock.num.brokers": brokers, "bootstrap.servers": "unused:1"}, logger=logger)
    deadline = time.time() + 20
    while capture.servers is None and time.time() < deadline:
        handle.poll(0.05)
    if capture.servers is None:
        print("mock cluster did not report its address", file=sys.stderr)
        return 1
    temporary = outfile + ".tmp"
    with open(temporary, "w") as f:
        f.write(capture.servers)
    os.rename(temporary, outfile)
    deadline = time.time() + 600
    while time.time() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready and not os.read(sys.stdin.fileno(), 1024):
            break
        handle.poll(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
