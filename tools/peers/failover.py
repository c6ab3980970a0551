#!/usr/bin/env python3
"""The failover harness of `tools/bench failover`. Not a test: it prints what it measured.

    failover.py --cluster DIR --rdkafka BIN --values FILE --scenario LABEL:KILL|TERM[:key=value,...]...
                [--iterations 20] [--rate 1000] [--seconds-max 900]

Starts a local Keel cluster of three nodes with cluster/up in DIR (KEEL_CLUSTER_DIR; KEEL_BIN, KEEL_BASE_PORT,
KEEL_CLUSTER_BASE_PORT from the environment) and stops it at the end. Per scenario: a topic of one partition with
three replicas, and an acks=all librdkafka producer (rdkafka_bench produce -L, with the scenario's librdkafka
settings) that writes RATE msg/s for the whole scenario and logs, per message, its send time and the time of its delivery report (CLOCK_MONOTONIC, shared by every
process here). Each iteration:

1. finds the partition's leader from the nodes' status.json (a fresh report, a running node);
2. sends it SIGKILL (or SIGTERM: a graceful shutdown hands its leaderships over first) and notes the time;
3. waits for the first successful delivery report after that time whose batch the successor appended: the batch
   that holds the acknowledged offset carries the term of the leader that appended it (partitionLeaderEpoch),
   which must be newer than the victim's term; an answer the victim wrote to the socket before it died would
   carry the old term and is counted apart ("late answers from the victim");
4. restarts the node (cluster/restart), waits until it follows the leader with at most one second of lag, then
   SETTLE seconds more (librdkafka backs off its reconnects to a node that was down, up to
   reconnect.backoff.max.ms, 10 s by default: a successor killed and restarted a moment ago is reached only when
   that backoff ends, which a node that has been up all along does not suffer).

The producer also logs librdkafka's Metadata answers (debug=metadata): each iteration prints when, after the
signal, the cluster named which leader, so that the cluster's part (electing a successor and saying so) can be
told from the client's (when it asks, and its backoffs).

It prints one line per iteration and a `result failover ...` line per scenario: median and worst, in ms.

Nodes are restarted by cluster/restart, whose shell exits at once: this process makes itself a child subreaper
(prctl), so that the nodes are its children once orphaned and it can reap them (this machine's PID 1 does not
reap orphans, and a zombie node would look alive to kill -0).
"""
import argparse
import ctypes
import glob
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PR_SET_CHILD_SUBREAPER = 36


def now_ns():
    return time.monotonic_ns()  # CLOCK_MONOTONIC on Linux, as rdkafka_bench's now_ns()


class Cluster:
    def __init__(self, directory, topic):
        self.dir = directory
        self.topic = topic
        env = {}
        with open(os.path.join(directory, "cluster.env")) as f:
            for line in f:
                if "=" in line:
                    key, value = line.strip().split("=", 1)
                    env[key] = value
        self.nodes = int(env.get("NODES", "3"))
        self.base_port = int(env["BASE_PORT"])

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.base_port + n - 1}" for n in range(1, self.nodes + 1))

    def pid(self, n):
        try:
            with open(os.path.join(self.dir, f"node-{n}.pid")) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self, n):
        """True while node n's process runs; a node that exited is reaped here (it is this process's child once
        orphaned), so that cluster/restart's kill -0 does not mistake a zombie for a running node."""
        pid = self.pid(n)
        if pid is None:
            return False
        reap(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return False
        reap(pid)  # a zombie now: reaped by this call if it is our child
        return False

    def status(self, n):
        try:
            with open(os.path.join(self.dir, f"node-{n}", "status.json")) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def replica(self, n, fresh_ms=2500):
        """This node's report on the partition, if the node runs and the report is fresh."""
        if not self.alive(n):
            return None
        report = self.status(n)
        if not report or time.time() * 1000 - report["time_ms"] > fresh_ms:
            return None
        for r in report["replicas"]:
            if r["topic"] == self.topic and r["partition"] == 0:
                return dict(r, controller=report["controller"])
        return None

    def leader(self, excluding=None):
        for n in range(1, self.nodes + 1):
            r = self.replica(n)
            if n != excluding and r and r["is_leader"]:
                return n, r
        return None, None

    def segment_epochs(self, n):
        """(base offset, last offset, partitionLeaderEpoch) of every batch in node n's replica."""
        batches = []
        for path in sorted(glob.glob(os.path.join(self.dir, f"node-{n}", f"{self.topic}-0", "*.log"))):
            with open(path, "rb") as f:
                data = f.read()
            pos = 0
            # Record batch v2: baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8,
            # crc uint32, attributes int16, lastOffsetDelta int32 (big-endian).
            while pos + 27 <= len(data):
                base, length, epoch = struct.unpack_from(">qii", data, pos)
                (delta,) = struct.unpack_from(">i", data, pos + 23)
                if length <= 0 or pos + 12 + length > len(data):
                    break
                batches.append((base, base + delta, epoch))
                pos += 12 + length
        return batches


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class AckLog:
    """The producer's log, read as it grows: (index, send_ns, report_ns, partition, offset, error)."""

    def __init__(self, path):
        self.path = path
        self.rows = []
        self.pos = 0
        self.partial = b""

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        self.pos += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            parts = line.split()
            if len(parts) == 6:
                self.rows.append(tuple(int(p) for p in parts))


def wait_until(what, seconds, check, log=None):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"failover.py: timed out waiting for {what}")
        time.sleep(0.02)


