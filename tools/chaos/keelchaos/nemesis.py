"""The nemesis: a seeded schedule of faults, and the thread that carries it out.

`schedule(...)` is pure: the same seed and settings give the same list of faults (kind,
start, duration, which node or which partition's leader to aim at, burst sizes). Faults
do not overlap: each one is healed before the next begins, a few seconds apart. What
depends on the running cluster is resolved when a fault starts and is recorded in the
history: the current leader of the aimed-at partition, the partitions it led, the
exact files cut by `lose-unsynced`. Choices made at that moment (the shape of a
partition, how much of a torn tail survives) draw from a generator seeded by
(seed, fault id), so they too repeat for the same leaders.

Kinds:
  kill               SIGKILL a node, restart it after `duration`
  pause              SIGSTOP a node, SIGCONT after `duration`
  lose-unsynced      SIGKILL, cut its files back to what was fsynced (durability.py),
                     restart after `duration`
  majority-minority  cut a minority off from the majority (aimed: the leader in the
                     minority), both directions
  bridge             two sides that cannot talk, one node talks to both
  one-way            one node's packets are dropped by the others, or the others' by it
  transfer-burst     2-4 leadership transfers in quick succession (Cluster.transfer_leadership)

`Nemesis.heal_all` ends every run: SIGCONT, network healed, every node started.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass

from . import partitions as parts
from .history import History

NODE_KINDS = ("kill", "pause", "lose-unsynced", "transfer-burst")
ALL_KINDS = NODE_KINDS + parts.PARTITION_KINDS
DURATION_RANGE_S = {
    "kill": (1.0, 4.0),
    "pause": (1.0, 5.0),
    "lose-unsynced": (1.0, 4.0),
    "majority-minority": (2.0, 8.0),
    "bridge": (2.0, 8.0),
    "one-way": (2.0, 6.0),
    "transfer-burst": (0.0, 0.0),
}


@dataclass(frozen=True)
class Fault:
    id: int
    at: float  # seconds after the nemesis starts
    kind: str
    duration: float
    aim: str  # "leader" (of `partition`) or "node"
    node: int  # the node when aim is "node", and the fallback when no leader is known
    partition: int
    count: int = 1  # transfers in a burst

    def to_json(self) -> dict:
        return asdict(self)


def kinds_for(nodes: int, netns: bool, requested: list[str] | None = None) -> list[str]:
    """The kinds that make sense here: partitions need namespaces and three nodes."""
    kinds = list(requested or ALL_KINDS)
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(ALL_KINDS)}")
    if nodes < 3 or not netns:
        kinds = [k for k in kinds if k not in parts.PARTITION_KINDS]
    if not kinds:
        raise ValueError("no fault kind is possible with these settings")
    return kinds


def schedule(
    seed: int, duration_s: float, nodes: int, partitions: int, kinds: list[str], interval_s: float = 4.0
) -> list[Fault]:
    """Faults from `interval_s/2` on, each followed by a gap of 0.5-1.5 x `interval_s`,
    all over (healed) by `duration_s`."""
    rng = random.Random(f"keelchaos-schedule/{seed}")
    faults = []
    t = rng.uniform(0.5, 1.0) * interval_s
    while True:
        kind = rng.choice(kinds)
        lo, hi = DURATION_RANGE_S[kind]
        duration = round(rng.uniform(lo, hi), 3)
        aim = "leader" if rng.random() < 0.6 else "node"
        node = rng.randint(1, nodes)
        partition = rng.randrange(partitions)
        count = rng.randint(2, 4)
        # A transfer burst takes about 2 s per graceful restart until Keel has a transfer API.
        span = duration if kind != "transfer-burst" else count * 2.0
        if t + span > duration_s:
            break
        faults.append(Fault(len(faults) + 1, round(t, 3), kind, duration, aim, node, partition, count))
        t += span + rng.uniform(0.5, 1.5) * interval_s
    return faults


class Nemesis(threading.Thread):
    """Carries out a schedule against a cluster (nodes.Cluster) and a network
    (netns.Network or None), recording `nemesis` events."""

    def __init__(self, faults, cluster, net, history: History, topic: str, seed: int, leaders, log=print,
                 checkpoint_only_cuts: bool = False):
        super().__init__(name="nemesis", daemon=True)
        self.faults = faults
        self.cluster = cluster
        self.net = net
        self.history = history
        self.topic = topic
        self.seed = seed
        self.leaders = leaders  # () -> {partition: node}
        self.log = log
        self.checkpoint_only_cuts = checkpoint_only_cuts
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.problems: list[str] = []

    def run(self) -> None:
        t0 = time.monotonic()
        try:
            for f in self.faults:
                if self.stop_event.wait(max(0.0, t0 + f.at - time.monotonic())):
                    return
                self.check_nodes()
                self.execute(f)
        except BaseException as e:
            self.error = e
            self.history.record("nemesis", "note", "info", text=f"nemesis failed: {e!r}")

    def check_nodes(self) -> None:
        for n in self.cluster.nodes.values():
            died = n.died_unexpectedly()
            if died:
                self.problems.append(f"node {n.id} {died}")
                self.history.record("nemesis", "node-crash", "info", node=n.id, text=died)
                n.start()
                n.wait_listening(30)

    def resolve(self, f: Fault) -> tuple[int, list[int]]:
        """The target node and the partitions it leads now."""
        leaders = self.leaders()
        node = f.node
        if f.aim == "leader" and f.partition in leaders:
            node = leaders[f.partition]
        return node, sorted(p for p, n in leaders.items() if n == node)

    def sleep(self, seconds: float) -> None:
        # Faults in progress are always healed, so an early stop only shortens the wait.
        self.stop_event.wait(seconds)

    def execute(self, f: Fault) -> None:
        rng = random.Random(f"keelchaos-fault/{self.seed}/{f.id}")
        ids = self.cluster.ids
        node_id, led = self.resolve(f)
        node = self.cluster.nodes[node_id]
        start = {"id": f.id, "kind": f.kind, "planned_duration": f.duration, "aim": f.aim}
        if f.kind in ("kill", "pause", "lose-unsynced"):
            self.history.record("nemesis", "nemesis", "start", nodes=[node_id], leader_of=led,
                                description=f"node {node_id}" + (f", leader of {led}" if led else ""), **start)
            if f.kind == "pause":
                node.pause()
                self.sleep(f.duration)
                node.resume()
            else:
                node.kill()
                extra = {}
                if f.kind == "lose-unsynced":
                    cuts = node.lose_unsynced(rng, checkpoint_only=self.checkpoint_only_cuts)
                    extra = {"cuts": [c.to_json() for c in cuts],
                             "bytes_cut": sum(c.size - c.new_size for c in cuts)}
                    self.history.record("nemesis", "nemesis-cuts", "info", id=f.id, node=node_id, **extra)
                self.sleep(f.duration)
                node.start()
                if not node.wait_listening(30):
                    self.problems.append(f"node {node_id} did not come back after {f.kind} (fault {f.id})")
            self.history.record("nemesis", "nemesis", "end", id=f.id, kind=f.kind, nodes=[node_id])
        elif f.kind in parts.PARTITION_KINDS:
            first = node_id if f.aim == "leader" else None
            p = parts.random_partition(f.kind, ids, rng, first=first)
            self.history.record("nemesis", "nemesis", "start", nodes=sorted({n for e in p.cut for n in e}),
                                leader_of=led if first else [], description=p.description,
                                partition_detail=p.to_json(), **start)
            self.net.apply(p)
            self.sleep(f.duration)
            self.net.heal()
            self.history.record("nemesis", "nemesis", "end", id=f.id, kind=f.kind)
        elif f.kind == "transfer-burst":
            self.history.record("nemesis", "nemesis", "start", nodes=[node_id], leader_of=led,
                                description=f"{f.count} transfers", **start)
            for i in range(f.count):
                if i:
                    leaders = self.leaders()
                    node_id = leaders.get(rng.randrange(self.cluster.cfg.partitions), rng.choice(ids))
                how = self.cluster.transfer_leadership(node_id)
                self.history.record("nemesis", "transfer", "info", id=f.id, node=node_id, how=how)
                self.sleep(0.3)
            self.history.record("nemesis", "nemesis", "end", id=f.id, kind=f.kind)
        else:
            raise ValueError(f"unknown fault kind {f.kind}")

    def heal_all(self) -> None:
        """Everything back: network healed, paused nodes resumed, dead nodes started."""
        self.stop_event.set()
        if self.is_alive():
            self.join(60)
        if self.net:
            self.net.heal()
        for n in self.cluster.nodes.values():
            if n.paused:
                n.resume()
        self.check_nodes()
        for n in self.cluster.nodes.values():
            if not n.running:
                n.start()
        for n in self.cluster.nodes.values():
            if not n.wait_listening(30):
                self.problems.append(f"node {n.id} did not start at the final heal")
        self.history.record("nemesis", "heal-all", "info")
