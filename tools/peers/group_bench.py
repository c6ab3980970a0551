#!/usr/bin/env python3
"""The consumer-group harness of `tools/bench groups`. Not a test: it prints what it measured.

    group_bench.py --bootstrap HOSTS [--rounds 10] [--records 1000000] [--size 1024]
                   [--session-ms 6000] [--heartbeat-ms 500]

Members are confluent-kafka (librdkafka) consumers, each a process of its own (this script with `member`), that
log their assignments with the wall clock time (all on this machine). On a topic of 6 partitions, 3 replicas:

- join: with two members stable (3 + 3 partitions), a third subscribes; the rebalance time is from its
  subscribe() to the moment the last of the three has its new assignment (2 + 2 + 2). It then leaves (close(),
  a LeaveGroup) and the time until the other two hold 3 + 3 again is the leave time.
- death: with three members stable, one is SIGKILLed; the time from the kill to the moment both survivors hold
  their new assignment. The coordinator can only notice the silence after the session timeout, so this is
  the session timeout plus the rebalance; a replacement then joins for the next round.
- throughput: RECORDS records of SIZE bytes pre-produced (acks=all) across the 6 partitions, then consumed in
  full by a fresh group of 1 member and of 3, alternately, ROUNDS_TP times each: RECORDS divided by the time
  from the moment the group was stable (every member assigned; fetching starts then) to the last record.

Prints one line per round and `result ...` lines: medians and worst.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PARTITIONS = 6


def member_main(args):
    """One group member: logs assignments (and, in --count mode, progress) to args.events as JSON lines."""
    from confluent_kafka import Consumer

    out = open(args.events, "a", buffering=1)

    def event(kind, **fields):
        out.write(json.dumps({"e": kind, "t": time.time(), **fields}) + "\n")

    config = {
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": not args.count,
        "auto.offset.reset": "earliest", "session.timeout.ms": args.session_ms,
        "heartbeat.interval.ms": args.heartbeat_ms, "enable.partition.eof": False,
    }
    consumer = Consumer(config)
    event("subscribing")
    consumer.subscribe(
        [args.topic],
        on_assign=lambda c, tps: event("assigned", p=sorted(tp.partition for tp in tps)),
        on_revoke=lambda c, tps: event("revoked", p=sorted(tp.partition for tp in tps)))
    stop = args.events + ".stop"
    count, last, ends, reported = 0, None, {}, time.monotonic()
    while not os.path.exists(stop):
        messages = consumer.consume(num_messages=10000, timeout=0.2)
        if messages:
            for m in messages:
                if not m.error():
                    count += 1
                    ends[m.partition()] = m.offset() + 1
            last = time.time()
        if args.count and time.monotonic() - reported > 0.1:
            event("progress", count=count, last=last, ends=ends)
            reported = time.monotonic()
    if args.count:
        event("progress", count=count, last=last, ends=ends)
    consumer.close()
    event("stopped")


class Member:
    def __init__(self, bench, group, topic, count=False):
        self.events_path = os.path.join(bench.dir, f"member-{bench.next_id()}.events")
        command = [sys.executable, os.path.abspath(__file__), "member", "--bootstrap", bench.args.bootstrap,
                   "--group", group, "--topic", topic, "--events", self.events_path,
                   "--session-ms", str(bench.args.session_ms), "--heartbeat-ms", str(bench.args.heartbeat_ms)]
        if count:
            command.append("--count")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(self.events_path + ".err", "w"))

    def events(self):
        try:
            with open(self.events_path) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def assignment(self):
        """(partitions held now, time of the event that made it so)."""
        current, at = set(), None
        for e in self.events():
            if e["e"] == "assigned":
                current, at = set(e["p"]), e["t"]
            elif e["e"] == "revoked":
                current -= set(e["p"])
                at = e["t"]
        return current, at

    def first(self, kind):
        return next((e for e in self.events() if e["e"] == kind), None)

    def progress(self):
        last = [e for e in self.events() if e["e"] == "progress"]
        return last[-1] if last else {"count": 0, "last": None, "ends": {}}

    def stop(self):
        open(self.events_path + ".stop", "w").close()
        self.process.wait(60)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="keel-group-bench-")
        self.ids = 0

    def next_id(self):
        self.ids += 1
        return self.ids

    def wait(self, what, condition, seconds=60):
        deadline = time.monotonic() + seconds
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise SystemExit(f"group_bench: timed out after {seconds} s waiting for {what}")
            time.sleep(0.01)

    def settled(self, members, sizes):
        """The time the members' assignments became disjoint, complete and of these sizes, or None."""
        held = [m.assignment() for m in members]
        partitions = sorted(p for h, _ in held for p in h)
        if partitions != list(range(PARTITIONS)) or sorted(len(h) for h, _ in held) != sorted(sizes):
            return None
        return max(at for _, at in held)

    def create_topics(self, names):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.args.bootstrap})
        futures = admin.create_topics([NewTopic(n, PARTITIONS, 3) for n in names], request_timeout=30)
        for future in futures.values():
            future.result(60)

    def rebalances(self):
        args = self.args
        topic, group = "gbench-rebalance", "gbench-rebalance"
        members = [Member(self, group, topic) for _ in range(2)]
        self.wait("two members to split the topic", lambda: self.settled(members, [3, 3]))
        joins, leaves, deaths = [], [], []
        for round in range(1, args.rounds + 1):
            newcomer = Member(self, group, topic)
            start = self.wait("the newcomer to subscribe", lambda: newcomer.first("subscribing"))["t"]
            done = self.wait("the join rebalance", lambda: self.settled(members + [newcomer], [2, 2, 2]))
            joins.append(done - start)
            left_at = time.time()
            newcomer.stop()
            done = self.wait("the leave rebalance", lambda: self.settled(members, [3, 3]))
            leaves.append(done - left_at)
            print(f"join round {round}: join {joins[-1] * 1000:.0f} ms, leave {leaves[-1] * 1000:.0f} ms", flush=True)
        members.append(Member(self, group, topic))
        self.wait("three members", lambda: self.settled(members, [2, 2, 2]))
        for round in range(1, args.rounds + 1):
            victim = members.pop(0)
            killed_at = time.time()
            victim.kill()
            done = self.wait("the survivors to take over", lambda: self.settled(members, [3, 3]))
            deaths.append(done - killed_at)
            print(f"death round {round}: {deaths[-1] * 1000:.0f} ms after SIGKILL "
                  f"(session timeout {args.session_ms} ms)", flush=True)
            members.append(Member(self, group, topic))
            self.wait("a replacement", lambda: self.settled(members, [2, 2, 2]))
        for m in members:
            m.stop()
        for name, values in [("join", joins), ("leave", leaves), ("death", deaths)]:
            print(f"result rebalance-{name} median_ms={statistics.median(values) * 1000:.0f} "
                  f"worst_ms={max(values) * 1000:.0f} runs={len(values)}", flush=True)

    def produce(self, topic):
        from confluent_kafka import Producer

        args = self.args
        producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5,
                             "batch.size": 1 << 20, "queue.buffering.max.messages": 1000000})
        value = (b"0123456789abcdef" * (args.size // 16 + 1))[:args.size]
        failed = []
        start = time.monotonic()
        for i in range(args.records):
            while True:
                try:
                    producer.produce(topic, value=value, partition=i % PARTITIONS,
                                     on_delivery=lambda e, m: e and failed.append(e))
                    break
                except BufferError:
                    producer.poll(0.01)
            if i % 1000 == 0:
                producer.poll(0)
        left = producer.flush(120)
        if left or failed:
            raise SystemExit(f"group_bench: producing failed: {left} left, {failed[:3]}")
        seconds = time.monotonic() - start
        print(f"produced {args.records} records of {args.size} B in {seconds:.1f} s "
              f"({args.records / seconds:.0f} msg/s)", flush=True)

    def throughput(self):
        args = self.args
        topic = "gbench-throughput"
        self.produce(topic)
        rates = {1: [], 3: []}
        for round in range(1, args.rounds_tp + 1):
            for size in (1, 3):
                group = f"gbench-tp-{size}-{round}"
                members = [Member(self, group, topic, count=True) for _ in range(size)]
                sizes = [PARTITIONS // size] * size
                stable = self.wait(f"{size} member(s) to share the partitions",
                                   lambda: self.settled(members, sizes))

                def consumed():
                    ends = {}
                    for m in members:
                        for p, end in m.progress()["ends"].items():
                            ends[int(p)] = max(ends.get(int(p), 0), end)
                    return all(ends.get(p, 0) >= args.records // PARTITIONS for p in range(PARTITIONS))

                self.wait(f"{size} member(s) to consume everything", consumed, seconds=300)
                for m in members:
                    m.stop()
                progress = [m.progress() for m in members]
                last = max(p["last"] for p in progress if p["last"])
                # From the moment the group was stable (fetching starts with the assignment) to the last record.
                rate = args.records / (last - stable)
                rates[size].append(rate)
                shares = "/".join(str(p["count"]) for p in progress)
                print(f"throughput round {round}: {size} member(s) {rate:.0f} msg/s "
                      f"({rate * args.size / 1e6:.1f} MB/s; records per member {shares})", flush=True)
        one, three = statistics.median(rates[1]), statistics.median(rates[3])
        print(f"result group-consume members=1 median_msg_s={one:.0f}", flush=True)
        print(f"result group-consume members=3 median_msg_s={three:.0f} ratio_3_to_1={three / one:.2f}", flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        parser = argparse.ArgumentParser()
        for name in ["--bootstrap", "--group", "--topic", "--events"]:
            parser.add_argument(name, required=True)
        parser.add_argument("--session-ms", type=int, default=6000)
        parser.add_argument("--heartbeat-ms", type=int, default=500)
        parser.add_argument("--count", action="store_true")
        member_main(parser.parse_args(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rounds-tp", type=int, default=3)
    parser.add_argument("--records", type=int, default=1000000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--session-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-ms", type=int, default=500)
    parser.add_argument("--only", choices=["rebalance", "throughput"])
    args = parser.parse_args()
    bench = Bench(args)
    bench.create_topics(["gbench-rebalance", "gbench-throughput"])
    if args.only != "throughput":
        bench.rebalances()
    if args.only != "rebalance":
        bench.throughput()


if __name__ == "__main__":
    main()
