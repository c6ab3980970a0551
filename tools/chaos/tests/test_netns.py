"""Network namespaces do what a partition says, checked with real packets (root only):
UDP from a to b arrives iff (a, b) is not cut, a TCP echo works iff neither direction
is cut, the root namespace reaches every node; set-up and tear-down leave nothing
behind and clean up after a crashed run. Uses instance 9 (10.77.9.0/24)."""

import random
import subprocess
import unittest

from keelchaos import netns
from keelchaos import partitions as parts

WHY_NOT = netns.available()


def leftovers(cfg: netns.NetConfig) -> list[str]:
    return [n for n in netns.list_namespaces() if n.startswith(cfg.ns_prefix)] + [
        link for link in netns.list_root_links() if link.startswith(cfg.link_prefix)
    ]


@unittest.skipIf(WHY_NOT, f"needs network namespaces: {WHY_NOT}")
class Namespaces(unittest.TestCase):
    cfg = netns.NetConfig(instance=9)

    def setUp(self):
        self.net = None

    def tearDown(self):
        if self.net:
            self.net.teardown()
        self.assertEqual(leftovers(self.cfg), [])

    def test_three_nodes_every_partition_kind(self):
        self.net = net = netns.Network([1, 2, 3], self.cfg, log=lambda m: None)
        net.setup(wait_s=120)
        self.assertEqual(net.verify(), [])
        rng = random.Random(3)
        for kind in parts.PARTITION_KINDS:
            p = parts.random_partition(kind, [1, 2, 3], rng)
            net.apply(p)
            self.assertEqual(net.verify(), [], f"{kind}: {p.description}")
            self.assertEqual(sum(len(r) for r in net.rules().values()), len(p.cut))
        net.heal()
        self.assertEqual(net.verify(), [])
        self.assertEqual(sum(len(r) for r in net.rules().values()), 0)

    def test_verification_can_fail(self):
        self.net = net = netns.Network([1, 2, 3], self.cfg, log=lambda m: None)
        net.setup(wait_s=120)
        net.apply(parts.one_way([1, 2, 3], [1], [2]))
        bad = net.verify(parts.healed([1, 2, 3]))
        self.assertIn("udp 1->2: lost, expected arrival", bad)
        self.assertIn("tcp 1->2: failed, expected connection", bad)
        self.assertIn("tcp 2->1: failed, expected connection", bad)
        self.assertEqual(len(bad), 3)

    def test_five_nodes_bridge_and_minority(self):
        self.net = net = netns.Network([1, 2, 3, 4, 5], self.cfg, log=lambda m: None)
        net.setup(wait_s=120)
        for p in (
            parts.bridge([1, 2, 3, 4, 5], [1, 2], 3, [4, 5]),
            parts.majority_minority([1, 2, 3, 4, 5], [1, 5]),
        ):
            net.apply(p)
            self.assertEqual(net.verify(), [], p.description)

    def test_setup_cleans_up_after_a_crashed_run(self):
        crashed = netns.Network([1, 2, 3], self.cfg, log=lambda m: None)
        crashed.setup(wait_s=120)
        crashed.apply(parts.majority_minority([1, 2, 3], [1]))
        orphan = subprocess.Popen(crashed.exec_argv(2, ["sleep", "60"]))
        # The run dies here without tearing down (its lock goes with its process); the
        # next one starts from scratch.
        crashed._release()
        self.net = net = netns.Network([1, 2, 3], self.cfg, log=lambda m: None)
        net.setup(wait_s=120)
        orphan.wait(10)  # killed by the clean-up
        self.assertEqual(net.verify(), [])
        self.assertTrue(all(not r for r in net.rules().values()))

    def test_teardown_is_idempotent(self):
        net = netns.Network([1, 2], self.cfg, log=lambda m: None)
        net.setup(wait_s=120)
        net.teardown()
        net.teardown()
        self.assertEqual(leftovers(self.cfg), [])


if __name__ == "__main__":
    unittest.main()
