"""Network namespaces do what a partition says, checked with real packets (root only):
UDP from a to b arrives iff (a, b) is not cut, a TCP echo works iff neither direction
is cut, the root namespace reaches every node; set-up and tear-down leave nothing
behind and clean up after a crashed run. Uses instance 9 (10.77.9.0/24)."""

import os
import random
import subprocess
import time
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
        net.setup()
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
        net.setup()
        net.apply(parts.one_way([1, 2, 3], [1], [2]))
        bad = net.verify(parts.healed([1, 2, 3]))
        self.assertIn("udp 1->2: lost, expected arrival", bad)
        self.assertIn("tcp 1->2: failed, expected connection", bad)
        self.assertIn("tcp 2->1: failed, expected connection", bad)
        self.assertEqual(len(bad), 3)

    def test_five_nodes_bridge_and_minority(self):
        self.net = net = netns.Network([1, 2, 3, 4, 5], self.cfg, log=lambda m: None)
        net.setup()
        for p in (
            parts.bridge([1, 2, 3, 4, 5], [1, 2], 3, [4, 5]),
            parts.majority_minority([1, 2, 3, 4, 5], [1, 5]),
        ):
            net.apply(p)
            self.assertEqual(net.verify(), [], p.description)

    def test_setup_cleans_up_after_a_crashed_run(self):
        crashed = netns.Network([1, 2, 3], self.cfg, log=lambda m: None)
        crashed.setup()
        crashed.apply(parts.majority_minority([1, 2, 3], [1]))
        orphan = subprocess.Popen(crashed.exec_argv(2, ["sleep", "60"]))
        # The run dies here without tearing down; the next one starts from scratch.
        self.net = net = netns.Network([1, 2, 3], self.cfg, log=lambda m: None)
        net.setup()
        orphan.wait(10)  # killed by the clean-up
        self.assertEqual(net.verify(), [])
        self.assertTrue(all(not r for r in net.rules().values()))

    def test_teardown_is_idempotent(self):
        net = netns.Network([1, 2], self.cfg, log=lambda m: None)
        net.setup()
        net.teardown()
        net.teardown()
        self.assertEqual(leftovers(self.cfg), [])


class FsyncTracker(unittest.TestCase):
    """The LD_PRELOAD shim records the size a file had before each successful sync."""

    def test_records_size_before_sync(self):
        import tempfile

        from keelchaos import durability, nodes

        with tempfile.TemporaryDirectory() as tmp:
            shim = nodes.build_shim(tmp)
            if shim is None:
                self.skipTest("no C compiler")
            log = os.path.join(tmp, "fsync.log")
            target = os.path.join(tmp, "seg.log")
            program = (
                "import os\n"
                f"fd = os.open({target!r}, os.O_WRONLY | os.O_CREAT)\n"
                "os.write(fd, b'a' * 100); os.fdatasync(fd)\n"
                "os.write(fd, b'b' * 50); os.fsync(fd)\n"
                "os.write(fd, b'c' * 7)\n"
            )
            env = dict(os.environ, LD_PRELOAD=shim, KEELCHAOS_FSYNC_LOG=log)
            subprocess.run(["python3", "-c", program], env=env, check=True, timeout=30)
            synced = durability.read_fsync_log(log)
            self.assertEqual(synced[target][0], 150)
            self.assertEqual(synced[target][1], os.stat(target).st_ino)
            self.assertEqual(os.path.getsize(target), 157)


if __name__ == "__main__":
    unittest.main()
