"""The workload, end to end, against librdkafka's built-in mock cluster (3 brokers on
loopback, with a group coordinator): idempotent producers and a consumer group record
a history in which the checker finds nothing, and the same history, damaged on
purpose, is caught. Bounded: about 15 s."""

import copy
import unittest

try:
    from confluent_kafka import Producer

    from keelchaos import workload
    from keelchaos.checker import analyze
    from keelchaos.history import History
except ImportError as e:  # confluent-kafka comes with tools/setup
    Producer = None
    WHY = str(e)


@unittest.skipIf(Producer is None, "confluent-kafka is not installed")
class MockCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The mock cluster lives inside this client; its brokers listen on real ports.
        cls.host = Producer({"test.mock.num.brokers": 3, "bootstrap.servers": "unused", "log_level": 0})
        md = cls.host.list_topics(timeout=10)
        cls.bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
        workload.set_client_log(None)
        cfg = workload.WorkloadConfig(
            bootstrap=cls.bootstrap, topic="chaos", partitions=4, producers=2, consumers=3,
            rate_per_producer=40, message_timeout_ms=5000, consumer_mode="group", group="mockgroup", seed=9,
        )
        # Auto-creates the topic (the mock cluster has no CreateTopics; 4 partitions).
        cls.host.produce("chaos", b"", partition=0)
        cls.host.flush(5)
        cls.history = History(None)
        load = workload.Workload(cfg, cls.history)
        load.start()
        cls.history.record("harness", "note", "info", text="running")
        import time

        time.sleep(6)
        cls.problems = load.stop(consumer_grace_s=3)
        cls.problems += workload.final_read(cls.bootstrap, "chaos", 4, cls.history, timeout_s=20)
        # The record the host wrote to create the topic has no send in the history.
        cls.events = cls.history.events

    @classmethod
    def tearDownClass(cls):
        cls.host.flush(1)

    def test_the_history_is_clean(self):
        self.assertEqual(self.problems, [])
        a = analyze(self.events)
        self.assertTrue(a.valid, f"{a.problems} {a.anomalies}")
        self.assertGreater(a.stats["ok"], 200)
        self.assertEqual(a.stats["ok"], a.stats["sends"])
        self.assertGreater(a.stats["polls"], 3)

    def test_the_group_assigned_and_committed(self):
        assigns = [e for e in self.events if e["f"] == "assign"]
        members = {e["process"] for e in assigns if e["partitions"]}
        self.assertGreaterEqual(len(members), 2)
        commits = [e for e in self.events if e["f"] == "commit"]
        # A commit may fail during a rebalance (how many depends on the timing of the joins); others succeed.
        self.assertGreater(sum(c["type"] == "ok" for c in commits), 0, commits[:3])
        rebalancing = {"REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID"}
        failed = [c for c in commits if c["type"] != "ok"]
        self.assertEqual([c for c in failed if c.get("error") not in rebalancing], [], failed[:3])

    def test_every_send_has_one_completion(self):
        invokes = {e["value"] for e in self.events if e["f"] == "send" and e["type"] == "invoke"}
        done = [e["value"] for e in self.events if e["f"] == "send" and e["type"] != "invoke"]
        self.assertEqual(sorted(invokes), sorted(done))

    def test_the_final_read_gets_past_a_trailing_control_batch(self):
        # A transaction's commit marker is a control batch at the end of the log, as a
        # LEADER_CHANGE batch can be in Keel: it takes an offset that no record has.
        tx = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": "tx1", "log_level": 0})
        tx.init_transactions(10)
        tx.begin_transaction()
        for i in range(3):
            tx.produce("tx", value=str(i).encode(), partition=0)
        tx.commit_transaction(10)
        h = History(None)
        self.assertEqual(workload.final_read(self.bootstrap, "tx", 1, h, timeout_s=15), [])
        [e] = [x for x in h.events if x["f"] == "final-read"]
        self.assertEqual((e["high"], len(e["records"]), e["complete"]), (4, 3, True))

    def test_the_group_coordinator_is_found(self):
        self.assertTrue(workload.group_coordinator_available(self.bootstrap, timeout_s=10))

    def test_damage_is_caught(self):
        events = copy.deepcopy(self.events)
        final = next(e for e in events if e["f"] == "final-read" and len(e["records"]) > 2)
        dropped = final["records"].pop(1)
        a = analyze(events)
        self.assertIn(dropped[1], [c["value"] for c in a.anomalies["lost"]])

        events = copy.deepcopy(self.events)
        poll = next(e for e in events if e["f"] == "poll" and len(e["records"]) > 1)
        poll["records"].append(poll["records"][0])  # delivered twice without a rebalance
        self.assertTrue(analyze(events).anomalies["nonmonotonic-poll"])


if __name__ == "__main__":
    unittest.main()
