"""The recorded history: one JSON object per line (history.jsonl), written as it happens.

Every event has `index` (order of recording), `time` (seconds since the run's start,
monotonic clock), `process` (who did it: p1, p1.2, c3, final, nemesis, harness) and `f`
(what). The first line is `{"f": "meta", ...}` with the run's configuration and seed.

Events (fields beyond the common ones):

    send   type=invoke  value, partition          a producer hands a record to its client
    send   type=ok      value, partition, offset  acknowledged (acks=all), at that offset
    send   type=fail    value, partition, error   certainly not written
    send   type=info    value, partition, error   outcome unknown (timeout, fatal, purge)
    poll   type=ok      records=[[partition, offset, value], ...]   what one poll returned
    assign type=ok      partitions=[...]          a consumer's new assignment (whole)
    revoke type=ok      partitions=[...]          a consumer lost these partitions
    commit type=ok|fail offsets={partition: next offset}, error
    final-read type=ok  partition, records=[[offset, value], ...], low, high, complete
    nemesis type=start|end  id, kind, nodes, detail...   a fault begins / is healed
    producer-restart, consumer-error, note       diagnostics

Completions of a send carry the `value` of their invocation: values are unique, so a
value names its send.
"""

from __future__ import annotations

import json
import threading
import time
from typing import IO, Iterable


class History:
    """Thread-safe, append-only JSON-lines recorder. Events are also kept in memory."""

    def __init__(self, path: str | None, t0: float | None = None, keep: bool = True):
        self.t0 = time.monotonic() if t0 is None else t0
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(path, "w", buffering=1) if path else None
        self._index = 0
        self.events: list[dict] = [] if keep else None  # type: ignore[assignment]

    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, process: str, f: str, type: str = "ok", **fields) -> dict:
        with self._lock:
            event = {"index": self._index, "time": round(self.now(), 6), "process": process, "f": f, "type": type}
            event.update(fields)
            self._index += 1
            if self._file:
                self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
            if self.events is not None:
                self.events.append(event)
            return event

    def close(self) -> None:
        with self._lock:
            if self._file:
                self._file.close()
                self._file = None


def load(path: str) -> list[dict]:
    """Reads a history.jsonl (a torn last line, from a killed harness, is skipped)."""
    events = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def dump(events: Iterable[dict], path: str) -> None:
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
