"""An idempotent acks=all producer for the cluster failure tests: keeps going while nodes die, pause and return.

Produces the values 0..COUNT-1 (as text) to TOPIC partition 0 with at most 200 unacknowledged messages, appends
each acknowledged value to ACKFILE as it is acknowledged (and each failed one to ACKFILE.failed), and ends with
PASS once every message was acknowledged. Requests time out after 3 s, so that a producer whose leader is paused
(SIGSTOP) retries elsewhere instead of waiting for the connection. Usage:
cluster_producer.py BOOTSTRAP TOPIC COUNT ACKFILE [PACE_MS]
(PACE_MS: a pause after every 100 messages, to stretch the run.)
"""
import sys
import time

from resilient_producer import make_producer

bootstrap, topic, count, ack_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pace_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 0
deadline = time.monotonic() + 150
producer = make_producer(bootstrap)
acks = open(ack_path, "a", buffering=1)
failed = open(ack_path + ".failed", "a", buffering=1)
errors = []
acknowledged = 0


def on_delivery(error, msg):
    global acknowledged
    if error is not None:
        errors.append(str(error))
        failed.write(msg.value().decode() + "\n")
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
    if pace_ms and i % 100 == 99:
        time.sleep(pace_ms / 1000)
left = producer.flush(120)
acks.close()
failed.close()
if left or errors:
    print(f"FAIL: {left} undelivered, errors {errors[:5]}", flush=True)
    sys.exit(1)
print(f"PASS {acknowledged} acknowledged", flush=True)
