"""An idempotent acks=all producer for the cluster group tests.

Produces the values FIRST..FIRST+COUNT-1 (as text), value i to partition i % PARTITIONS, and
appends "value partition offset" to ACKFILE for each acknowledged one. Keeps going while nodes
die (requests time out after 3 s and are retried elsewhere). Ends with PASS once every message
was acknowledged.

Usage: group_producer.py BOOTSTRAP TOPIC PARTITIONS FIRST COUNT ACKFILE [--pace-ms N] [--timestamp-ms T]
--pace-ms: a pause after every 60 messages, to stretch the run over the test's events.
--timestamp-ms: the records' create time (default: now), for replay by time.
"""
import argparse
import sys
import time

from resilient_producer import make_producer

parser = argparse.ArgumentParser()
for name in ["bootstrap", "topic"]:
    parser.add_argument(name)
for name in ["partitions", "first", "count"]:
    parser.add_argument(name, type=int)
parser.add_argument("ackfile")
parser.add_argument("--pace-ms", type=int, default=0)
parser.add_argument("--timestamp-ms", type=int, default=0)
args = parser.parse_args()

deadline = time.monotonic() + 240
producer = make_producer(args.bootstrap)
acks = open(args.ackfile, "a", buffering=1)
errors = []
acknowledged = 0


def on_delivery(error, msg):
    global acknowledged
    if error is not None:
        errors.append(str(error))
        return
    acknowledged += 1
    acks.write(f"{msg.value().decode()} {msg.partition()} {msg.offset()}\n")


for n in range(args.count):
    value = args.first + n
    while n - acknowledged - len(errors) >= 300:
        producer.poll(0.01)
        if time.monotonic() > deadline:
            print("FAIL: timed out producing", flush=True)
            sys.exit(1)
    extra = {"timestamp": args.timestamp_ms} if args.timestamp_ms else {}
    producer.produce(args.topic, value=str(value).encode(), partition=value % args.partitions,
                     on_delivery=on_delivery, **extra)
    producer.poll(0)
    if args.pace_ms and n % 60 == 59:
        time.sleep(args.pace_ms / 1000)
left = producer.flush(120)
acks.close()
if left or errors:
    print(f"FAIL: {left} undelivered, errors {errors[:5]}", flush=True)
    sys.exit(1)
print(f"PASS {acknowledged} acknowledged", flush=True)
