"""An idempotent acks=all producer that keeps going while the broker is killed and restarted.

Produces the values 0..COUNT-1 (as text) to TOPIC partition 0 with at most 200 unacknowledged
messages, appends each acknowledged value to ACKFILE as it is acknowledged, and ends with PASS
once every message was acknowledged. Usage: restart_producer.py BOOTSTRAP TOPIC COUNT ACKFILE
"""
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, count, ack_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
deadline = time.monotonic() + 100
producer = Producer({
    "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
    "message.timeout.ms": 90000, "retry.backoff.ms": 50, "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 200,
})
acks = open(ack_path, "a", buffering=1)
errors = []
acknowledged = 0


def on_delivery(error, msg):
    global acknowledged
    if error is not None:
        errors.append(str(error))
        return
    acknowledged += 1
    acks.write(msg.value().decode() + "\n")


for i in range(count):
    while i - acknowledged - len(errors) >= 200:
        producer.poll(0.01)
        if time.monotonic() > deadline:
            print("FAIL: timed out producing", flush=True)
            sys.exit(1)
    producer.produce(topic, value=str(i).encode(), partition=0, on_delivery=on_delivery)
    producer.poll(0)
left = producer.flush(90)
acks.close()
if left or errors:
    print(f"FAIL: {left} undelivered, errors {errors[:5]}", flush=True)
    sys.exit(1)
print(f"PASS {acknowledged} acknowledged", flush=True)
