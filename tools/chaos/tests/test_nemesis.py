"""The nemesis schedule is a pure function of its seed and settings, and partitions have
the shapes their names promise."""

import random
import unittest

from keelchaos import nemesis
from keelchaos import partitions as parts


class Schedule(unittest.TestCase):
    def test_same_seed_same_schedule(self):
        kinds = nemesis.kinds_for(5, True)
        a = nemesis.schedule(42, 600, 5, 6, kinds)
        b = nemesis.schedule(42, 600, 5, 6, kinds)
        self.assertEqual(a, b)
        self.assertNotEqual(a, nemesis.schedule(43, 600, 5, 6, kinds))

    def test_faults_do_not_overlap_fit_the_duration_and_come_every_few_seconds(self):
        kinds = nemesis.kinds_for(3, True)
        for seed in range(20):
            faults = nemesis.schedule(seed, 300, 3, 6, kinds, interval_s=4)
            self.assertGreater(len(faults), 20)
            end = 0.0
            for f in faults:
                span = f.duration if f.kind != "transfer-burst" else f.count * 2.0
                self.assertGreaterEqual(f.at, end + 2.0 - 1e-9)  # gap >= interval / 2
                self.assertLessEqual(f.at - end, 6.0 + 8.0 + 1e-9)  # and never long
                end = f.at + span
                self.assertLessEqual(end, 300)
                self.assertIn(f.kind, kinds)
                self.assertTrue(1 <= f.node <= 3)
                self.assertTrue(0 <= f.partition < 6)

    def test_every_kind_appears_in_a_long_schedule(self):
        kinds = nemesis.kinds_for(5, True)
        seen = {f.kind for f in nemesis.schedule(7, 1800, 5, 6, kinds)}
        self.assertEqual(seen, set(nemesis.ALL_KINDS))

    def test_partitions_need_namespaces_and_three_nodes(self):
        self.assertEqual(set(nemesis.kinds_for(1, True)), set(nemesis.NODE_KINDS))
        self.assertEqual(set(nemesis.kinds_for(3, False)), set(nemesis.NODE_KINDS))
        self.assertEqual(set(nemesis.kinds_for(3, True)), set(nemesis.ALL_KINDS))
        with self.assertRaises(ValueError):
            nemesis.kinds_for(1, True, ["bridge"])
        with self.assertRaises(ValueError):
            nemesis.kinds_for(3, True, ["meteor"])


class Partitions(unittest.TestCase):
    def test_majority_minority_cuts_both_ways_between_the_sides(self):
        p = parts.majority_minority([1, 2, 3, 4, 5], [2, 4])
        for a in (2, 4):
            for b in (1, 3, 5):
                self.assertFalse(p.delivers(a, b))
                self.assertFalse(p.delivers(b, a))
        self.assertTrue(p.delivers(2, 4))
        self.assertTrue(p.tcp_connects(1, 5))
        self.assertEqual(len(p.cut), 12)
        with self.assertRaises(ValueError):
            parts.majority_minority([1, 2, 3], [1, 2])

    def test_bridge_middle_sees_both_sides(self):
        p = parts.bridge([1, 2, 3, 4, 5], [1, 2], 3, [4, 5])
        self.assertTrue(all(p.tcp_connects(3, n) for n in (1, 2, 4, 5)))
        self.assertFalse(p.tcp_connects(1, 4))
        self.assertTrue(p.tcp_connects(1, 2))
        self.assertEqual(len(p.cut), 8)

    def test_one_way_drops_one_direction_only(self):
        p = parts.one_way([1, 2, 3], [1], [2, 3])
        self.assertFalse(p.delivers(1, 2))
        self.assertTrue(p.delivers(2, 1))
        self.assertFalse(p.tcp_connects(1, 2))  # TCP needs both directions
        self.assertTrue(p.tcp_connects(2, 3))

    def test_random_partition_puts_the_aimed_node_where_it_hurts(self):
        for seed in range(30):
            for kind in parts.PARTITION_KINDS:
                p = parts.random_partition(kind, [1, 2, 3, 4, 5], random.Random(seed), first=4)
                if kind == "majority-minority":
                    self.assertIn(4, p.groups[0])
                    self.assertLess(len(p.groups[0]), 3)
                elif kind == "bridge":
                    self.assertNotEqual(p.groups[1], (4,))
                else:
                    self.assertTrue(any(4 in g and len(g) == 1 for g in p.groups))
                self.assertTrue(p.cut)

    def test_random_partition_draws_do_not_depend_on_the_aim(self):
        r1, r2 = random.Random(5), random.Random(5)
        parts.random_partition("bridge", [1, 2, 3], r1, first=1)
        parts.random_partition("bridge", [1, 2, 3], r2, first=None)
        self.assertEqual(r1.random(), r2.random())


