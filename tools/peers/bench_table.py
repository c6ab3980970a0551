#!/usr/bin/env python3
"""Prints the table of `tools/bench produce` from its results file.

Each line: `<system> <phase> result <kind> key=value ...`. Throughput is the median over
rounds; JetStream's consume is the faster of its ordered push and pull consumers in each
round. Ratios are Keel / JetStream (for latency, JetStream / Keel would flatter nobody:
lower is better, so the ratio printed is Keel / JetStream too; below 1 means Keel is faster).
"""
import statistics
import sys
from collections import defaultdict


def parse(path):
    runs = defaultdict(list)  # (system, phase) -> [dict]
    for line in open(path):
        parts = line.split()
        if len(parts) < 4 or parts[2] != "result":
            if len(parts) >= 2:
                runs[(parts[0], parts[1])].append(None)  # a failed run
            continue
        fields = dict(p.split("=", 1) for p in parts[4:] if "=" in p)
        runs[(parts[0], parts[1])].append(fields)
    return runs


def main():
    runs = parse(sys.argv[1])
    failed = [k for k, v in runs.items() if any(r is None for r in v)]

    def values(system, phase, key):
        return [float(r[key]) for r in runs.get((system, phase), []) if r]

    def median(system, phase, key):
        v = values(system, phase, key)
        return statistics.median(v) if v else float("nan")

    js_consume = [max(a, b) for a, b in zip(values("jetstream", "consume", "msg_per_s"),
                                            values("jetstream", "consume-pull", "msg_per_s"))]
    js_consume_mb = [max(a, b) for a, b in zip(values("jetstream", "consume", "mb_per_s"),
                                               values("jetstream", "consume-pull", "mb_per_s"))]

    def med(v):
        return statistics.median(v) if v else float("nan")

    rows = []

    def row(what, keel, js, goal="", fmt="{:,.0f}", disk=None):
        ratio = keel / js if js and js == js and keel == keel else float("nan")
        rows.append((what, fmt.format(keel), fmt.format(js), f"{ratio:.2f}", goal,
                     "" if disk is None else fmt.format(disk)))

    rounds = len(values("keel", "produce", "msg_per_s"))
    print(f"\n== results (median of {rounds} rounds for throughput; Keel / JetStream ratios)")
    row("produce msg/s", median("keel", "produce", "msg_per_s"), median("jetstream", "produce", "msg_per_s"),
        "≥ 1.0")
    row("produce MB/s", median("keel", "produce", "mb_per_s"), median("jetstream", "produce", "mb_per_s"),
        fmt="{:,.1f}")
    if values("keel-none", "produce", "msg_per_s"):
        row("produce msg/s, Keel flush policy none", median("keel-none", "produce", "msg_per_s"),
            median("jetstream", "produce", "msg_per_s"))
    if values("keelclient", "produce", "msg_per_s"):
        row("produce msg/s, KeelClient producer", median("keelclient", "produce", "msg_per_s"),
            median("jetstream", "produce", "msg_per_s"), "≥ 1.0")
    row("consume msg/s", median("keel", "consume", "msg_per_s"), med(js_consume), "≥ 1.5")
    row("consume MB/s", median("keel", "consume", "mb_per_s"), med(js_consume_mb), fmt="{:,.1f}")
    row("server CPU s, produce phase", median("keel", "produce", "server_cpu_s"),
        median("jetstream", "produce", "server_cpu_s"), fmt="{:.2f}")
    js_consume_cpu = [a + b for a, b in zip(values("jetstream", "consume", "server_cpu_s"),
                                            values("jetstream", "consume-pull", "server_cpu_s"))]
    row("server CPU s, consume phase", median("keel", "consume", "server_cpu_s"),
        med([v / 2 for v in js_consume_cpu]), fmt="{:.2f}")
    phases = sorted({p for (_, p) in runs if p.startswith("latency-")}, key=lambda p: int(p.split("-")[1]))
    for phase in phases:
        rate = phase.split("-")[1]
        for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
            row(f"latency at {rate} msg/s, {name} ms (librdkafka, linger.ms=5)", median("keel", phase, key),
                median("jetstream", phase, key), fmt="{:.3f}", disk=median("disk", phase, key))
        if values("keelclient", phase, "p50_ms"):
            for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
                row(f"latency at {rate} msg/s, {name} ms (KeelClient, linger 5 ms)", median("keelclient", phase, key),
                    median("jetstream", phase, key), fmt="{:.3f}", disk=median("disk", phase, key))
        for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
            row(f"latency at {rate} msg/s, {name} ms (librdkafka, linger.ms=0)", median("keel", "latency0-" + rate, key),
                median("jetstream", phase, key), fmt="{:.3f}", disk=median("disk", phase, key))
        if values("keel-none", "latency0-" + rate, "p50_ms"):
            for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
                row(f"latency at {rate} msg/s, {name} ms (librdkafka, linger.ms=0, flush none)",
                    median("keel-none", "latency0-" + rate, key), median("jetstream", phase, key), fmt="{:.3f}")

    header = ("what", "Keel", "JetStream R1", "Keel/JS", "goal", "disk write+fdatasync")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(6)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join((r[0].ljust(widths[0]),) + tuple(c.rjust(w) for c, w in zip(r[1:], widths[1:]))))

    extra = sorted({p for (s, p) in runs if s == "keel" and p.startswith(("produce-", "consume-"))})
    for phase in extra:
        print(f"keel {phase}: {median('keel', phase, 'msg_per_s'):,.0f} msg/s, {median('keel', phase, 'mb_per_s'):,.1f} MB/s")
    print("per round, msg/s: keel produce", values("keel", "produce", "msg_per_s"),
          "keelclient produce", values("keelclient", "produce", "msg_per_s"),
          "jetstream produce", values("jetstream", "produce", "msg_per_s"))
    print("per round, msg/s: keel consume", values("keel", "consume", "msg_per_s"),
          "jetstream ordered", values("jetstream", "consume", "msg_per_s"),
          "jetstream pull", values("jetstream", "consume-pull", "msg_per_s"))
    print("Durability differs: Keel (flush policy fsync) acknowledges acks=all only after the fsync that covers")
    print("the batch; JetStream acknowledges once written to its file store, before any fsync (sync_interval")
    print("defaults to 2 min). Keel's producer is librdkafka (lz4, linger.ms=5, batch.size=64 KiB, acks=all);")
    print("KeelClient's producer (keel bench produce): lz4, linger 5 ms, 64 KiB batches, acks=all, idempotent.")
    print("JetStream's is nats.go async publish (no compression; JetStream 2.9 stores messages uncompressed).")
    print("JetStream consume: the faster of an ordered push consumer and a pull consumer, per round; its server")
    print("CPU is the mean of the two. Consumers are librdkafka (batch API, LZ4 decompression) and nats.go.")
    print("disk write+fdatasync: 1.5 KB write + fdatasync at the message rate (back to back when slower), the")
    print("floor under Keel's acks=all latency with flush policy fsync. 'flush none': a second Keel broker that")
    print("acknowledges once written, without fsync, as JetStream does.")
    if failed:
        print("FAILED runs (no result line):", ", ".join(f"{s} {p}" for s, p in failed))
        sys.exit(1)


main()
