"""The checker finds each anomaly in a history built to contain it, and nothing in a
clean one (a checker that cannot fail is worthless)."""

import unittest

from keelchaos import checker
from keelchaos.checker import ANOMALY_KINDS, analyze

from .synth import Synth, clean_history


def only(analysis, kind):
    """Asserts that `kind` (and nothing else) was found; returns its cases."""
    counts = analysis.counts()
    others = {k: n for k, n in counts.items() if k != kind and n}
    assert not others, f"unexpected anomalies besides {kind}: {others}: {analysis.anomalies}"
    assert counts[kind] > 0, f"{kind} not found"
    return analysis.anomalies[kind]


class CleanHistory(unittest.TestCase):
    def test_clean_history_has_no_anomalies(self):
        a = analyze(clean_history().events)
        self.assertEqual(a.counts(), {k: 0 for k in ANOMALY_KINDS})
        self.assertEqual(a.problems, [])
        self.assertTrue(a.valid)
        self.assertEqual(a.stats["ok"], 15)

    def test_offset_gaps_without_records_are_not_skips(self):
        # Control batches (LEADER_CHANGE) take offsets nobody reads: 0, 1, then 5.
        s = Synth()
        s.assign("c1", [0])
        s.send("p1", "a", 0, 0)
        s.send("p1", "b", 0, 1)
        s.send("p1", "c", 0, 5)
        s.poll("c1", [(0, 0, "a"), (0, 1, "b")])
        s.poll("c1", [(0, 5, "c")])
        s.final(0, [(0, "a"), (1, "b"), (5, "c")], high=6)
        self.assertTrue(analyze(s.events).valid)

    def test_unknown_outcome_that_is_missing_is_not_lost(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.invoke("p1", "b", 0)
        s.info("p1", "b", 0)
        s.final(0, [(0, "a")])
        self.assertTrue(analyze(s.events).valid)

    def test_unknown_outcome_that_is_present_is_fine(self):
        s = Synth()
        s.invoke("p1", "b", 0)
        s.info("p1", "b", 0)
        s.final(0, [(0, "b")])
        self.assertTrue(analyze(s.events).valid)

    def test_an_ack_without_offset_still_must_be_in_the_log(self):
        s = Synth()
        s.invoke("p1", "a", 0)
        s._add("p1", "send", "ok", value="a", partition=0, offset=None)
        s.invoke("p1", "b", 0)
        s._add("p1", "send", "ok", value="b", partition=0, offset=None)
        s.final(0, [(0, "a")], high=2)
        a = analyze(s.events)
        self.assertEqual(a.stats["ok_without_offset"], 2)
        self.assertEqual([c["value"] for c in only(a, "lost")], ["b"])

    def test_redelivery_after_a_reassignment_is_not_nonmonotonic(self):
        s = Synth()
        s.assign("c1", [0])
        for o, v in enumerate("abc"):
            s.send("p1", v, 0, o)
        s.poll("c1", [(0, 0, "a"), (0, 1, "b"), (0, 2, "c")])
        s.revoke("c1", [0])
        s.assign("c1", [0])
        s.poll("c1", [(0, 1, "b"), (0, 2, "c")])  # from an older committed offset
        s.final(0, [(0, "a"), (1, "b"), (2, "c")])
        self.assertTrue(analyze(s.events).valid)

    def test_a_jump_after_a_reassignment_is_not_a_poll_skip(self):
        s = Synth()
        s.assign("c1", [0])
        for o, v in enumerate("abcd"):
            s.send("p1", v, 0, o)
        s.poll("c1", [(0, 0, "a")])
        s.assign("c1", [0])
        s.poll("c1", [(0, 3, "d")])  # another member processed b and c
        s.final(0, [(0, "a"), (1, "b"), (2, "c"), (3, "d")])
        self.assertTrue(analyze(s.events).valid)


class EachAnomaly(unittest.TestCase):
    def test_lost_acknowledged_write(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.send("p1", "b", 0, 1)
        s.send("p1", "c", 0, 2)
        s.final(0, [(0, "a"), (2, "c")], high=3)  # b vanished
        cases = only(analyze(s.events), "lost")
        self.assertEqual([c["value"] for c in cases], ["b"])

    def test_lost_tail_when_the_log_ends_below_an_acknowledged_offset(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.send("p1", "b", 0, 1)
        s.final(0, [(0, "a")], high=1)
        cases = only(analyze(s.events), "lost")
        self.assertEqual(cases[0]["value"], "b")

    def test_lost_value_that_a_consumer_had_seen(self):
        s = Synth()
        s.invoke("p1", "a", 0)
        s.info("p1", "a", 0)  # outcome unknown, but a consumer read it: it was committed
        s.poll("c1", [(0, 0, "a")])
        s.final(0, [], high=0)
        cases = only(analyze(s.events), "lost")
        self.assertIn("polled by c1", cases[0]["evidence"])

    def test_unseen_when_the_final_read_is_incomplete(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.send("p1", "b", 0, 1)
        s.final(0, [(0, "a")], high=2, complete=False)
        a = analyze(s.events)
        cases = only(a, "unseen")
        self.assertEqual(cases[0]["value"], "b")
        self.assertTrue(any("did not reach" in p for p in a.problems))

    def test_unseen_when_there_is_no_final_read(self):
        s = Synth()
        s.send("p1", "a", 1, 0)
        cases = only(analyze(s.events), "unseen")
        self.assertEqual(cases[0]["why"], "no final read")

    def test_duplicate_value_at_two_offsets(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.send("p1", "b", 0, 1)
        s.final(0, [(0, "a"), (1, "b"), (2, "a")])  # a retried without idempotence
        cases = only(analyze(s.events), "duplicate")
        self.assertEqual(cases[0]["value"], "a")
        self.assertEqual([p["offset"] for p in cases[0]["positions"]], [0, 2])

    def test_inconsistent_offset_two_values_at_one_offset(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.send("p2", "x", 0, 1)
        s.poll("c1", [(0, 0, "a"), (0, 1, "x")])
        s.invoke("p1", "y", 0)
        s.info("p1", "y", 0)
        s.final(0, [(0, "a"), (1, "x")])
        s.poll("c2", [(0, 1, "y")])  # another reader sees y at offset 1: divergence
        a = analyze(s.events)
        [case] = a.anomalies["inconsistent-offset"]
        self.assertEqual(case["offset"], 1)
        self.assertEqual(sorted(case["values"]), ["x", "y"])
        # y was visible and is not in the final log: lost as well, and nothing else.
        self.assertEqual([c["value"] for c in a.anomalies["lost"]], ["y"])
        self.assertEqual(sum(a.counts().values()), 2)

    def test_inconsistent_offset_between_ack_and_log(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.invoke("p2", "b", 0)
        s.info("p2", "b", 0)
        s.final(0, [(0, "b")])  # a was acknowledged at 0, b sits there: a is lost too
        a = analyze(s.events)
        self.assertEqual(a.counts()["inconsistent-offset"], 1)
        self.assertEqual(a.counts()["lost"], 1)

    def test_value_read_in_another_partition(self):
        s = Synth()
        s.invoke("p1", "a", 0)
        s.info("p1", "a", 0)
        s.final(0, [])
        s.final(1, [(0, "a")])
        cases = only(analyze(s.events), "inconsistent-offset")
        self.assertEqual(cases[0]["read_in"], [1])

    def test_failed_send_that_becomes_visible(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.invoke("p1", "b", 0)
        s.fail("p1", "b", 0, "_PURGE_QUEUE")
        s.final(0, [(0, "a"), (1, "b")])
        cases = only(analyze(s.events), "failed-visible")
        self.assertEqual(cases[0]["value"], "b")

    def test_nonmonotonic_send(self):
        s = Synth()
        s.invoke("p1", "a", 0)
        s.invoke("p1", "b", 0)
        s.ok("p1", "b", 0, 0)
        s.ok("p1", "a", 0, 1)  # sent first, stored after
        s.final(0, [(0, "b"), (1, "a")])
        cases = only(analyze(s.events), "nonmonotonic-send")
        self.assertEqual(cases[0]["values"], ["a", "b"])

    def test_sends_of_different_producers_may_interleave(self):
        s = Synth()
        s.invoke("p1", "a", 0)
        s.invoke("p2", "b", 0)
        s.ok("p2", "b", 0, 0)
        s.ok("p1", "a", 0, 1)
        s.final(0, [(0, "b"), (1, "a")])
        self.assertTrue(analyze(s.events).valid)

    def test_nonmonotonic_poll_going_back(self):
        s = Synth()
        s.assign("c1", [0])
        for o, v in enumerate("abc"):
            s.send("p1", v, 0, o)
        s.poll("c1", [(0, 0, "a"), (0, 1, "b"), (0, 2, "c")])
        s.poll("c1", [(0, 1, "b")])  # no rebalance in between
        s.final(0, [(0, "a"), (1, "b"), (2, "c")])
        cases = only(analyze(s.events), "nonmonotonic-poll")
        self.assertEqual(cases[0]["offsets"], [2, 1])

    def test_nonmonotonic_poll_inside_one_poll(self):
        s = Synth()
        s.assign("c1", [0])
        for o, v in enumerate("ab"):
            s.send("p1", v, 0, o)
        s.poll("c1", [(0, 1, "b"), (0, 0, "a")])
        s.final(0, [(0, "a"), (1, "b")])
        only(analyze(s.events), "nonmonotonic-poll")

    def test_poll_skip(self):
        s = Synth()
        s.assign("c1", [0])
        for o, v in enumerate("abcd"):
            s.send("p1", v, 0, o)
        s.poll("c1", [(0, 0, "a")])
        s.poll("c1", [(0, 3, "d")])  # b and c skipped, no reassignment
        s.final(0, [(0, "a"), (1, "b"), (2, "c"), (3, "d")])
        cases = only(analyze(s.events), "poll-skip")
        self.assertEqual(cases[0]["skipped"], [1, 2])

    def test_poll_skip_inside_one_poll(self):
        s = Synth()
        s.assign("c1", [0])
        for o, v in enumerate("abc"):
            s.send("p1", v, 0, o)
        s.poll("c1", [(0, 0, "a"), (0, 2, "c")])
        s.final(0, [(0, "a"), (1, "b"), (2, "c")])
        only(analyze(s.events), "poll-skip")


class DuplicateCauses(unittest.TestCase):
    def test_causes_come_from_the_batches_holding_the_copies(self):
        s = Synth()
        for v, offsets in (("a", (0, 1)), ("b", (2, 3)), ("c", (4, 5)), ("d", (6, 7))):
            s.send("p1", v, 0, offsets[1])
        s.final(0, [(0, "a"), (1, "a"), (2, "b"), (3, "b"), (4, "c"), (5, "c"), (6, "d"), (7, "d")])
        a = analyze(s.events)
        self.assertEqual(a.counts()["duplicate"], 4)
        batches = {0: (7, 1, 0), 1: (7, 1, 0), 2: (7, 1, 1), 3: (7, 2, 0), 4: (7, 2, 1), 5: (8, 0, 0), 6: (7, 2, 2)}
        counts = checker.annotate_duplicates(a, lambda p, o: batches.get(o))
        self.assertEqual(counts, {"same-epoch": 1, "epoch-bump": 1, "producer-restart": 1, "unknown": 1})
        self.assertEqual({c["value"]: c["cause"] for c in a.anomalies["duplicate"]},
                         {"a": "same-epoch", "b": "epoch-bump", "c": "producer-restart", "d": "unknown"})
        self.assertIn("duplicates, same-epoch: 1", checker.report(a))


    def test_a_tolerated_cause_is_counted_but_does_not_fail_the_run(self):
        s = Synth()
        for v, offsets in (("a", (0, 1)), ("b", (2, 3))):
            s.send("p1", v, 0, offsets[1])
        s.final(0, [(0, "a"), (1, "a"), (2, "b"), (3, "b")])
        a = analyze(s.events)
        checker.annotate_duplicates(a, lambda p, o: {0: (7, 1, 0), 1: (7, 2, 0), 2: (7, 2, 1), 3: (7, 3, 0)}[o])
        self.assertFalse(a.valid)
        a.tolerated = {"epoch-bump"}
        self.assertTrue(a.valid)
        self.assertEqual(a.counts()["duplicate"], 2, "still counted")
        self.assertIn("VALID, tolerating duplicates of cause epoch-bump", checker.report(a))
        # A copy the broker took twice under one epoch is never tolerated.
        a.anomalies["duplicate"][0]["cause"] = "same-epoch"
        self.assertFalse(a.valid)


class Problems(unittest.TestCase):
    def test_send_without_completion_is_a_problem(self):
        s = Synth()
        s.invoke("p1", "a", 0)
        s.final(0, [])
        a = analyze(s.events)
        self.assertFalse(a.valid)
        self.assertTrue(any("no completion" in p for p in a.problems))

    def test_a_value_sent_twice_is_a_problem(self):
        s = Synth()
        s.send("p1", "a", 0, 0)
        s.send("p1", "a", 0, 1)
        s.final(0, [(0, "a"), (1, "a")])
        self.assertTrue(any("sent twice" in p for p in analyze(s.events).problems))


class Unavailability(unittest.TestCase):
    def history_with_a_leader_kill(self):
        s = Synth()
        # Sends every 0.1 s to partitions 0 and 1 (invoked 0.01 s after each tick, acked
        # 5 ms later); partition 0's writes fail from t=10 to t=12.5 (its leader was
        # killed at 10.0), partition 1 is not affected: the first ack on 0 after the
        # fault is at 12.515.
        n = 0
        offsets = {0: 0, 1: 0}
        logs = {0: [], 1: []}
        t = 9.0
        while t < 15.0:
            for p in (0, 1):
                v = f"p1-{n}"
                n += 1
                s.at(t)
                s.invoke("p1", v, p)
                if p == 0 and 10.0 <= t < 12.5:
                    s.info("p1", v, p)
                else:
                    s.ok("p1", v, p, offsets[p], dt=0.005)
                    logs[p].append((offsets[p], v))
                    offsets[p] += 1
            t = round(t + 0.1, 6)
        s.fault(1, "kill", [2], leader_of=[0], at=10.0)
        s.heal(1, "kill", at=12.0)
        for p in (0, 1):
            s.final(p, logs[p])
        s.events.sort(key=lambda e: e["time"])
        for i, e in enumerate(s.events):
            e["index"] = i
        return s

    def test_window_is_the_time_to_the_first_ack_after_the_fault(self):
        a = analyze(self.history_with_a_leader_kill().events)
        self.assertTrue(a.valid, a.anomalies)
        [f] = a.faults
        self.assertEqual(f["worst_partition"], 0)
        self.assertAlmostEqual(f["unavailable_s"], 2.515, places=3)
        self.assertAlmostEqual(f["leader_unavailable_s"], 2.515, places=3)
        self.assertEqual(a.leader_kills["count"], 1)
        self.assertAlmostEqual(a.leader_kills["p99_s"], 2.515, places=3)

    def test_no_recovery_is_reported_as_never(self):
        s = Synth()
        s.at(1.0).send("p1", "a", 0, 0)
        s.fault(1, "kill", [1], leader_of=[0], at=2.0)
        s.at(2.5).invoke("p1", "b", 0)
        s.info("p1", "b", 0)
        s.final(0, [(0, "a")])
        a = analyze(s.events)
        [f] = a.faults
        self.assertFalse(f["recovered"])
        self.assertEqual(a.leader_kills["not_recovered"], 1)
        self.assertIn("never", checker.report(a))

    def test_a_window_cut_short_by_the_next_fault_is_not_counted(self):
        s = Synth()
        s.at(1.0).send("p1", "a", 0, 0)
        s.fault(1, "kill", [1], leader_of=[0], at=2.0)
        s.heal(1, "kill", at=3.0)
        s.fault(2, "kill", [1], leader_of=[0], at=4.0)  # before writes came back
        s.heal(2, "kill", at=5.0)
        s.at(2.5).invoke("p1", "b", 0)
        s.at(4.5).invoke("p1", "c", 0)
        s.at(5.49).ok("p1", "b", 0, 1)
        s.ok("p1", "c", 0, 2)
        s.final(0, [(0, "a"), (1, "b"), (2, "c")])
        s.events.sort(key=lambda e: e["time"])
        for i, e in enumerate(s.events):
            e["index"] = i
        a = analyze(s.events)
        first, second = a.faults
        self.assertTrue(first["censored"])
        self.assertFalse(second["censored"])
        self.assertAlmostEqual(second["leader_unavailable_s"], 1.51, places=3)  # c: invoked 4.51, acked 5.51
        self.assertEqual(a.leader_kills["censored"], 1)
        self.assertAlmostEqual(a.leader_kills["p99_s"], 1.51, places=3)
        self.assertIn("not in the percentiles", checker.report(a))

    def test_percentile(self):
        self.assertEqual(checker.percentile([], 99), None)
        self.assertEqual(checker.percentile([3.0], 99), 3.0)
        xs = [float(i) for i in range(1, 101)]
        self.assertEqual(checker.percentile(xs, 50), 50.0)
        self.assertEqual(checker.percentile(xs, 99), 99.0)


class Report(unittest.TestCase):
    def test_report_names_every_anomaly_kind_and_the_verdict(self):
        text = checker.report(analyze(clean_history().events), "t")
        for k in ANOMALY_KINDS:
            self.assertIn(k, text)
        self.assertIn("VALID", text)


if __name__ == "__main__":
    unittest.main()
