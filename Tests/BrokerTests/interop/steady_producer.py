"""A client that keeps producing while another connection sends garbage: COUNT messages to
TOPIC with acks=all, checks every acknowledgement and the offsets, then reads them back in
order. Usage: steady_producer.py BOOTSTRAP TOPIC COUNT
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 60
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1})
offsets = []
errors = []


def on_delivery(error, msg):
    if error is not None:
        errors.append(str(error))
    else:
        offsets.append(msg.offset())


for i in range(count):
    producer.produce(topic, value=f"steady-{i}".encode(), partition=0, on_delivery=on_delivery)
    if i % 20 == 19:
        # Wait for these acknowledgements, so that producing spans the bad connections.
        producer.flush(30)
producer.flush(30)
if errors or offsets != list(range(count)):
    print(f"FAIL: errors {errors[:3]}, offsets {offsets[:5]}... ({len(offsets)})", flush=True)
    sys.exit(1)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                     "enable.partition.eof": True})
consumer.assign([TopicPartition(topic, 0, 0)])
values = []
while True:
    if time.monotonic() > deadline:
        print(f"FAIL: consumed only {len(values)}", flush=True)
        sys.exit(1)
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    if msg.error():
        if msg.error().code() == KafkaError._PARTITION_EOF and len(values) >= count:
            break
        continue
    values.append(msg.value().decode())
if values != [f"steady-{i}" for i in range(count)]:
    print(f"FAIL: consumed {values[:5]}...", flush=True)
    sys.exit(1)
print("PASS", flush=True)
