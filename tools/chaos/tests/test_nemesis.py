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
