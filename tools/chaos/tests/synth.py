"""Builds synthetic histories, event by event, in the format of keelchaos/history.py."""

from __future__ import annotations


class Synth:
    def __init__(self):
        self.events: list[dict] = []
        self.t = 0.0

    def _add(self, process: str, f: str, type: str = "ok", dt: float = 0.01, **fields) -> dict:
        self.t += dt
        e = {"index": len(self.events), "time": round(self.t, 6), "process": process, "f": f, "type": type}
        e.update(fields)
        self.events.append(e)
        return e

    # -- producers --------------------------------------------------------------------
    def invoke(self, process: str, value: str, partition: int) -> None:
        self._add(process, "send", "invoke", value=value, partition=partition)

    def ok(self, process: str, value: str, partition: int, offset: int, dt: float = 0.01) -> None:
        self._add(process, "send", "ok", dt=dt, value=value, partition=partition, offset=offset)

    def fail(self, process: str, value: str, partition: int, error: str = "_PURGE_QUEUE") -> None:
        self._add(process, "send", "fail", value=value, partition=partition, error=error)

    def info(self, process: str, value: str, partition: int, error: str = "_MSG_TIMED_OUT") -> None:
        self._add(process, "send", "info", value=value, partition=partition, error=error)

    def send(self, process: str, value: str, partition: int, offset: int, dt: float = 0.01) -> None:
        """An invocation acknowledged at once."""
        self.invoke(process, value, partition)
        self.ok(process, value, partition, offset, dt=dt)

    # -- consumers ----------------------------------------------------------------------
    def assign(self, process: str, partitions: list[int]) -> None:
        self._add(process, "assign", partitions=partitions)

    def revoke(self, process: str, partitions: list[int]) -> None:
        self._add(process, "revoke", partitions=partitions)

    def poll(self, process: str, records: list[tuple[int, int, str]]) -> None:
        self._add(process, "poll", records=[list(r) for r in records])

    # -- the end ---------------------------------------------------------------------------
    def final(self, partition: int, records: list[tuple[int, str]], high: int | None = None, complete: bool = True) -> None:
        if high is None:
            high = (max(o for o, _ in records) + 1) if records else 0
        self._add("final", "final-read", partition=partition, records=[list(r) for r in records], low=0, high=high,
                  complete=complete)

    # -- nemesis -----------------------------------------------------------------------------
    def fault(self, fid: int, kind: str, nodes: list[int], leader_of: list[int] | None = None, at: float | None = None) -> None:
        if at is not None:
            self.t = at - 0.01
        self._add("nemesis", "nemesis", "start", id=fid, kind=kind, nodes=nodes, leader_of=leader_of or [])

    def heal(self, fid: int, kind: str, at: float | None = None) -> None:
        if at is not None:
            self.t = at - 0.01
        self._add("nemesis", "nemesis", "end", id=fid, kind=kind)

    def at(self, t: float) -> "Synth":
        self.t = t
        return self


def clean_history(partitions: int = 3, per_partition: int = 5) -> Synth:
    """Two producers, one consumer reading everything in order, a full final read."""
    s = Synth()
    s.assign("c1", list(range(partitions)))
    logs: dict[int, list[tuple[int, str]]] = {p: [] for p in range(partitions)}
    n = 0
    for i in range(per_partition):
        for p in range(partitions):
            proc = f"p{1 + n % 2}"
            v = f"{proc}-{n}"
            s.send(proc, v, p, len(logs[p]))
            logs[p].append((len(logs[p]), v))
            n += 1
    for p in range(partitions):
        s.poll("c1", [(p, o, v) for o, v in logs[p]])
    for p in range(partitions):
        s.final(p, logs[p])
    return s
