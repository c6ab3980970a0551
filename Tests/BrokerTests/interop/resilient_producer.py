"""The idempotent acks=all librdkafka producer that the cluster failure tests share: it keeps going while
nodes die, pause and return. Requests time out after 3 s, so that a producer whose leader is paused (SIGSTOP)
retries elsewhere instead of waiting on the connection; metadata is refreshed every second and reconnects
back off at most 200 ms."""
from confluent_kafka import Producer


def make_producer(bootstrap):
    return Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
        "message.timeout.ms": 120000, "request.timeout.ms": 3000, "socket.timeout.ms": 3000,
        "retry.backoff.ms": 50, "retry.backoff.max.ms": 200, "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200, "topic.metadata.refresh.interval.ms": 1000,
    })