if __name__ == "__main__":
    unittest.main()


class FakeNode:
    def __init__(self, node_id, calls):
        self.id = node_id
        self.calls = calls
        self.running = True
        self.paused = False

    def kill(self):
        self.calls.append(("kill", self.id))
        self.running = False

    def start(self):
        self.calls.append(("start", self.id))
        self.running = True

    def wait_listening(self, timeout_s=30):
        return self.running

    def pause(self):
        self.calls.append(("pause", self.id))
        self.paused = True

    def resume(self):
        self.calls.append(("resume", self.id))
        self.paused = False

    def lose_unsynced(self, rng, checkpoint_only=False):
        assert not self.running, "cuts need a dead node"
        self.calls.append(("cut", self.id))
        return []

    def died_unexpectedly(self):
        return None


class FakeCluster:
    def __init__(self, n):
        self.calls = []
        self.nodes = {i: FakeNode(i, self.calls) for i in range(1, n + 1)}
        self.ids = list(self.nodes)
        self.cfg = type("Cfg", (), {"partitions": 6})()

    def transfer_leadership(self, node_id):
        self.calls.append(("transfer", node_id))
        return "graceful restart"


class FakeNet:
    def __init__(self, calls):
        self.calls = calls
        self.current = None

    def apply(self, p):
        self.calls.append(("apply", p.kind, p.cut))
        self.current = p

    def heal(self):
        self.calls.append(("heal",))
        self.current = None


class Executor(unittest.TestCase):
    """The nemesis thread does what each fault says, aims at leaders, records a start
    and an end for every fault, and heal_all leaves everything up."""

    def run_faults(self, faults, leaders=None):
        from keelchaos.history import History

        cluster = FakeCluster(3)
        net = FakeNet(cluster.calls)
        history = History(None)
        nem = nemesis.Nemesis(faults, cluster, net, history, "chaos", 1, lambda: dict(leaders or {}), log=lambda m: None)
        nem.start()
        nem.join(10)
        nem.heal_all()
        return cluster, history.events, nem

    def test_every_kind_is_carried_out_and_healed(self):
        faults = [
            nemesis.Fault(i + 1, 0.01 * i, kind, 0.02, "leader", 3, 0, 2)
            for i, kind in enumerate(nemesis.ALL_KINDS)
        ]
        cluster, events, nem = self.run_faults(faults, leaders={0: 2, 1: 2, 2: 1})
        self.assertIsNone(nem.error)
        calls = cluster.calls
        self.assertIn(("kill", 2), calls)  # aimed at partition 0's leader, node 2
        self.assertIn(("pause", 2), calls)
        self.assertIn(("resume", 2), calls)
        cut = calls.index(("cut", 2))  # lose-unsynced: kill, cut, then start
        self.assertEqual(calls[cut - 1], ("kill", 2))
        self.assertEqual(calls[cut + 1], ("start", 2))
        self.assertEqual([c[1] for c in calls if c[0] == "apply"], list(parts.PARTITION_KINDS))
        self.assertEqual(sum(1 for c in calls if c[0] == "transfer"), 2)
        starts = [e for e in events if e["f"] == "nemesis" and e["type"] == "start"]
        ends = [e for e in events if e["f"] == "nemesis" and e["type"] == "end"]
        self.assertEqual([e["id"] for e in starts], [f.id for f in faults])
        self.assertEqual([e["id"] for e in ends], [f.id for f in faults])
        kill = next(e for e in starts if e["kind"] == "kill")
        self.assertEqual(kill["leader_of"], [0, 1])
        self.assertTrue(all(n.running and not n.paused for n in cluster.nodes.values()))
        self.assertEqual(events[-1]["f"], "heal-all")

    def test_without_known_leaders_the_fault_falls_back_to_its_node(self):
        cluster, events, _ = self.run_faults([nemesis.Fault(1, 0.0, "kill", 0.01, "leader", 3, 0)])
        self.assertIn(("kill", 3), cluster.calls)

    def test_an_early_stop_still_heals(self):
        faults = [nemesis.Fault(1, 0.0, "pause", 30.0, "node", 1, 0)]
        from keelchaos.history import History

        cluster = FakeCluster(3)
        nem = nemesis.Nemesis(faults, cluster, FakeNet(cluster.calls), History(None), "chaos", 1, dict, log=lambda m: None)
        nem.start()
        import time

        time.sleep(0.2)
        t = time.monotonic()
        nem.heal_all()
        self.assertLess(time.monotonic() - t, 5)
        self.assertFalse(cluster.nodes[1].paused)
