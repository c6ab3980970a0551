"""Network partitions as values: which directed links between nodes are cut.

A partition is a set of cut *directed* edges (src, dst): packets from src never reach
dst. The namespace layer (netns.py) turns a cut edge into one iptables DROP rule in
dst's namespace (INPUT, source = src's address), so every kind of fault below is the
same mechanism and healing is one flush. Pure: nothing here touches the system.

TCP needs both directions: a connection between a and b works only when neither
(a, b) nor (b, a) is cut. A one-way cut therefore breaks TCP both ways (no SYN-ACK or
no ACK gets through), but datagrams still flow the other way, which is what a
one-way fault is about; verification checks both views (see netns.verify).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

Edge = tuple[int, int]


@dataclass(frozen=True)
class Partition:
    """A named set of cut directed edges over the nodes `nodes`."""

    kind: str
    nodes: tuple[int, ...]
    cut: frozenset[Edge]
    description: str = ""
    # Groups as the nemesis chose them, for the history and the report.
    groups: tuple[tuple[int, ...], ...] = field(default=())

    def delivers(self, src: int, dst: int) -> bool:
        """Whether a packet from src reaches dst."""
        return src == dst or (src, dst) not in self.cut

    def tcp_connects(self, a: int, b: int) -> bool:
        """Whether a TCP connection between a and b can be established and used."""
        return self.delivers(a, b) and self.delivers(b, a)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "cut": sorted([list(e) for e in self.cut]),
            "groups": [list(g) for g in self.groups],
            "description": self.description,
        }


def healed(nodes: list[int] | tuple[int, ...]) -> Partition:
    """Every link up."""
    return Partition("heal", tuple(sorted(nodes)), frozenset(), "all links up")


def split(nodes, groups: list[list[int]], kind: str = "split") -> Partition:
    """Nodes in different groups cannot talk, in either direction."""
    _check_cover(nodes, groups)
    where = {n: i for i, g in enumerate(groups) for n in g}
    cut = frozenset((a, b) for a in nodes for b in nodes if a != b and where[a] != where[b])
    text = " | ".join(",".join(map(str, sorted(g))) for g in groups)
    return Partition(kind, tuple(sorted(nodes)), cut, text, tuple(tuple(sorted(g)) for g in groups))


def majority_minority(nodes, minority: list[int]) -> Partition:
    """A minority (fewer than half) cut off from the majority, both ways."""
    minority = sorted(minority)
    majority = sorted(n for n in nodes if n not in minority)
    if not minority or len(minority) * 2 >= len(nodes):
        raise ValueError(f"minority {minority} of {sorted(nodes)} is not a minority")
    return split(nodes, [minority, majority], kind="majority-minority")


def bridge(nodes, left: list[int], middle: int, right: list[int]) -> Partition:
    """Two sides that cannot talk, and one node that talks to both (Jepsen's bridge)."""
    _check_cover(nodes, [left, [middle], right])
    cut = frozenset((a, b) for a in left for b in right) | frozenset((b, a) for a in left for b in right)
    text = f"{','.join(map(str, sorted(left)))} <- {middle} -> {','.join(map(str, sorted(right)))}"
    return Partition(
        "bridge", tuple(sorted(nodes)), cut, text, (tuple(sorted(left)), (middle,), tuple(sorted(right)))
    )


def one_way(nodes, sources: list[int], destinations: list[int]) -> Partition:
    """Packets from `sources` never reach `destinations`; the other direction works."""
    cut = frozenset((s, d) for s in sources for d in destinations if s != d)
    if not cut:
        raise ValueError("a one-way partition needs at least one cut edge")
    text = f"{','.join(map(str, sorted(sources)))} -/-> {','.join(map(str, sorted(destinations)))}"
    return Partition(
        "one-way", tuple(sorted(nodes)), cut, text, (tuple(sorted(sources)), tuple(sorted(destinations)))
    )


def _check_cover(nodes, groups) -> None:
    flat = [n for g in groups for n in g]
    if sorted(flat) != sorted(nodes) or len(set(flat)) != len(flat):
        raise ValueError(f"groups {groups} do not cover nodes {sorted(nodes)} exactly once")


def random_partition(kind: str, nodes: list[int], rng: random.Random, first: int | None = None) -> Partition:
    """A partition of `kind` with the choices drawn from `rng`. `first`, when given, is
    put where it hurts: in the minority, on one side of a bridge (cut from the other
    side), or as the one node of a one-way cut, so that the nemesis can aim at a
    partition leader. The draws from `rng` do not depend on `first`, so a seed draws the
    same numbers whatever the leaders were."""
    nodes = sorted(nodes)
    if len(nodes) < 3:
        raise ValueError("partitions need at least 3 nodes")
    order = nodes[:]
    rng.shuffle(order)
    flip = rng.random() < 0.5
    size = rng.randint(1, (len(nodes) - 1) // 2)
    if first is not None and first in order:
        order.remove(first)
        order.insert(0, first)
    if kind == "majority-minority":
        return majority_minority(nodes, order[:size])
    if kind == "bridge":
        # Sides as equal as possible; the aimed-at node sits on one side, cut from the other.
        middle = order[-1]
        rest = order[:-1]
        half = len(rest) // 2
        return bridge(nodes, rest[:half], middle, rest[half:])
    if kind == "one-way":
        # One node's packets (or the packets to it) are dropped by everybody else.
        x = order[0]
        others = [n for n in nodes if n != x]
        return one_way(nodes, [x], others) if flip else one_way(nodes, others, [x])
    raise ValueError(f"unknown partition kind {kind}")


PARTITION_KINDS = ("majority-minority", "bridge", "one-way")
