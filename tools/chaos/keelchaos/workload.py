"""The workload: idempotent producers and consumers (confluent-kafka), recording every
operation in the history, and the final full read.

Producers: each sends unique values ("p1-17") to partitions drawn from its own seeded
generator, at a fixed rate, with enable.idempotence (acks=all, ordered retries). Every
send gets exactly one completion: ok (with the acknowledged offset), fail (certainly
not written) or info (unknown). A producer whose idempotence state turns fatal is
replaced by a new one (new producer id, process name p1.2).

Which delivery errors are definite failures: see DEFINITE_FAILURES; everything else,
timeouts above all, is unknown (an attempt may have been written and its answer lost).

Consumers: members of one group (subscribe, commit synchronously after each poll's
records are recorded, i.e. after processing), recording every poll and every assignment
change; or, while the broker has no group coordinator (issue #5), members that assign
themselves a fixed share of the partitions and keep their own positions.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .history import History

# Errors that mean "never written": the record never left the client, or the broker
# refused its batch for what the batch is (the same bytes go out on every retry, so an
# earlier attempt was refused too). A refusal that depends on the broker's state
# (NOT_LEADER, UNKNOWN_TOPIC_OR_PART, timeouts) may follow an attempt that was written.
DEFINITE_FAILURES = {
    KafkaError._PURGE_QUEUE,
    KafkaError._QUEUE_FULL,
    KafkaError._INVALID_ARG,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_REQUIRED_ACKS,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


_client_logger: logging.Logger | None = None


def set_client_log(path: str | None) -> None:
    """Sends librdkafka's own log lines (connection refused, and so on: many, during
    faults) to a file instead of stderr."""
    global _client_logger
    logger = logging.getLogger("keelchaos.clients")
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.propagate = False
    if path:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)  # librdkafka logs its `debug` contexts at level 7 (DEBUG)
        _client_logger = logger
    else:
        _client_logger = None


def with_logger(conf: dict) -> dict:
    if _client_logger is not None:
        conf["logger"] = _client_logger
    return conf


def outcome_of(err: KafkaError) -> str:
    return "fail" if err.code() in DEFINITE_FAILURES and not err.fatal() else "info"


@dataclass
class WorkloadConfig:
    bootstrap: str
    topic: str = "chaos"
    partitions: int = 6
    producers: int = 3
    consumers: int = 2
    rate_per_producer: float = 20.0  # sends per second
    sends_max_per_producer: int = 1_000_000
    polls_max_per_consumer: int = 1_000_000
    message_timeout_ms: int = 60_000
    consumer_mode: str = "group"  # group | assign
    group: str = "keelchaos"
    seed: int = 0
    client_debug: str = ""  # librdkafka `debug` contexts for producers (e.g. "eos,msg"), logged to clients.log


def producer_config(cfg: WorkloadConfig, client_id: str) -> dict:
    return {
        "bootstrap.servers": cfg.bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": cfg.message_timeout_ms,
        "request.timeout.ms": min(5000, cfg.message_timeout_ms),
        "retry.backoff.ms": 50,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "socket.connection.setup.timeout.ms": 3000,
        "topic.metadata.refresh.interval.ms": 5000,
        **({"debug": cfg.client_debug} if cfg.client_debug else {}),
    }


class ProducerWorker(threading.Thread):
    def __init__(self, number: int, cfg: WorkloadConfig, history: History, stop: threading.Event):
        super().__init__(name=f"producer-{number}", daemon=True)
        self.number = number
        self.cfg = cfg
        self.history = history
        self.stop_event = stop
        self.rng = random.Random(f"{cfg.seed}/producer/{number}")
        self.pending: dict[str, tuple[str, int]] = {}  # value -> (process, partition)
        self.fatal = False
        self.error: BaseException | None = None

    def _make(self, process: str) -> Producer:
        def on_error(err: KafkaError) -> None:
            if err.fatal():
                self.fatal = True
                self.history.record(process, "producer-fatal", "info", error=str(err))

        conf = producer_config(self.cfg, process)
        conf["error_cb"] = on_error
        return Producer(with_logger(conf))

    def _on_delivery(self, process: str, value: str, partition: int):
        def done(err, msg) -> None:
            if value not in self.pending:
                return
            del self.pending[value]
            if err is None:
                self.history.record(
                    process, "send", "ok", value=value, partition=msg.partition(), offset=msg.offset()
                )
            else:
                self.history.record(process, "send", outcome_of(err), value=value, partition=partition, error=err.name())

        return done

    def _finish(self, producer: Producer, process: str, timeout: float) -> None:
        """Waits (bounded) for the outcome of every send, purges the rest."""
        producer.flush(timeout)
        if self.pending:
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.flush(2.0)
        for value, (proc, partition) in list(self.pending.items()):
            if proc == process:
                del self.pending[value]
                self.history.record(proc, "send", "info", value=value, partition=partition, error="no delivery report")

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # recorded for the driver; the thread must not vanish silently
            self.error = e
            self.history.record(f"p{self.number}", "note", "info", text=f"producer thread failed: {e!r}")

    def _run(self) -> None:
        generation = 1
        process = f"p{self.number}"
        producer = self._make(process)
        interval = 1.0 / self.cfg.rate_per_producer
        next_at = time.monotonic()
        seq = 0
        while not self.stop_event.is_set() and seq < self.cfg.sends_max_per_producer:
            if self.fatal:
                self._finish(producer, process, 2.0)
                generation += 1
                process = f"p{self.number}.{generation}"
                self.history.record(process, "producer-restart", "info", generation=generation)
                self.fatal = False
                producer = self._make(process)
            now = time.monotonic()
            if now < next_at:
                producer.poll(min(next_at - now, 0.05))
                continue
            next_at = max(next_at + interval, now - 1.0)  # catch up at most one second
            value = f"p{self.number}-{seq}"
            seq += 1
            partition = self.rng.randrange(self.cfg.partitions)
            self.pending[value] = (process, partition)
            self.history.record(process, "send", "invoke", value=value, partition=partition)
            try:
                producer.produce(
                    self.cfg.topic, value=value.encode(), partition=partition,
                    on_delivery=self._on_delivery(process, value, partition),
                )
            except BufferError:
                del self.pending[value]
                self.history.record(process, "send", "fail", value=value, partition=partition, error="_QUEUE_FULL")
            except KafkaException as e:
                del self.pending[value]
                err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
                self.history.record(
                    process, "send", outcome_of(err) if err else "info", value=value, partition=partition,
                    error=err.name() if err else str(e),
                )
            producer.poll(0)
        self._finish(producer, process, self.cfg.message_timeout_ms / 1000 + 2)


def consumer_config(cfg: WorkloadConfig, client_id: str) -> dict:
    return {
        "bootstrap.servers": cfg.bootstrap,
        "client.id": client_id,
        "group.id": cfg.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 60000,
        "fetch.wait.max.ms": 200,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "socket.connection.setup.timeout.ms": 3000,
        "enable.partition.eof": False,
    }


class ConsumerWorker(threading.Thread):
    def __init__(self, number: int, cfg: WorkloadConfig, history: History, stop: threading.Event):
        super().__init__(name=f"consumer-{number}", daemon=True)
        self.number = number
        self.process = f"c{number}"
        self.cfg = cfg
        self.history = history
        self.stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:
            self.error = e
            self.history.record(self.process, "note", "info", text=f"consumer thread failed: {e!r}")

    def _run(self) -> None:
        cfg = self.cfg
        consumer = Consumer(with_logger(consumer_config(cfg, self.process)))
        h, proc = self.history, self.process
        batch: list[list] = []  # records received and not yet recorded as a poll
        polls = 0

        def flush(commit: bool = True) -> None:
            """Records the batch as one poll, then commits it (after processing)."""
            nonlocal polls
            if not batch:
                return
            records = batch[:]
            batch.clear()
            polls += 1
            h.record(proc, "poll", records=records)
            if cfg.consumer_mode != "group" or not commit:
                return
            nxt: dict[int, int] = {}
            for p, o, _ in records:
                nxt[p] = max(nxt.get(p, 0), o + 1)
            try:
                result = consumer.commit(
                    offsets=[TopicPartition(cfg.topic, p, o) for p, o in sorted(nxt.items())], asynchronous=False
                )
                bad = [tp for tp in (result or []) if tp.error]
                if bad:
                    h.record(proc, "commit", "fail", offsets=nxt, error=",".join(tp.error.name() for tp in bad))
                else:
                    h.record(proc, "commit", offsets=nxt)
            except KafkaException as e:
                h.record(proc, "commit", "fail", offsets=nxt, error=str(e.args[0].name() if e.args else e))

        # Rebalance callbacks run inside poll(): what arrived before the rebalance is
        # recorded (and committed, as Kafka recommends on revoke) before the assignment
        # change, so the history has them in the order they happened.
        def on_assign(c, tps) -> None:
            flush()
            h.record(proc, "assign", partitions=sorted(tp.partition for tp in tps))

        def on_revoke(c, tps) -> None:
            flush()
            h.record(proc, "revoke", partitions=sorted(tp.partition for tp in tps))

        def on_lost(c, tps) -> None:
            flush(commit=False)  # a lost assignment cannot commit: these come again
            h.record(proc, "lost", partitions=sorted(tp.partition for tp in tps))

        if cfg.consumer_mode == "group":
            consumer.subscribe([cfg.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        else:
            mine = [p for p in range(cfg.partitions) if p % cfg.consumers == (self.number - 1) % cfg.consumers]
            consumer.assign([TopicPartition(cfg.topic, p, OFFSET_BEGINNING) for p in mine])
            h.record(proc, "assign", partitions=mine, mode="manual")
        try:
            # One message per poll() (the rates are low), batched into poll events of at
            # most 200 records or until nothing arrives for 0.2 s.
            while not self.stop_event.is_set() and polls < cfg.polls_max_per_consumer:
                m = consumer.poll(0.2)
                if m is None:
                    flush()
                    continue
                if m.error():
                    h.record(proc, "consumer-error", "info", error=m.error().name())
                    continue
                batch.append([m.partition(), m.offset(), m.value().decode(errors="replace")])
                if len(batch) >= 200:
                    flush()
            flush()
        finally:
            consumer.close()


class Workload:
    """Starts and stops the producer and consumer threads."""

    def __init__(self, cfg: WorkloadConfig, history: History):
        self.cfg = cfg
        self.history = history
        self.stop_producers = threading.Event()
        self.stop_consumers = threading.Event()
        self.producers = [ProducerWorker(i + 1, cfg, history, self.stop_producers) for i in range(cfg.producers)]
        self.consumers = [ConsumerWorker(i + 1, cfg, history, self.stop_consumers) for i in range(cfg.consumers)]

    def start(self) -> None:
        for t in self.consumers + self.producers:
            t.start()

    def stop(self, consumer_grace_s: float = 5.0) -> list[str]:
        """Stops producers (waiting for every outcome, bounded by the message timeout),
        lets consumers catch up for `consumer_grace_s`, stops them. Returns problems."""
        problems = []
        self.stop_producers.set()
        for t in self.producers:
            t.join(self.cfg.message_timeout_ms / 1000 + 15)
            if t.is_alive():
                problems.append(f"{t.name} did not stop")
        time.sleep(consumer_grace_s)
        self.stop_consumers.set()
        for t in self.consumers:
            t.join(20)
            if t.is_alive():
                problems.append(f"{t.name} did not stop")
        for t in self.producers + self.consumers:
            if t.error is not None:
                problems.append(f"{t.name} failed: {t.error!r}")
        return problems


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int, timeout_s: float = 30) -> None:
    """Creates the topic, retrying until the cluster answers (bounded)."""
    admin = AdminClient(with_logger({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 3000}))
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=5)
        if topic in md.topics and md.topics[topic].error is None and len(md.topics[topic].partitions) == partitions:
            return
        fs = admin.create_topics([NewTopic(topic, partitions, replication_factor)], operation_timeout=10)
        try:
            fs[topic].result(15)
            return
        except KafkaException as e:
            last = e
            if e.args and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            time.sleep(0.5)
    raise RuntimeError(f"could not create topic {topic}: {last}")


def find_coordinator(host: str, port: int, group: str, timeout_s: float = 3) -> int | None:
    """One FindCoordinator v1 request on a raw socket: the error code, or None when the
    node does not answer. (librdkafka's describe_consumer_groups aborts the process when
    its coordinator lookup is retried and times out, librdkafka issue #4605, so the probe
    does not use it.)"""
    key = group.encode()
    body = struct.pack(">h", len(key)) + key + struct.pack(">b", 0)
    client = b"keelchaos-probe"
    header = struct.pack(">hhih", 10, 1, 1, len(client)) + client
    frame = struct.pack(">i", len(header) + len(body)) + header + body
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(frame)
            data = b""
            while len(data) < 4:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
            size = struct.unpack(">i", data[:4])[0]
            while len(data) < 4 + size:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    # correlation id, throttle_time_ms, error_code
    if size < 10:
        return None
    return struct.unpack(">h", data[12:14])[0]


def group_coordinator_available(bootstrap: str, timeout_s: float = 20) -> bool:
    """Whether the cluster coordinates consumer groups: FindCoordinator answered with
    anything but COORDINATOR_NOT_AVAILABLE (15). Retried (bounded), as the first lookup
    makes the broker create its offsets topic, which takes a moment."""
    addresses = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in bootstrap.split(",") if a]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for host, port in addresses:
            code = find_coordinator(host, port, "keelchaos-probe")
            if code is not None and code != 15:
                return True
        time.sleep(0.5)
    return False


def partition_leaders(bootstrap: str, topic: str, timeout_s: float = 3) -> dict[int, int]:
    """partition -> leader node id, as metadata says now ({} when nobody answers)."""
    admin = AdminClient(with_logger({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000}))
    try:
        md = admin.list_topics(topic, timeout=timeout_s)
    except KafkaException:
        return {}
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return {}
    return {p: pm.leader for p, pm in t.partitions.items() if pm.error is None and pm.leader >= 0}


def wait_healthy(bootstrap: str, topic: str, partitions: int, node_ids: list[int], timeout_s: float) -> bool:
    """True when metadata lists every node and a leader for every partition."""
    admin = AdminClient(with_logger({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(topic, timeout=3)
            t = md.topics.get(topic)
            brokers = set(md.brokers)
            if (
                set(node_ids) <= brokers and t is not None and t.error is None
                and len(t.partitions) == partitions
                and all(pm.error is None and pm.leader >= 0 for pm in t.partitions.values())
            ):
                return True
        except KafkaException:
            pass
        time.sleep(0.5)
    return False


def final_read(bootstrap: str, topic: str, partitions: int, history: History, timeout_s: float = 60) -> list[str]:
    """Reads every partition from its beginning up to its high watermark, with a fresh
    consumer outside any group. Records one final-read event per partition."""
    problems = []
    consumer = Consumer(with_logger({
        "bootstrap.servers": bootstrap,
        "group.id": "keelchaos-final",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "socket.connection.setup.timeout.ms": 3000,
    }))
    deadline = time.monotonic() + timeout_s
    try:
        for p in range(partitions):
            tp = TopicPartition(topic, p)
            low = high = None
            while time.monotonic() < deadline:
                try:
                    low, high = consumer.get_watermark_offsets(tp, timeout=3, cached=False)
                    break
                except KafkaException:
                    time.sleep(0.5)
            records = []
            complete = False
            if high is not None:
                consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
                position = low
                while time.monotonic() < deadline and position < high:
                    for m in consumer.consume(num_messages=1000, timeout=0.5):
                        if m.error():
                            continue
                        records.append([m.offset(), m.value().decode(errors="replace")])
                    pos = consumer.position([TopicPartition(topic, p)])[0].offset
                    if pos >= 0:
                        position = pos
                complete = position >= high
                consumer.unassign()
            history.record("final", "final-read", partition=p, records=records, low=low, high=high, complete=complete)
            if not complete:
                problems.append(f"final read of partition {p} incomplete (high watermark {high})")
    finally:
        consumer.close()
    return problems
