"""The checker: finds anomalies in a recorded history (history.py) and measures how long
writes were unavailable after each fault.

The facts it works from, per partition:
  * acknowledgements: an `ok` send says value v is at offset o;
  * reads: every consumer poll, and the final full read after everything was healed;
  * the final read is the log's authoritative content, if it read the partition up to
    its high watermark (`complete`).

Anomalies (each case names the values, offsets and processes involved):

  lost                 an acknowledged send whose value is not in the complete final
                       read of its partition; or a value some consumer polled (so it was
                       committed) that is not in the final read. (Jepsen's lost-write is
                       narrower: it needs a later value to have been read. With a full
                       final read, acknowledged-then-absent is loss, wherever the log
                       ends.)
  unseen               an acknowledged send that no read ever returned, in a partition
                       whose final read is incomplete or missing (so it cannot be called
                       lost, and nothing shows it is there either).
  duplicate            one value at more than one (partition, offset), by any mix of
                       acknowledgement and reads: idempotent producers must prevent it.
  inconsistent-offset  more than one value at one (partition, offset), by any mix of
                       acknowledgement and reads; or a value read in a partition other
                       than the one it was sent to.
  failed-visible       a send whose outcome was a definite failure, and whose value a
                       read returned (Jepsen's G1a, "aborted read").
  nonmonotonic-send    two acknowledged sends of one producer to one partition whose
                       offsets are not in the order the producer sent them.
  nonmonotonic-poll    a consumer, with no assignment change in between, received offset
                       o2 after o1 in one partition with o2 <= o1 (went back or repeated).
  poll-skip            a consumer, with no assignment change in between, received o1 then
                       o2 > o1 in one partition while some read or acknowledgement shows a
                       record at an offset strictly between them. Offsets that nobody saw
                       a record at (control batches such as LEADER_CHANGE take offsets
                       too) are not skips.

Unavailability, per fault: for each partition, the time from the fault's start to the
first acknowledgement of a send to that partition invoked at or after the start; the
fault's window is the worst partition's. For kills of a leader (`kill`, `lose-unsynced`
with the target's partitions recorded in `leader_of`) the same is taken over the
partitions it led, and summarised as p50 / p99 / max.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field

ANOMALY_KINDS = (
    "lost",
    "unseen",
    "duplicate",
    "inconsistent-offset",
    "failed-visible",
    "nonmonotonic-send",
    "nonmonotonic-poll",
    "poll-skip",
)
CONSUMER_RESETS = ("assign", "revoke", "lost")
LEADER_KILL_KINDS = ("kill", "lose-unsynced")
CASES_SHOWN = 10


@dataclass
class Send:
    value: str
    process: str
    partition: int
    invoke_index: int
    invoke_time: float
    outcome: str | None = None  # ok, fail, info; None = no completion recorded
    offset: int | None = None
    complete_time: float | None = None
    error: str | None = None


@dataclass
class Analysis:
    anomalies: dict[str, list[dict]]
    problems: list[str]  # the run could not prove things (harness-level)
    stats: dict
    faults: list[dict]
    leader_kills: dict
    series: dict = field(default_factory=dict)  # for the plot
    # Duplicate causes (DUPLICATE_CAUSES) that still count and show but do not make the run invalid.
    tolerated: set = field(default_factory=set)

    def _counts_against(self, kind: str, cases: list[dict]) -> bool:
        if kind != "duplicate" or not self.tolerated:
            return bool(cases)
        return any(c.get("cause") not in self.tolerated for c in cases)

    @property
    def valid(self) -> bool:
        return not self.problems and not any(self._counts_against(k, v) for k, v in self.anomalies.items())

    def counts(self) -> dict[str, int]:
        return {k: len(self.anomalies.get(k, [])) for k in ANOMALY_KINDS}

    def to_json(self) -> dict:
        return {
            "valid": self.valid,
            "counts": self.counts(),
            "anomalies": self.anomalies,
            "problems": self.problems,
            "stats": self.stats,
            "faults": self.faults,
            "leader_kills": self.leader_kills,
        }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def collect_sends(events: list[dict]) -> tuple[dict[str, Send], list[str]]:
    sends: dict[str, Send] = {}
    problems = []
    for e in events:
        if e.get("f") != "send":
            continue
        v = e["value"]
        if e["type"] == "invoke":
            if v in sends:
                problems.append(f"value {v} was sent twice: the workload must send unique values")
                continue
            sends[v] = Send(v, e["process"], int(e["partition"]), e["index"], e["time"])
            continue
        s = sends.get(v)
        if s is None:
            problems.append(f"completion of {v} without an invocation")
            continue
        if s.outcome is not None:
            if s.outcome != e["type"]:
                problems.append(f"send {v} completed twice ({s.outcome}, then {e['type']})")
            continue
        s.outcome = e["type"]
        s.complete_time = e["time"]
        s.error = e.get("error")
        if e["type"] == "ok":
            # librdkafka can report a delivery without its offset (None): the value must
            # still be in the log, but nothing can be said about where.
            s.offset = None if e.get("offset") is None else int(e["offset"])
            if "partition" in e and int(e["partition"]) != s.partition:
                s.partition = int(e["partition"])  # the ack is authoritative; checked below
    return sends, problems


def analyze(events: list[dict]) -> Analysis:
    events = sorted(events, key=lambda e: e.get("index", 0))
    sends, problems = collect_sends(events)
    anomalies: dict[str, list[dict]] = {k: [] for k in ANOMALY_KINDS}

    # -- every observation of a value at a (partition, offset) -----------------------
    # observations[(p, o)][value] = [sources]; positions[value] = {(p, o)}
    observations: dict[tuple[int, int], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    positions: dict[str, set[tuple[int, int]]] = defaultdict(set)
    read_values: set[str] = set()

    def observe(p: int, o: int, v: str, source: str, is_read: bool) -> None:
        observations[(p, o)][v].append(source)
        positions[v].add((p, o))
        if is_read:
            read_values.add(v)

    for s in sends.values():
        if s.outcome == "ok" and s.offset is not None:
            observe(s.partition, s.offset, s.value, f"ack to {s.process}", False)

    polls_by_process: dict[str, list[dict]] = defaultdict(list)
    polled_at: dict[str, tuple[int, int, str]] = {}  # value -> first (p, o, process)
    poll_count = 0
    records_polled = 0
    for e in events:
        f = e.get("f")
        if f == "poll" and e.get("type") == "ok":
            poll_count += 1
            for p, o, v in e.get("records", []):
                records_polled += 1
                observe(int(p), int(o), v, f"poll by {e['process']}", True)
                polled_at.setdefault(v, (int(p), int(o), e["process"]))
            polls_by_process[e["process"]].append(e)
        elif f in CONSUMER_RESETS:
            polls_by_process[e["process"]].append(e)

    final: dict[int, dict] = {}
    for e in events:
        if e.get("f") != "final-read":
            continue
        p = int(e["partition"])
        entry = final.setdefault(p, {"values": {}, "offsets": set(), "complete": False, "high": None, "low": None})
        entry["complete"] = entry["complete"] or bool(e.get("complete"))
        entry["high"] = e.get("high", entry["high"])
        entry["low"] = e.get("low", entry["low"])
        for o, v in e.get("records", []):
            entry["values"].setdefault(v, int(o))
            entry["offsets"].add(int(o))
            observe(p, int(o), v, "final read", True)

    # -- inconsistent offsets and duplicates -----------------------------------------
    for (p, o), by_value in sorted(observations.items()):
        if len(by_value) > 1:
            anomalies["inconsistent-offset"].append(
                {"partition": p, "offset": o, "values": {v: sorted(set(src)) for v, src in sorted(by_value.items())}}
            )
    for v, where in sorted(positions.items()):
        if len(where) > 1:
            anomalies["duplicate"].append(
                {
                    "value": v,
                    "positions": [
                        {"partition": p, "offset": o, "sources": sorted(set(observations[(p, o)][v]))}
                        for p, o in sorted(where)
                    ],
                }
            )
        s = sends.get(v)
        if s is not None:
            wrong = sorted({p for p, _ in where if p != s.partition})
            if wrong:
                anomalies["inconsistent-offset"].append(
                    {"value": v, "sent_to": s.partition, "read_in": wrong, "note": "value read in another partition"}
                )

    # -- lost and unseen ---------------------------------------------------------------
    for p, entry in sorted(final.items()):
        if not entry["complete"]:
            problems.append(f"the final read of partition {p} did not reach the high watermark {entry['high']}")
    lost_values = set()
    for s in sorted(sends.values(), key=lambda s: s.invoke_index):
        if s.outcome != "ok":
            continue
        fin = final.get(s.partition)
        if fin is not None and fin["complete"]:
            if s.value not in fin["values"]:
                lost_values.add(s.value)
                anomalies["lost"].append(
                    {
                        "value": s.value,
                        "partition": s.partition,
                        "offset": s.offset,
                        "evidence": f"acknowledged to {s.process} at t={s.complete_time:.3f}",
                        "final_high_watermark": fin["high"],
                    }
                )
        elif s.value not in read_values:
            anomalies["unseen"].append(
                {
                    "value": s.value,
                    "partition": s.partition,
                    "offset": s.offset,
                    "why": "no final read" if fin is None else "final read incomplete",
                }
            )
    for v, (p, o, process) in sorted(polled_at.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        fin = final.get(p)
        if v in lost_values or fin is None or not fin["complete"]:
            continue
        if v not in fin["values"]:
            lost_values.add(v)
            anomalies["lost"].append(
                {
                    "value": v,
                    "partition": p,
                    "offset": o,
                    "evidence": f"polled by {process}",
                    "final_high_watermark": fin["high"],
                }
            )

    # -- failed sends that became visible -----------------------------------------------
    for s in sorted(sends.values(), key=lambda s: s.invoke_index):
        if s.outcome == "fail" and s.value in read_values:
            anomalies["failed-visible"].append(
                {
                    "value": s.value,
                    "partition": s.partition,
                    "error": s.error,
                    "read_at": [{"partition": p, "offset": o} for p, o in sorted(positions[s.value])],
                }
            )

    # -- per-producer order ---------------------------------------------------------------
    by_producer: dict[tuple[str, int], list[Send]] = defaultdict(list)
    for s in sends.values():
        if s.outcome == "ok" and s.offset is not None:
            by_producer[(s.process, s.partition)].append(s)
    for (process, p), ss in sorted(by_producer.items()):
        ss.sort(key=lambda s: s.invoke_index)
        for a, b in zip(ss, ss[1:]):
            if b.offset <= a.offset:
                anomalies["nonmonotonic-send"].append(
                    {
                        "process": process,
                        "partition": p,
                        "values": [a.value, b.value],
                        "offsets": [a.offset, b.offset],
                    }
                )

    # -- per-consumer order -------------------------------------------------------------
    known: dict[int, list[int]] = defaultdict(list)
    for p, o in observations:
        known[p].append(o)
    for p in known:
        known[p].sort()
    for process, evs in sorted(polls_by_process.items()):
        last: dict[int, int] = {}
        for e in evs:
            if e["f"] in CONSUMER_RESETS:
                last = {}
                continue
            for p, o, v in e.get("records", []):
                p, o = int(p), int(o)
                if p in last:
                    prev = last[p]
                    if o <= prev:
                        anomalies["nonmonotonic-poll"].append(
                            {"process": process, "partition": p, "offsets": [prev, o], "value": v, "time": e["time"]}
                        )
                    else:
                        ks = known[p]
                        lo = bisect.bisect_right(ks, prev)
                        hi = bisect.bisect_left(ks, o)
                        if hi > lo:
                            anomalies["poll-skip"].append(
                                {
                                    "process": process,
                                    "partition": p,
                                    "offsets": [prev, o],
                                    "skipped": ks[lo:hi][:20],
                                    "skipped_count": hi - lo,
                                    "time": e["time"],
                                }
                            )
                last[p] = o

    # -- faults and unavailability ----------------------------------------------------------
    faults = fault_windows(events, sends)
    led = [f for f in faults if f["kind"] in LEADER_KILL_KINDS and f.get("leader_of")]
    kills = [f["leader_unavailable_s"] for f in led if f.get("leader_unavailable_s") is not None and not f["censored"]]
    never = sum(1 for f in led if f.get("leader_unavailable_s") is None and not f["censored"])
    leader_kills = {
        "count": len(led),
        "censored": sum(1 for f in led if f["censored"]),
        "not_recovered": never,
        "p50_s": percentile(kills, 50),
        "p99_s": percentile(kills, 99),
        "max_s": max(kills) if kills else None,
    }

    outcomes = defaultdict(int)
    for s in sends.values():
        outcomes[s.outcome or "pending"] += 1
    meta = next((e for e in events if e.get("f") == "meta"), {})
    stats = {
        "nodes": meta.get("nodes"),
        "sends": len(sends),
        "ok": outcomes["ok"],
        "ok_without_offset": sum(1 for s in sends.values() if s.outcome == "ok" and s.offset is None),
        "fail": outcomes["fail"],
        "info": outcomes["info"],
        "pending": outcomes["pending"],
        "polls": poll_count,
        "records_polled": records_polled,
        "final_read": {
            p: {"records": len(e["offsets"]), "values": len(e["values"]), "high": e["high"], "complete": e["complete"]}
            for p, e in sorted(final.items())
        },
        "faults": len(faults),
    }
    if outcomes["pending"]:
        problems.append(f"{outcomes['pending']} sends have no completion (the workload must record one for every send)")
    marks = [(e["time"], "heal all") for e in events if e.get("f") == "heal-all"]
    marks += [(e["time"], e["text"]) for e in events if e.get("f") == "note" and e.get("text") in ("settling", "final read")]
    return Analysis(anomalies, problems, stats, faults, leader_kills, series(sends, faults, marks))


DUPLICATE_CAUSES = {
    "same-epoch": "every copy in a batch of the same producer id and epoch: the broker appended a retry "
    "that its idempotence check should have recognised",
    "epoch-bump": "the copies are in batches of one producer id with different epochs: librdkafka bumped "
    "the epoch (after a message timeout or OUT_OF_ORDER_SEQUENCE_NUMBER) and sent possibly persisted "
    "records again (confluentinc/librdkafka#4953)",
    "producer-restart": "the copies are in batches of different producer ids",
    "unknown": "a copy's batch was not found in the nodes' data directories",
}


def annotate_duplicates(analysis: Analysis, lookup) -> dict[str, int]:
    """Explains each duplicate from the batches that hold its copies. `lookup(partition,
    offset)` gives (producer id, producer epoch, base sequence) of the batch holding that
    offset in a node's log, or None. Adds `cause` and `batches` to each case; returns the
    count per cause (also kept in stats)."""
    counts: dict[str, int] = defaultdict(int)
    for case in analysis.anomalies.get("duplicate", []):
        batches = [lookup(p["partition"], p["offset"]) for p in case["positions"]]
        case["batches"] = [None if b is None else {"producer_id": b[0], "epoch": b[1], "base_sequence": b[2]} for b in batches]
        if any(b is None for b in batches):
            cause = "unknown"
        elif len({b[0] for b in batches}) > 1:
            cause = "producer-restart"
        elif len({b[1] for b in batches}) > 1:
            cause = "epoch-bump"
        else:
            cause = "same-epoch"
        case["cause"] = cause
        counts[cause] += 1
    analysis.stats["duplicate_causes"] = dict(counts)
    return dict(counts)


def fault_windows(events: list[dict], sends: dict[str, Send]) -> list[dict]:
    ok_by_partition: dict[int, list[tuple[float, float]]] = defaultdict(list)
    invoked_by_partition: dict[int, list[float]] = defaultdict(list)
    for s in sends.values():
        invoked_by_partition[s.partition].append(s.invoke_time)
        if s.outcome == "ok":
            ok_by_partition[s.partition].append((s.invoke_time, s.complete_time))
    for p in ok_by_partition:
        ok_by_partition[p].sort()
    for p in invoked_by_partition:
        invoked_by_partition[p].sort()
    # Earliest acknowledgement among sends invoked at or after t: suffix minima.
    suffix_min: dict[int, list[float]] = {}
    for p, oks in ok_by_partition.items():
        mins = [math.inf] * (len(oks) + 1)
        for i in range(len(oks) - 1, -1, -1):
            mins[i] = min(oks[i][1], mins[i + 1])
        suffix_min[p] = mins

    def recovery(p: int, t: float) -> float | None:
        """Seconds from t to the first ack of a send to p invoked at or after t; None
        when no send invoked after t was ever acknowledged."""
        inv = invoked_by_partition.get(p, [])
        if bisect.bisect_left(inv, t) == len(inv):
            return math.nan  # nothing was sent after t: unknown, not unavailable
        oks = ok_by_partition.get(p, [])
        i = bisect.bisect_left(oks, (t, -math.inf))
        if i == len(oks):
            return None
        return suffix_min[p][i] - t

    starts: dict = {}
    ends: dict = {}
    for e in events:
        if e.get("f") == "nemesis" and "id" in e:
            (starts if e["type"] == "start" else ends)[e["id"]] = e
    faults = []
    partitions = sorted(invoked_by_partition)
    ordered = sorted(starts.items(), key=lambda kv: kv[1]["time"])
    for i, (fid, e) in enumerate(ordered):
        t = e["time"]
        next_start = ordered[i + 1][1]["time"] if i + 1 < len(ordered) else math.inf
        per_partition = {}
        for p in partitions:
            r = recovery(p, t)
            if r is not None and math.isnan(r):
                continue
            per_partition[p] = r
        worst_p, worst, recovered = None, None, True
        for p, r in per_partition.items():
            if r is None:
                worst_p, worst, recovered = p, None, False
                break
            if worst is None or r > worst:
                worst_p, worst = p, r
        fault = {
            "id": fid,
            "kind": e.get("kind"),
            "nodes": e.get("nodes", []),
            "description": e.get("description", ""),
            "start": t,
            "end": ends[fid]["time"] if fid in ends else None,
            "unavailable_s": worst,
            "worst_partition": worst_p,
            "recovered": recovered,
            # Writes were not back when the next fault began: the window is the two
            # faults' together, so it is reported but not counted in percentiles.
            "censored": (not recovered and next_start < math.inf) or (worst is not None and t + worst > next_start),
            "leader_of": e.get("leader_of", []),
        }
        if fault["kind"] in LEADER_KILL_KINDS and fault["leader_of"]:
            led = [per_partition[p] for p in fault["leader_of"] if p in per_partition]
            fault["leader_unavailable_s"] = None if any(r is None for r in led) or not led else max(led)
        faults.append(fault)
    return faults


def series(sends: dict[str, Send], faults: list[dict], marks: list[tuple[float, str]] = ()) -> dict:
    """Per-second throughput, latency points and fault windows, for the plot."""
    ok_per_s: dict[int, int] = defaultdict(int)
    bad_per_s: dict[int, int] = defaultdict(int)
    latency = []
    end = 0.0
    for s in sends.values():
        if s.complete_time is None:
            continue
        end = max(end, s.complete_time)
        second = int(s.complete_time)
        if s.outcome == "ok":
            ok_per_s[second] += 1
            latency.append((s.complete_time, (s.complete_time - s.invoke_time) * 1000.0))
        else:
            bad_per_s[second] += 1
    latency.sort()
    windows = [
        (f["start"], f["end"] if f["end"] is not None else f["start"], f["kind"], f["id"]) for f in faults
    ]
    return {
        "ok_per_s": dict(ok_per_s), "bad_per_s": dict(bad_per_s), "latency_ms": latency, "faults": windows,
        "marks": sorted(marks), "end": max([end] + [t for t, _ in marks]),
    }


def _fmt_s(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f}"


def report(a: Analysis, title: str = "") -> str:
    """The summary table, then the first cases of each anomaly."""
    lines = []
    if title:
        lines += [title, "=" * len(title)]
    st = a.stats
    lines.append(
        f"sends {st['sends']}: ok {st['ok']}, fail {st['fail']}, info (unknown) {st['info']}, pending {st['pending']}; "
        f"polls {st['polls']} ({st['records_polled']} records)"
    )
    if st.get("ok_without_offset"):
        lines.append(f"acknowledged without an offset (the client did not say where): {st['ok_without_offset']}")
    total_final = sum(v["records"] for v in st["final_read"].values())
    distinct = sum(v.get("values", v["records"]) for v in st["final_read"].values())
    lines.append(f"final read: {total_final} records ({distinct} distinct values) in {len(st['final_read'])} partitions")
    lines.append("")
    lines.append(f"{'anomaly':<22}{'count':>8}")
    lines.append(f"{'-' * 22}{'-' * 8}")
    for k, n in a.counts().items():
        lines.append(f"{k:<22}{n:>8}")
    for cause, n in sorted(st.get("duplicate_causes", {}).items()):
        lines.append(f"  duplicates, {cause}: {n}: {DUPLICATE_CAUSES[cause]}")
    lines.append("")
    if a.faults:
        lines.append(f"{'fault':>5} {'kind':<18}{'nodes':<10}{'start s':>9}{'end s':>9}{'writes down s':>15}{'worst p':>8}  detail")
        for f in a.faults:
            end = "-" if f["end"] is None else f"{f['end']:.1f}"
            if not f["recovered"]:
                down = "never"
            elif f["unavailable_s"] is None:
                down = "-"
            else:
                down = _fmt_s(f["unavailable_s"])
            down += "*" if f["censored"] else ""
            lines.append(
                f"{f['id']:>5} {f['kind']:<18}{','.join(map(str, f['nodes'])):<10}{f['start']:>9.1f}{end:>9}"
                f"{down:>15}{'' if f['worst_partition'] is None else f['worst_partition']:>8}  {f['description']}"
            )
        censored = sum(1 for f in a.faults if f["censored"])
        if censored:
            lines.append(f"* {censored} fault(s): the next fault began before writes were back; not in the percentiles")
        by_kind: dict[str, list[float]] = defaultdict(list)
        for f in a.faults:
            if f["unavailable_s"] is not None and not f["censored"]:
                by_kind[f["kind"]].append(f["unavailable_s"])
        lines.append("")
        lines.append(f"{'unavailability by kind':<24}{'n':>4}{'p50 s':>8}{'p99 s':>8}{'max s':>8}")
        for kind, xs in sorted(by_kind.items()):
            lines.append(f"{kind:<24}{len(xs):>4}{_fmt_s(percentile(xs, 50)):>8}{_fmt_s(percentile(xs, 99)):>8}{_fmt_s(max(xs)):>8}")
        lk = a.leader_kills
        if lk["count"]:
            if st.get("nodes") == 1:
                goal = "not applicable with one node: it is down for the whole fault, nothing fails over"
            else:
                goal = "met" if lk["p99_s"] is not None and lk["p99_s"] < 3.0 and not lk["not_recovered"] else "NOT met"
            lines.append(
                f"leader kills: {lk['count']}, writes to the led partitions back after p50 {_fmt_s(lk['p50_s'])} s, "
                f"p99 {_fmt_s(lk['p99_s'])} s, max {_fmt_s(lk['max_s'])} s, never {lk['not_recovered']}, "
                f"overlapped by the next fault {lk['censored']} (goal p99 < 3 s: {goal})"
            )
        lines.append("")
    for p in a.problems:
        lines.append(f"problem: {p}")
    for k in ANOMALY_KINDS:
        cases = a.anomalies.get(k, [])
        if cases:
            lines.append(f"{k}: {len(cases)} case(s); first {min(len(cases), CASES_SHOWN)}:")
            for c in cases[:CASES_SHOWN]:
                lines.append(f"  {c}")
    lines.append("")
    if a.valid and any(a.anomalies.values()):
        lines.append(f"VALID, tolerating duplicates of cause {', '.join(sorted(a.tolerated))} (counted above)")
    else:
        lines.append("VALID: no anomalies" if a.valid else "INVALID: see the anomalies and problems above")
    return "\n".join(lines) + "\n"