def stop_all(cluster):
    """SIGTERM every running node (a graceful shutdown), SIGKILL after 20 s; reaps them."""
    for n in range(1, cluster.nodes + 1):
        if cluster.alive(n):
            os.kill(cluster.pid(n), signal.SIGTERM)
    deadline = time.monotonic() + 20
    for n in range(1, cluster.nodes + 1):
        while cluster.alive(n):
            if time.monotonic() > deadline:
                os.kill(cluster.pid(n), signal.SIGKILL)
            time.sleep(0.05)


def metadata_answers(path, since_s, until_s):
    """From the producer's librdkafka debug log (debug=metadata): (seconds after `since_s`, leader) of every
    Metadata answer for partition 0 in [since_s, until_s]. The log's times are rdkafka_bench's CLOCK_MONOTONIC."""
    answers = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 8 and parts[1] == "rdkafka" and parts[2] == "METADATA:" and "partition" in parts \
                        and parts[-2] == "Leader":
                    t = float(parts[0])
                    if since_s <= t <= until_s:
                        answers.append((t - since_s, int(parts[-1])))
    except (FileNotFoundError, ValueError):
        pass
    return answers


def run_scenario(cluster, args, label, sig_name, settle_s, extra):
    """One producer for the whole scenario, `args.iterations` leader failures; returns the result line."""
    topic = cluster.topic = f"failover-{label}"
    for attempt in range(1, 4):
        created = subprocess.run([args.rdkafka, "create", "-b", cluster.bootstrap(), "-t", topic, "-p", "1", "-R", "3"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if created.returncode == 0:
            break
        # Not the measurement, but worth a report: say so, with what the nodes logged, and try again.
        print(f"== creating {topic} failed (attempt {attempt}): {created.stderr.strip()}", flush=True)
        for n in range(1, cluster.nodes + 1):
            subprocess.run(["tail", "-n", "5", os.path.join(args.cluster, f"node-{n}.log")])
    else:
        raise SystemExit(f"failover.py: could not create {topic}")
    log_path = os.path.join(args.cluster, f"acks-{label}.log")
    command = [args.rdkafka, "produce", "-b", cluster.bootstrap(), "-t", topic, "-f", args.values,
               "-n", str(int(args.rate * args.seconds_max)), "-r", str(args.rate), "-T", str(args.seconds_max),
               "-L", log_path]
    for x in extra + ["debug=metadata"]:
        command += ["-X", x]
    print(f"== failover {label}: SIG{sig_name} of the leader, {args.iterations} times, {settle_s:g} s between a "
          f"restarted node's catching up and the next failure; producer: rdkafka_bench {' '.join(command[2:])}",
          flush=True)
    # RDKAFKA_BENCH_DEBUG: rdkafka_bench prints librdkafka's debug lines (here: every Metadata answer, with the
    # partition's leader) on standard error, timed with the same clock as the acknowledgements.
    producer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(log_path + ".err", "w"),
                                env=dict(os.environ, RDKAFKA_BENCH_DEBUG="1"))
    acks = AckLog(log_path)
    sig = signal.SIGKILL if sig_name == "KILL" else signal.SIGTERM
    results, told_ms = [], []
    try:
        def acked_count():
            acks.poll()
            return sum(1 for r in acks.rows if r[5] == 0) >= args.rate

        wait_until("the producer's first second of acknowledgements", 60, acked_count)
        for i in range(1, args.iterations + 1):
            victim, before = wait_until("a leader", 30, lambda: pair(cluster.leader()))
            pid = cluster.pid(victim)
            acks.poll()
            start_row = len(acks.rows)
            killed_ns = now_ns()
            os.kill(pid, sig)

            def first_after():
                acks.poll()
                return any(row[5] == 0 and row[2] > killed_ns for row in acks.rows[start_row:])

            wait_until(f"node {victim} to exit", 30, lambda: not cluster.alive(victim))
            exited_ns = now_ns()
            # As cluster/kill does: the node is gone, so cluster/restart starts it without looking at the old pid.
            os.remove(os.path.join(args.cluster, f"node-{victim}.pid"))
            wait_until("an acknowledgement after the kill", 60, first_after)
            successor, after = wait_until("a new leader", 30, lambda: pair(cluster.leader(excluding=victim)))
            # Restart the victim and wait until it follows with at most a second of lag.
            subprocess.run([os.path.join(ROOT, "cluster", "restart"), str(victim)], check=True,
                           env=dict(os.environ, KEEL_CLUSTER_DIR=args.cluster), stdout=subprocess.DEVNULL)

            def converged():
                n, r = cluster.leader()
                follower = cluster.replica(victim)
                if not n or not follower or follower["leader"] != n:
                    return None
                end = r["followers"].get(str(victim))
                return end is not None and r["high_watermark"] - end <= args.rate

            wait_until(f"node {victim} to catch up", 90, converged)
            time.sleep(settle_s)
            # Which answers after the kill came from the successor: their batches carry a newer term.
            acks.poll()
            batches = cluster.segment_epochs(successor)
            late_from_victim, first = 0, None
            for row in acks.rows[start_row:]:
                if row[5] != 0 or row[2] <= killed_ns:
                    continue
                epoch = epoch_of(batches, row[4])
                if epoch is not None and epoch > before["term"]:
                    first = row
                    break
                late_from_victim += 1
            if first is None:
                raise SystemExit(f"failover.py: iteration {i}: no acknowledgement from the successor found")
            failures = sum(1 for r in acks.rows[start_row:] if r[5] != 0)
            ms = (first[2] - killed_ns) / 1e6
            results.append(ms)
            # What the cluster told the client, and when: Metadata answers until the first acknowledgement.
            answers = metadata_answers(log_path + ".err", killed_ns / 1e9, first[2] / 1e9)
            told = next((t for t, leader in answers if leader == successor), None)
            if told is not None:
                told_ms.append(told * 1000)
            answers_text = " ".join(f"{t * 1000:.0f}:{leader}" for t, leader in answers[:8])
            print(f"iteration {i}: at {killed_ns / 1e9:.3f} s (CLOCK_MONOTONIC) "
                  f"leader {victim} (term {before['term']}, controller {before['controller']}) "
                  f"SIG{sig_name}, exited after {(exited_ns - killed_ns) / 1e6:.0f} ms; new leader {successor} "
                  f"(term {after['term']}); first acks=all answer from it {ms:.0f} ms after the signal "
                  f"(offset {first[4]}, sent {(first[1] - killed_ns) / 1e6:+.0f} ms); late answers from the "
                  f"victim {late_from_victim}; failed deliveries {failures}; Metadata answers (ms:leader) "
                  f"{answers_text or '-'}", flush=True)
    finally:
        producer.send_signal(signal.SIGTERM)
        try:
            producer.wait(timeout=90)
        except subprocess.TimeoutExpired:
            producer.kill()
    acks.poll()
    failed = sum(1 for r in acks.rows if r[5] != 0)
    return (f"result failover label={label} signal={sig_name} iterations={len(results)} "
            f"median_ms={statistics.median(results):.0f} worst_ms={max(results):.0f} best_ms={min(results):.0f} "
            f"mean_ms={statistics.mean(results):.0f} acked={sum(1 for r in acks.rows if r[5] == 0)} "
            f"failed={failed} metadata_named_successor_median_ms="
            f"{statistics.median(told_ms) if told_ms else float('nan'):.0f} "
            f"all_ms={','.join(f'{v:.0f}' for v in results)}")


def pair(found):
    return found if found[0] else None


def epoch_of(batches, offset):
    lo, hi = 0, len(batches) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        base, last, epoch = batches[mid]
        if offset < base:
            hi = mid - 1
        elif offset > last:
            lo = mid + 1
        else:
            return epoch
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", required=True, help="KEEL_CLUSTER_DIR; cluster/up starts the nodes there")
    ap.add_argument("--rdkafka", required=True)
    ap.add_argument("--values", required=True)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds-max", type=float, default=900)
    ap.add_argument("--scenario", action="append", required=True,
                    help="LABEL:KILL|TERM:SETTLE_S[:key=value,key=value...] (seconds to wait between a restarted "
                         "node's catching up and the next failure; librdkafka settings)")
    args = ap.parse_args()

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    subprocess.run([os.path.join(ROOT, "cluster", "up"), "3"], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, KEEL_CLUSTER_DIR=args.cluster))
    cluster = Cluster(args.cluster, "")
    lines = []
    try:
        for scenario in args.scenario:
            label, sig_name, settle, *rest = scenario.split(":", 3)
            extra = [x for x in (rest[0].split(",") if rest else []) if x]
            lines.append(run_scenario(cluster, args, label, sig_name, float(settle), extra))
            print(lines[-1], flush=True)
    finally:
        stop_all(cluster)
    print("\n".join(lines))


main()
