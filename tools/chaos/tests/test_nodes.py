"""The node command line (single node today, issue #4's flags for a cluster), and the
scan of node logs for what must fail a run."""

import os
import tempfile
import unittest

from keelchaos import nodes


def spec(i: int) -> nodes.NodeSpec:
    return nodes.NodeSpec(i, f"10.77.0.{10 + i}", 9092, 9093, f"/out/nodes/n{i}", f"keelchaos0-n{i}")


class BrokerArgv(unittest.TestCase):
    def test_single_node_has_no_cluster_flags(self):
        cfg = nodes.ClusterConfig("/k/keel", nodes=1, partitions=6)
        argv = nodes.broker_argv(cfg, spec(1), [spec(1)])
        self.assertEqual(argv[:2], ["/k/keel", "broker"])
        self.assertIn("--advertised-listener", argv)
        self.assertEqual(argv[argv.index("--listen") + 1], "10.77.0.11:9092")
        self.assertEqual(argv[argv.index("--data-dir") + 1], "/out/nodes/n1/data")
        self.assertNotIn("--voters", argv)

    def test_three_nodes_get_voters_and_cluster_listen(self):
        cfg = nodes.ClusterConfig("/k/keel", nodes=3, partitions=6, replication_factor=3)
        everyone = [spec(i) for i in (1, 2, 3)]
        argv = nodes.broker_argv(cfg, everyone[1], everyone)
        self.assertEqual(argv[argv.index("--id") + 1], "2")
        self.assertEqual(argv[argv.index("--cluster-listen") + 1], "10.77.0.12:9093")
        self.assertEqual(argv[argv.index("--voters") + 1], "1@10.77.0.11:9093,2@10.77.0.12:9093,3@10.77.0.13:9093")
        self.assertEqual(argv[argv.index("--advertised-listener") + 1], "10.77.0.12:9092")


class ScanLog(unittest.TestCase):
    def test_problems_and_warnings(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "broker.log")
            with open(path, "w") as f:
                f.write("2026-12-03T15:06:09+0000 notice keel.broker: partition recovered\n")
                f.write("warning: the log ends at 5735, below the recovery point 5752: data that was fsynced is missing\n")
                f.write("2026-12-03T15:06:10+0000 warning keel.broker: slow fsync\n")
                f.write("Fatal error: Unexpectedly found nil\n")
            problems, warnings = nodes.scan_log(path)
            self.assertEqual(len(problems), 2)
            self.assertEqual(warnings, ["2026-12-03T15:06:10+0000 warning keel.broker: slow fsync"])
            self.assertEqual(nodes.scan_log(os.path.join(tmp, "missing")), ([], []))


if __name__ == "__main__":
    unittest.main()
