#!/usr/bin/env python3
"""Prints the table of `tools/bench cluster` from its results file.

Each line: `<system> <phase> result <kind> key=value ...` (system: keel, jetstream, jetstream-sync, disk).
Throughput is the median over rounds; JetStream's consume is the faster of its ordered push and pull consumers in
each round. Ratios are Keel / JetStream: above 1 is Keel faster for throughput, below 1 is Keel faster for latency.
Goals (issue 4): produce >= 3x JetStream R3 msg/s and consume >= 2x while Keel fsyncs before acknowledging;
p99 at 1,000 msg/s no worse than JetStream's.
"""
import statistics
import sys
from collections import defaultdict


def parse(path):
    runs = defaultdict(list)  # (system, phase) -> [dict or None]
    for line in open(path):
        parts = line.split()
        if len(parts) < 2:
            continue
        if len(parts) < 4 or parts[2] != "result":
            runs[(parts[0], parts[1])].append(None)  # a failed run
            continue
        runs[(parts[0], parts[1])].append(dict(p.split("=", 1) for p in parts[4:] if "=" in p))
    return runs


def main():
    runs = parse(sys.argv[1])
    failed = sorted(k for k, v in runs.items() if any(r is None for r in v))

    def values(system, phase, key):
        return [float(r[key]) for r in runs.get((system, phase), []) if r and key in r]

    def med(v):
        return statistics.median(v) if v else float("nan")

    def median(system, phase, key):
        return med(values(system, phase, key))

    def best_consume(key, suffix=""):
        ordered = values("jetstream", "consume" + suffix, key)
        pull = values("jetstream", "consume-pull" + suffix, key)
        if ordered and pull:
            return med([max(a, b) for a, b in zip(ordered, pull)])
        return med(ordered or pull)

    rows = []

    def row(what, keel, js, goal="", fmt="{:,.0f}", better="higher"):
        ratio = keel / js if js == js and keel == keel and js else float("nan")
        met = ""
        if goal and ratio == ratio:
            target = float(goal.split()[-1])
            ok = ratio >= target if better == "higher" else ratio <= target
            met = " ✔" if ok else " ✘"
        rows.append((what, fmt.format(keel), fmt.format(js), f"{ratio:.2f}", (goal + met) if goal else ""))

    rounds = len(values("keel", "produce", "msg_per_s"))
    print(f"\n== results (median of {rounds} rounds for 1 KiB throughput; ratios Keel / JetStream R3)")
    row("produce msg/s, 1 KiB, 1 partition / 1 stream", median("keel", "produce", "msg_per_s"),
        median("jetstream", "produce", "msg_per_s"), "≥ 3.0")
    row("produce MB/s of values", median("keel", "produce", "mb_per_s"), median("jetstream", "produce", "mb_per_s"),
        fmt="{:,.1f}")
    if values("jetstream-sync", "produce", "msg_per_s"):
        row("produce msg/s against JetStream sync_interval always", median("keel", "produce", "msg_per_s"),
            median("jetstream-sync", "produce", "msg_per_s"))
    row("consume msg/s, 1 KiB", median("keel", "consume", "msg_per_s"), best_consume("msg_per_s"), "≥ 2.0")
    row("consume MB/s of values", median("keel", "consume", "mb_per_s"), best_consume("mb_per_s"), fmt="{:,.1f}")
    row("server CPU s (3 processes), produce phase", median("keel", "produce", "server_cpu_s"),
        median("jetstream", "produce", "server_cpu_s"), fmt="{:.2f}", better="lower")
    js_consume_cpu = [a + b for a, b in zip(values("jetstream", "consume", "server_cpu_s"),
                                            values("jetstream", "consume-pull", "server_cpu_s"))]
    row("server CPU s (3 processes), consume phase", median("keel", "consume", "server_cpu_s"),
        med([v / 2 for v in js_consume_cpu]), fmt="{:.2f}", better="lower")
    for (system, phase) in sorted(runs):
        if system == "keel" and phase.startswith("produce-p"):
            p = phase[len("produce-p"):]
            row(f"produce msg/s, {p} partitions / {p} streams", median("keel", phase, "msg_per_s"),
                median("jetstream", phase, "msg_per_s"))
    sizes = sorted({int(p.split("-")[1]) for (s, p) in runs if s == "keel" and p.split("-")[-1].isdigit()
                    and p.startswith("produce-") and not p.startswith("produce-p")})
    for size in sizes:
        row(f"produce msg/s, {size} B values", median("keel", f"produce-{size}", "msg_per_s"),
            median("jetstream", f"produce-{size}", "msg_per_s"))
        row(f"produce MB/s, {size} B values", median("keel", f"produce-{size}", "mb_per_s"),
            median("jetstream", f"produce-{size}", "mb_per_s"), fmt="{:,.1f}")
        row(f"consume msg/s, {size} B values (JetStream pull)", median("keel", f"consume-{size}", "msg_per_s"),
            median("jetstream", f"consume-pull-{size}", "msg_per_s"))
    if values("keel", "produce-uncompressed", "msg_per_s"):
        row("produce msg/s, Keel uncompressed (codec none, stored as sent)",
            median("keel", "produce-uncompressed", "msg_per_s"), median("jetstream", "produce", "msg_per_s"))
        row("consume msg/s, Keel uncompressed", median("keel", "consume-uncompressed", "msg_per_s"),
            best_consume("msg_per_s"))
    rate = next((r["rate"] for r in runs.get(("keel", "latency"), []) if r), "?")
    for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
        row(f"latency at {rate} msg/s, {name} ms (librdkafka linger.ms=5)", median("keel", "latency", key),
            median("jetstream", "latency", key), "≤ 1.0" if name == "p99" else "", fmt="{:.3f}", better="lower")
    for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
        row(f"latency at {rate} msg/s, {name} ms (librdkafka linger.ms=0)", median("keel", "latency0", key),
            median("jetstream", "latency", key), "≤ 1.0" if name == "p99" else "", fmt="{:.3f}", better="lower")
    if values("jetstream-sync", "latency", "p50_ms"):
        for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99_9_ms", "p99.9")):
            row(f"latency at {rate} msg/s, {name} ms, against JetStream sync always", median("keel", "latency0", key),
                median("jetstream-sync", "latency", key), fmt="{:.3f}", better="lower")
    disk = [median("disk", "latency", k) for k in ("p50_ms", "p99_ms", "p99_9_ms")]

    header = ("what", "Keel", "JetStream R3", "Keel/JS", "goal")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join((r[0].ljust(widths[0]),) + tuple(c.rjust(w) for c, w in zip(r[1:], widths[1:]))))
    print(f"disk write+fdatasync at {rate}/s, p50 / p99 / p99.9 ms: " + " / ".join(f"{d:.3f}" for d in disk))
    for system, phase in (("keel", "produce"), ("jetstream", "produce"), ("keel", "consume"),
                          ("jetstream", "consume"), ("jetstream", "consume-pull")):
        print(f"per round, msg/s: {system} {phase}", [int(v) for v in values(system, phase, "msg_per_s")])
    print("Durability differs: Keel (flush policy fsync, 3 replicas) answers acks=all once a majority of replicas")
    print("has fsynced the batch; JetStream 2.9 answers once a majority has the message in its file store, before")
    print("any fsync (its sync interval is 2 min). Keel's clients: librdkafka (lz4, linger.ms=5, batch.size=64 KiB,")
    print("acks=all, not idempotent); JetStream's: nats.go async publish (at most 4000 unacknowledged), connected")
    print("to the stream's leader. Consumers: librdkafka (batch API) and nats.go (ordered push, pull by 1000).")
    if failed:
        print("FAILED runs (no result line):", ", ".join(f"{s} {p}" for s, p in failed))
        sys.exit(1)


main()
