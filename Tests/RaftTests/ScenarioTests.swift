// Scenario tests of the Raft core, as scripts with their expected transcripts (see Interaction.swift).
import XCTest

final class ScenarioTests: XCTestCase {
    /// A node that campaigns wins a pre-vote, then a vote, and leads; its first appends probe the followers.
    func testElectionMakesOneLeader() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > status
            n1 leader term 1 commit -1 log empty
              n2: match -1 next 0 replicate inflight 0
              n3: match -1 next 0 replicate inflight 0
            n2 follower term 1 commit -1 log empty
            n3 follower term 1 commit -1 log empty
            """)
    }

    /// When the followers' links to their leader close (its process died), they forget its lease and elect a new
    /// leader within a few ticks instead of a whole election timeout (10 ticks here).
    func testFollowersOfAnUnreachableLeaderElectSoon() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > crash 1
            n1 crashes; durable: term 1, vote n1, log empty
            > unreachable 2 1
              n2 becomes follower in term 1
            > unreachable 3 1
              n3 becomes follower in term 1
            > tick 2 4
              n2 becomes pre-candidate in term 1
            > deliver
            dropped: n2->n1 t2 pre-vote? last -1@0
            n2->n3 t2 pre-vote? last -1@0
            n3->n2 t2 pre-vote granted
              n2 becomes candidate in term 2
            dropped: n2->n1 t2 vote? last -1@0
            n2->n3 t2 vote? last -1@0
              n3 becomes follower in term 2
            n3->n2 t2 vote granted
              n2 becomes leader in term 2
            dropped: n2->n1 t2 append prev -1@0 [] commit -1
            n2->n3 t2 append prev -1@0 [] commit -1
              n3 becomes follower in term 2, leader n2
            n3->n2 t2 append ok match -1
            > status
            n1 down
            n2 leader term 2 commit -1 log empty
              n1: match -1 next 0 probe(paused: true) inflight 0
              n3: match -1 next 0 replicate inflight 0
            n3 follower term 2 commit -1 log empty
            """)
    }

    /// A node cut off from the others keeps pre-voting without raising its term, so on its return it does not
    /// depose the leader; the others ignore its pre-votes while they hear from the leader.
    func testPreVoteKeepsAPartitionedNodeFromDisruptingTheLeader() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > cut 3 1
            > cut 3 2
            > tick 3 40
              n3 becomes pre-candidate in term 1
            > deliver
            dropped: n3->n1 t2 pre-vote? last -1@0
            dropped: n3->n2 t2 pre-vote? last -1@0
            dropped: n3->n1 t2 pre-vote? last -1@0
            dropped: n3->n2 t2 pre-vote? last -1@0
            > heal
            > tick 3 20
            > deliver
            n3->n1 t2 pre-vote? last -1@0
            n3->n2 t2 pre-vote? last -1@0
            > tick 1 2
            > deliver
            n1->n2 t1 heartbeat commit -1
            n1->n3 t1 heartbeat commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            > status
            n1 leader term 1 commit -1 log empty
              n2: match -1 next 0 replicate inflight 0
              n3: match -1 next 0 replicate inflight 0
            n2 follower term 1 commit -1 log empty
            n3 follower term 1 commit -1 log empty
            """)
    }

    /// A leader that hears from no majority for an election timeout steps down (check-quorum).
    func testLeaderStepsDownWithoutQuorum() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > cut 1 2
            > cut 1 3
            > tick 1 10
            > drop
            > status
            n1 leader term 1 commit -1 log empty
              n2: match -1 next 0 replicate inflight 0
              n3: match -1 next 0 replicate inflight 0
            n2 follower term 1 commit -1 log empty
            n3 follower term 1 commit -1 log empty
            > tick 1 10
              n1 becomes follower in term 1
            > drop
            > status
            n1 follower term 1 commit -1 log empty
            n2 follower term 1 commit -1 log empty
            n3 follower term 1 commit -1 log empty
            """)
    }

    /// A follower with a conflicting tail of an older term cuts it at a batch boundary; the leader's back-off hint
    /// skips the whole conflicting term in one round trip.
    func testFollowerTruncatesAConflictingTailAtABatchBoundary() {
        checkScript(
            """
            > nodes 3
            > log 1 1x2 1x3 3x2
            > log 2 1x2 1x3 2x4 2x1
            > log 3 1x2
            > campaign 1
              n1 becomes pre-candidate in term 3
            > deliver
            n1->n2 t4 pre-vote? last 6@3
            n1->n3 t4 pre-vote? last 6@3
            n2->n1 t4 pre-vote granted
              n1 becomes candidate in term 4
            n3->n1 t4 pre-vote granted
            n1->n2 t4 vote? last 6@3
              n2 becomes follower in term 4
            n1->n3 t4 vote? last 6@3
              n3 becomes follower in term 4
            n2->n1 t4 vote granted
              n1 becomes leader in term 4
              n1 writes append 7@4 LC
            n3->n1 t4 vote granted
            n1->n2 t4 append prev 6@3 [7@4 LC] commit -1
              n2 becomes follower in term 4, leader n1
            n1->n3 t4 append prev 6@3 [7@4 LC] commit -1
              n3 becomes follower in term 4, leader n1
            n2->n1 t4 append rejected prev 6 hint 6@2
            n3->n1 t4 append rejected prev 6 hint 1@1
            n1->n2 t4 append prev 4@1 [5...6@3 7@4 LC] commit -1
              n2 writes truncate after 4, append 5...6@3 7@4 LC
            n1->n3 t4 append prev 1@1 [2...4@1 5...6@3 7@4 LC] commit -1
              n3 writes append 2...4@1 5...6@3 7@4 LC
            n2->n1 t4 append ok match 7
              n1 commits up to 7
            n3->n1 t4 append ok match 7
            n1->n2 t4 append prev 7@4 [] commit 7
              n2 commits up to 7
            n1->n3 t4 append prev 7@4 [] commit 7
              n3 commits up to 7
            n2->n1 t4 append ok match 7
            n3->n1 t4 append ok match 7
            > status
            n1 leader term 4 commit 7 log 0...1@1 2...4@1 5...6@3 7@4 LC
              n2: match 7 next 8 replicate inflight 0
              n3: match 7 next 8 replicate inflight 0
            n2 follower term 4 commit 7 log 0...1@1 2...4@1 5...6@3 7@4 LC
            n3 follower term 4 commit 7 log 0...1@1 2...4@1 5...6@3 7@4 LC
            """)
    }

    /// Raft's Figure 8: an entry of an older term stored on a majority is not committed by counting replicas, and
    /// rightly so, since a later leader may still overwrite it; only an entry of the leader's own term commits.
    func testCommitCountsOnlyEntriesOfTheLeadersTerm() {
        checkScript(
            """
            > nodes 5 inflight=1 batch=1
            > log 1 1x1 2x1 term=3
            > log 2 1x1 2x1
            > log 3 1x1
            > log 4 1x1
            > log 5 1x1 3x1
            > cut 1 2
            > cut 1 5
            > campaign 1
              n1 becomes pre-candidate in term 3
            > deliver 22
            dropped: n1->n2 t4 pre-vote? last 1@2
            n1->n3 t4 pre-vote? last 1@2
            n1->n4 t4 pre-vote? last 1@2
            dropped: n1->n5 t4 pre-vote? last 1@2
            n3->n1 t4 pre-vote granted
            n4->n1 t4 pre-vote granted
              n1 becomes candidate in term 4
            dropped: n1->n2 t4 vote? last 1@2
            n1->n3 t4 vote? last 1@2
              n3 becomes follower in term 4
            n1->n4 t4 vote? last 1@2
              n4 becomes follower in term 4
            dropped: n1->n5 t4 vote? last 1@2
            n3->n1 t4 vote granted
            n4->n1 t4 vote granted
              n1 becomes leader in term 4
              n1 writes append 2@4 LC
            dropped: n1->n2 t4 append prev 1@2 [2@4 LC] commit -1
            n1->n3 t4 append prev 1@2 [2@4 LC] commit -1
              n3 becomes follower in term 4, leader n1
            n1->n4 t4 append prev 1@2 [2@4 LC] commit -1
              n4 becomes follower in term 4, leader n1
            dropped: n1->n5 t4 append prev 1@2 [2@4 LC] commit -1
            n3->n1 t4 append rejected prev 1 hint 0@1
            n4->n1 t4 append rejected prev 1 hint 0@1
            n1->n3 t4 append prev 0@1 [1@2] commit -1
              n3 writes append 1@2
            n1->n4 t4 append prev 0@1 [1@2] commit -1
              n4 writes append 1@2
            n3->n1 t4 append ok match 1
            n4->n1 t4 append ok match 1
            > drop
            > status
            n1 leader term 4 commit -1 log 0@1 1@2 2@4 LC
              n2: match -1 next 2 probe(paused: true) inflight 0
              n3: match 1 next 3 replicate inflight 1
              n4: match 1 next 3 replicate inflight 1
              n5: match -1 next 2 probe(paused: true) inflight 0
            n2 follower term 2 commit -1 log 0@1 1@2
            n3 follower term 4 commit -1 log 0@1 1@2
            n4 follower term 4 commit -1 log 0@1 1@2
            n5 follower term 3 commit -1 log 0@1 1@3
            > crash 1
            n1 crashes; durable: term 4, vote n1, log 0@1 1@2 2@4 LC
            > heal
            > tick 3 10
            > tick 4 10
            > campaign 5
              n5 becomes pre-candidate in term 3
            > deliver
            dropped: n5->n1 t4 pre-vote? last 1@3
            n5->n2 t4 pre-vote? last 1@3
            n5->n3 t4 pre-vote? last 1@3
            n5->n4 t4 pre-vote? last 1@3
            n2->n5 t4 pre-vote granted
            n3->n5 t4 pre-vote refused
              n5 becomes follower in term 4
            n4->n5 t4 pre-vote refused
            > campaign 5
              n5 becomes pre-candidate in term 4
            > deliver
            dropped: n5->n1 t5 pre-vote? last 1@3
            n5->n2 t5 pre-vote? last 1@3
            n5->n3 t5 pre-vote? last 1@3
            n5->n4 t5 pre-vote? last 1@3
            n2->n5 t5 pre-vote granted
            n3->n5 t5 pre-vote granted
              n5 becomes candidate in term 5
            n4->n5 t5 pre-vote granted
            dropped: n5->n1 t5 vote? last 1@3
            n5->n2 t5 vote? last 1@3
              n2 becomes follower in term 5
            n5->n3 t5 vote? last 1@3
              n3 becomes follower in term 5
            n5->n4 t5 vote? last 1@3
              n4 becomes follower in term 5
            n2->n5 t5 vote granted
            n3->n5 t5 vote granted
              n5 becomes leader in term 5
              n5 writes append 2@5 LC
            n4->n5 t5 vote granted
            dropped: n5->n1 t5 append prev 1@3 [2@5 LC] commit -1
            n5->n2 t5 append prev 1@3 [2@5 LC] commit -1
              n2 becomes follower in term 5, leader n5
            n5->n3 t5 append prev 1@3 [2@5 LC] commit -1
              n3 becomes follower in term 5, leader n5
            n5->n4 t5 append prev 1@3 [2@5 LC] commit -1
              n4 becomes follower in term 5, leader n5
            n2->n5 t5 append rejected prev 1 hint 1@2
            n3->n5 t5 append rejected prev 1 hint 1@2
            n4->n5 t5 append rejected prev 1 hint 1@2
            n5->n2 t5 append prev 0@1 [1@3] commit -1
              n2 writes truncate after 0, append 1@3
            n5->n3 t5 append prev 0@1 [1@3] commit -1
              n3 writes truncate after 0, append 1@3
            n5->n4 t5 append prev 0@1 [1@3] commit -1
              n4 writes truncate after 0, append 1@3
            n2->n5 t5 append ok match 1
            n3->n5 t5 append ok match 1
            n4->n5 t5 append ok match 1
            n5->n2 t5 append prev 1@3 [2@5 LC] commit -1
              n2 writes append 2@5 LC
            n5->n3 t5 append prev 1@3 [2@5 LC] commit -1
              n3 writes append 2@5 LC
            n5->n4 t5 append prev 1@3 [2@5 LC] commit -1
              n4 writes append 2@5 LC
            n2->n5 t5 append ok match 2
            n3->n5 t5 append ok match 2
              n5 commits up to 2
            n4->n5 t5 append ok match 2
            n5->n2 t5 append prev 2@5 [] commit 2
              n2 commits up to 2
            n5->n3 t5 append prev 2@5 [] commit 2
              n3 commits up to 2
            n5->n4 t5 append prev 2@5 [] commit 2
              n4 commits up to 2
            n2->n5 t5 append ok match 2
            n3->n5 t5 append ok match 2
            n4->n5 t5 append ok match 2
            > status
            n1 down
            n2 follower term 5 commit 2 log 0@1 1@3 2@5 LC
            n3 follower term 5 commit 2 log 0@1 1@3 2@5 LC
            n4 follower term 5 commit 2 log 0@1 1@3 2@5 LC
            n5 leader term 5 commit 2 log 0@1 1@3 2@5 LC
              n1: match -1 next 2 probe(paused: true) inflight 0
              n2: match 2 next 3 replicate inflight 0
              n3: match 2 next 3 replicate inflight 0
              n4: match 2 next 3 replicate inflight 0
            """)
    }

    /// A fresh log stays at offset 0 with no no-op, and a failover after everything committed adds none either.
    func testNoLeaderChangeEntryOnAFreshLogOrAQuietFailover() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > propose 1 records=3
            n1 accepts 0...2
              n1 writes append 0...2@1
            > deliver
            n1->n2 t1 append prev -1@0 [0...2@1] commit -1
              n2 writes append 0...2@1
            n1->n3 t1 append prev -1@0 [0...2@1] commit -1
              n3 writes append 0...2@1
            n2->n1 t1 append ok match 2
              n1 commits up to 2
            n3->n1 t1 append ok match 2
            n1->n2 t1 append prev 2@1 [] commit 2
              n2 commits up to 2
            n1->n3 t1 append prev 2@1 [] commit 2
              n3 commits up to 2
            n2->n1 t1 append ok match 2
            n3->n1 t1 append ok match 2
            > transfer 1 to 2
            > deliver
            n1->n2 t1 timeout now
              n2 becomes candidate in term 2
            n2->n1 t2 vote? last 2@1 (transfer)
              n1 becomes follower in term 2
            n2->n3 t2 vote? last 2@1 (transfer)
              n3 becomes follower in term 2
            n1->n2 t2 vote granted
              n2 becomes leader in term 2
            n3->n2 t2 vote granted
            n2->n1 t2 append prev 2@1 [] commit 2
              n1 becomes follower in term 2, leader n2
            n2->n3 t2 append prev 2@1 [] commit 2
              n3 becomes follower in term 2, leader n2
            n1->n2 t2 append ok match 2
            n3->n2 t2 append ok match 2
            > propose 2 records=1
            n2 accepts 3...3
              n2 writes append 3@2
            > deliver
            n2->n1 t2 append prev 2@1 [3@2] commit 2
              n1 writes append 3@2
            n2->n3 t2 append prev 2@1 [3@2] commit 2
              n3 writes append 3@2
            n1->n2 t2 append ok match 3
              n2 commits up to 3
            n3->n2 t2 append ok match 3
            n2->n1 t2 append prev 3@2 [] commit 3
              n1 commits up to 3
            n2->n3 t2 append prev 3@2 [] commit 3
              n3 commits up to 3
            n1->n2 t2 append ok match 3
            n3->n2 t2 append ok match 3
            > status
            n1 follower term 2 commit 3 log 0...2@1 3@2
            n2 leader term 2 commit 3 log 0...2@1 3@2
              n1: match 3 next 4 replicate inflight 0
              n3: match 3 next 4 replicate inflight 0
            n3 follower term 2 commit 3 log 0...2@1 3@2
            """)
    }

    /// A leader elected over an uncommitted tail appends one LEADER_CHANGE no-op of its term, which commits the tail.
    func testLeaderChangeEntryOnlyOverAnUncommittedTail() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > propose 1 records=2
            n1 accepts 0...1
              n1 writes append 0...1@1
            > deliver 1
            n1->n2 t1 append prev -1@0 [0...1@1] commit -1
              n2 writes append 0...1@1
            > drop
            > crash 1
            n1 crashes; durable: term 1, vote n1, log 0...1@1
            > tick 3 10
            > campaign 2
              n2 becomes pre-candidate in term 1
            > deliver
            dropped: n2->n1 t2 pre-vote? last 1@1
            n2->n3 t2 pre-vote? last 1@1
            n3->n2 t2 pre-vote granted
              n2 becomes candidate in term 2
            dropped: n2->n1 t2 vote? last 1@1
            n2->n3 t2 vote? last 1@1
              n3 becomes follower in term 2
            n3->n2 t2 vote granted
              n2 becomes leader in term 2
              n2 writes append 2@2 LC
            dropped: n2->n1 t2 append prev 1@1 [2@2 LC] commit -1
            n2->n3 t2 append prev 1@1 [2@2 LC] commit -1
              n3 becomes follower in term 2, leader n2
            n3->n2 t2 append rejected prev 1 hint -1@0
            n2->n3 t2 append prev -1@0 [0...1@1 2@2 LC] commit -1
              n3 writes append 0...1@1 2@2 LC
            n3->n2 t2 append ok match 2
              n2 commits up to 2
            n2->n3 t2 append prev 2@2 [] commit 2
              n3 commits up to 2
            n3->n2 t2 append ok match 2
            > status
            n1 down
            n2 leader term 2 commit 2 log 0...1@1 2@2 LC
              n1: match -1 next 2 probe(paused: true) inflight 0
              n3: match 2 next 3 replicate inflight 0
            n3 follower term 2 commit 2 log 0...1@1 2@2 LC
            """)
    }

    /// Leadership transfer catches a lagging target up first, refuses proposals meanwhile, then sends TimeoutNow;
    /// the target campaigns at once and the others vote for it although they heard from the leader recently.
    func testLeadershipTransferCatchesTheTargetUpFirst() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > cut 1 3
            > propose 1 records=2
            n1 accepts 0...1
              n1 writes append 0...1@1
            > deliver
            n1->n2 t1 append prev -1@0 [0...1@1] commit -1
              n2 writes append 0...1@1
            dropped: n1->n3 t1 append prev -1@0 [0...1@1] commit -1
            n2->n1 t1 append ok match 1
              n1 commits up to 1
            n1->n2 t1 append prev 1@1 [] commit 1
              n2 commits up to 1
            dropped: n1->n3 t1 append prev 1@1 [] commit 1
            n2->n1 t1 append ok match 1
            > heal
            > transfer 1 to 3
            > propose 1 records=1
            n1 refuses: transferInProgress
            > deliver
            n1->n3 t1 append prev -1@0 [0...1@1] commit 1
              n3 writes append 0...1@1
              n3 commits up to 1
            n3->n1 t1 append ok match 1
            n1->n3 t1 timeout now
              n3 becomes candidate in term 2
            n3->n1 t2 vote? last 1@1 (transfer)
              n1 becomes follower in term 2
            n3->n2 t2 vote? last 1@1 (transfer)
              n2 becomes follower in term 2
            n1->n3 t2 vote granted
              n3 becomes leader in term 2
            n2->n3 t2 vote granted
            n3->n1 t2 append prev 1@1 [] commit 1
              n1 becomes follower in term 2, leader n3
            n3->n2 t2 append prev 1@1 [] commit 1
              n2 becomes follower in term 2, leader n3
            n1->n3 t2 append ok match 1
            n2->n3 t2 append ok match 1
            > status
            n1 follower term 2 commit 1 log 0...1@1
            n2 follower term 2 commit 1 log 0...1@1
            n3 leader term 2 commit 1 log 0...1@1
              n1: match 1 next 2 replicate inflight 0
              n2: match 1 next 2 replicate inflight 0
            """)
    }

    /// A leader keeps at most `inflight` appends outstanding per follower and sends more as answers arrive.
    func testInflightWindowBoundsPipelinedAppends() {
        checkScript(
            """
            > nodes 3 inflight=2
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > propose 1 records=1
            n1 accepts 0...0
              n1 writes append 0@1
            > propose 1 records=2
            n1 accepts 1...2
              n1 writes append 1...2@1
            > propose 1 records=3
            n1 accepts 3...5
              n1 writes append 3...5@1
            > propose 1 records=1
            n1 accepts 6...6
              n1 writes append 6@1
            > pending
            n1->n2 t1 append prev -1@0 [0@1] commit -1
            n1->n3 t1 append prev -1@0 [0@1] commit -1
            n1->n2 t1 append prev 0@1 [1...2@1] commit -1
            n1->n3 t1 append prev 0@1 [1...2@1] commit -1
            > deliver 2
            n1->n2 t1 append prev -1@0 [0@1] commit -1
              n2 writes append 0@1
            n1->n3 t1 append prev -1@0 [0@1] commit -1
              n3 writes append 0@1
            > pending
            n1->n2 t1 append prev 0@1 [1...2@1] commit -1
            n1->n3 t1 append prev 0@1 [1...2@1] commit -1
            n2->n1 t1 append ok match 0
            n3->n1 t1 append ok match 0
            > deliver
            n1->n2 t1 append prev 0@1 [1...2@1] commit -1
              n2 writes append 1...2@1
            n1->n3 t1 append prev 0@1 [1...2@1] commit -1
              n3 writes append 1...2@1
            n2->n1 t1 append ok match 0
              n1 commits up to 0
            n3->n1 t1 append ok match 0
            n2->n1 t1 append ok match 2
              n1 commits up to 2
            n3->n1 t1 append ok match 2
            n1->n2 t1 append prev 2@1 [3...5@1 6@1] commit 0
              n2 writes append 3...5@1 6@1
              n2 commits up to 0
            n1->n3 t1 append prev 2@1 [3...5@1 6@1] commit 0
              n3 writes append 3...5@1 6@1
              n3 commits up to 0
            n1->n2 t1 append prev 6@1 [] commit 2
              n2 commits up to 2
            n1->n3 t1 append prev 6@1 [] commit 2
              n3 commits up to 2
            n2->n1 t1 append ok match 6
              n1 commits up to 6
            n3->n1 t1 append ok match 6
            n2->n1 t1 append ok match 6
            n3->n1 t1 append ok match 6
            n1->n2 t1 append prev 6@1 [] commit 6
              n2 commits up to 6
            n1->n3 t1 append prev 6@1 [] commit 6
              n3 commits up to 6
            n2->n1 t1 append ok match 6
            n3->n1 t1 append ok match 6
            > status
            n1 leader term 1 commit 6 log 0@1 1...2@1 3...5@1 6@1
              n2: match 6 next 7 replicate inflight 0
              n3: match 6 next 7 replicate inflight 0
            n2 follower term 1 commit 6 log 0@1 1...2@1 3...5@1 6@1
            n3 follower term 1 commit 6 log 0@1 1...2@1 3...5@1 6@1
            """)
    }

    /// A follower that lacks entries the leader's retention removed has its log reset to the leader's log start,
    /// and normal appends follow.
    func testFollowerBehindTheLogStartIsResetToIt() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > cut 1 3
            > propose 1 records=2
            n1 accepts 0...1
              n1 writes append 0...1@1
            > propose 1 records=3
            n1 accepts 2...4
              n1 writes append 2...4@1
            > propose 1 records=1
            n1 accepts 5...5
              n1 writes append 5@1
            > deliver
            n1->n2 t1 append prev -1@0 [0...1@1] commit -1
              n2 writes append 0...1@1
            dropped: n1->n3 t1 append prev -1@0 [0...1@1] commit -1
            n1->n2 t1 append prev 1@1 [2...4@1] commit -1
              n2 writes append 2...4@1
            dropped: n1->n3 t1 append prev 1@1 [2...4@1] commit -1
            n1->n2 t1 append prev 4@1 [5@1] commit -1
              n2 writes append 5@1
            dropped: n1->n3 t1 append prev 4@1 [5@1] commit -1
            n2->n1 t1 append ok match 1
              n1 commits up to 1
            n2->n1 t1 append ok match 4
              n1 commits up to 4
            n2->n1 t1 append ok match 5
              n1 commits up to 5
            n1->n2 t1 append prev 5@1 [] commit 1
              n2 commits up to 1
            dropped: n1->n3 t1 append prev 5@1 [] commit 1
            n1->n2 t1 append prev 5@1 [] commit 4
              n2 commits up to 4
            dropped: n1->n3 t1 append prev 5@1 [] commit 4
            n1->n2 t1 append prev 5@1 [] commit 5
              n2 commits up to 5
            dropped: n1->n3 t1 append prev 5@1 [] commit 5
            n2->n1 t1 append ok match 5
            n2->n1 t1 append ok match 5
            n2->n1 t1 append ok match 5
            > compact 1 through 4
            n1 log [start 5 after @1] 5@1
            > compact 2 through 4
            n2 log [start 5 after @1] 5@1
            > heal
            > tick 1 10
            > deliver
            n1->n2 t1 heartbeat commit 5
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 5
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 5
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 5
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 5
            n1->n3 t1 heartbeat commit -1
            n1->n3 t1 reset log to start 5 after @1 commit 5
              n3 writes reset to start 5 after @1
              n3 commits up to 4
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n3->n1 t1 append ok match 4
            n1->n3 t1 append prev 4@1 [5@1] commit 5
              n3 writes append 5@1
              n3 commits up to 5
            n3->n1 t1 append ok match 5
            > status
            n1 leader term 1 commit 5 log [start 5 after @1] 5@1
              n2: match 5 next 6 replicate inflight 0
              n3: match 5 next 6 replicate inflight 0
            n2 follower term 1 commit 5 log [start 5 after @1] 5@1
            n3 follower term 1 commit 5 log [start 5 after @1] 5@1
            """)
    }

    /// A follower acknowledges only entries it has made durable, and a crash loses the rest.
    func testFollowerAcknowledgesOnlyDurableEntries() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > fsync manual
            > propose 1 records=2
            n1 accepts 0...1
              n1 writes append 0...1@1
            > deliver
            n1->n2 t1 append prev -1@0 [0...1@1] commit -1
              n2 writes append 0...1@1
            n1->n3 t1 append prev -1@0 [0...1@1] commit -1
              n3 writes append 0...1@1
            > status
            n1 leader term 1 commit -1 log 0...1@1
              n2: match -1 next 2 replicate inflight 1
              n3: match -1 next 2 replicate inflight 1
            n2 follower term 1 commit -1 log 0...1@1
            n3 follower term 1 commit -1 log 0...1@1
            > fsync 2
            > deliver
            n2->n1 t1 append ok match 1
            > status
            n1 leader term 1 commit -1 log 0...1@1
              n2: match 1 next 2 replicate inflight 0
              n3: match -1 next 2 replicate inflight 1
            n2 follower term 1 commit -1 log 0...1@1
            n3 follower term 1 commit -1 log 0...1@1
            > fsync 1
              n1 commits up to 1
            > deliver
            n1->n2 t1 append prev 1@1 [] commit 1
              n2 commits up to 1
            n1->n3 t1 append prev 1@1 [] commit 1
              n3 commits up to 1
            n2->n1 t1 append ok match 1
            > crash 3
            n3 crashes; durable: term 1, vote n1, log empty
            > restart 3
            > status
            n1 leader term 1 commit 1 log 0...1@1
              n2: match 1 next 2 replicate inflight 0
              n3: match -1 next 2 replicate inflight 1
            n2 follower term 1 commit 1 log 0...1@1
            n3 follower term 1 commit -1 log empty
            """)
    }

    /// A log reset is acknowledged only once durable: a crash before its fsync brings the old log back, and the
    /// leader must not believe the follower holds anything (a bug the simulation found, seed 5807 of 5 nodes).
    func testLogResetIsAcknowledgedOnlyOnceDurable() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > cut 1 3
            > propose 1 records=2
            n1 accepts 0...1
              n1 writes append 0...1@1
            > propose 1 records=3
            n1 accepts 2...4
              n1 writes append 2...4@1
            > deliver
            n1->n2 t1 append prev -1@0 [0...1@1] commit -1
              n2 writes append 0...1@1
            dropped: n1->n3 t1 append prev -1@0 [0...1@1] commit -1
            n1->n2 t1 append prev 1@1 [2...4@1] commit -1
              n2 writes append 2...4@1
            dropped: n1->n3 t1 append prev 1@1 [2...4@1] commit -1
            n2->n1 t1 append ok match 1
              n1 commits up to 1
            n2->n1 t1 append ok match 4
              n1 commits up to 4
            n1->n2 t1 append prev 4@1 [] commit 1
              n2 commits up to 1
            dropped: n1->n3 t1 append prev 4@1 [] commit 1
            n1->n2 t1 append prev 4@1 [] commit 4
              n2 commits up to 4
            dropped: n1->n3 t1 append prev 4@1 [] commit 4
            n2->n1 t1 append ok match 4
            n2->n1 t1 append ok match 4
            > compact 1 through 1
            n1 log [start 2 after @1] 2...4@1
            > compact 2 through 1
            n2 log [start 2 after @1] 2...4@1
            > heal
            > fsync manual
            > tick 1 10
            > deliver
            n1->n2 t1 heartbeat commit 4
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 4
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 4
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 4
            n1->n3 t1 heartbeat commit -1
            n1->n2 t1 heartbeat commit 4
            n1->n3 t1 heartbeat commit -1
            n1->n3 t1 reset log to start 2 after @1 commit 4
              n3 writes reset to start 2 after @1
              n3 commits up to 1
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            n2->n1 t1 heartbeat ok
            n3->n1 t1 heartbeat ok
            > crash 3
            n3 crashes; durable: term 1, vote n1, log empty
            > restart 3
            > status
            n1 leader term 1 commit 4 log [start 2 after @1] 2...4@1
              n2: match 4 next 5 replicate inflight 0
              n3: match -1 next 0 resetLog(start: 2) inflight 0
            n2 follower term 1 commit 4 log [start 2 after @1] 2...4@1
            n3 follower term 1 commit -1 log empty
            """)
    }

    /// A leader cut off while the others elect a new one learns the newer term from the first answer it gets
    /// after the partition heals, and steps down.
    func testDeposedLeaderStepsDownOnANewerTerm() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > deliver
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            n1->n3 t1 vote? last -1@0
              n3 becomes follower in term 1
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote granted
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > cut 1 2
            > cut 1 3
            > tick 3 10
            > campaign 2
              n2 becomes pre-candidate in term 1
            > deliver
            dropped: n2->n1 t2 pre-vote? last -1@0
            n2->n3 t2 pre-vote? last -1@0
            n3->n2 t2 pre-vote granted
              n2 becomes candidate in term 2
            dropped: n2->n1 t2 vote? last -1@0
            n2->n3 t2 vote? last -1@0
              n3 becomes follower in term 2
            n3->n2 t2 vote granted
              n2 becomes leader in term 2
            dropped: n2->n1 t2 append prev -1@0 [] commit -1
            n2->n3 t2 append prev -1@0 [] commit -1
              n3 becomes follower in term 2, leader n2
            n3->n2 t2 append ok match -1
            > heal
            > tick 1 2
            > deliver
            n1->n2 t1 heartbeat commit -1
            n1->n3 t1 heartbeat commit -1
            n2->n1 t2 heartbeat ok
              n1 becomes follower in term 2
            n3->n1 t2 heartbeat ok
            > status
            n1 follower term 2 commit -1 log empty
            n2 leader term 2 commit -1 log empty
              n1: match -1 next 0 probe(paused: true) inflight 0
              n3: match -1 next 0 replicate inflight 0
            n3 follower term 2 commit -1 log empty
            """)
    }

    /// A vote is durable before it is sent: a voter that crashes and restarts still refuses a second candidate
    /// of the same term.
    func testVoteSurvivesACrash() {
        checkScript(
            """
            > nodes 3
            > campaign 1
              n1 becomes pre-candidate in term 0
            > campaign 3
              n3 becomes pre-candidate in term 0
            > deliver 8
            n1->n2 t1 pre-vote? last -1@0
            n1->n3 t1 pre-vote? last -1@0
            n3->n1 t1 pre-vote? last -1@0
            n3->n2 t1 pre-vote? last -1@0
            n2->n1 t1 pre-vote granted
              n1 becomes candidate in term 1
            n3->n1 t1 pre-vote granted
            n1->n3 t1 pre-vote granted
              n3 becomes candidate in term 1
            n2->n3 t1 pre-vote granted
            > pending
            n1->n2 t1 vote? last -1@0
            n1->n3 t1 vote? last -1@0
            n3->n1 t1 vote? last -1@0
            n3->n2 t1 vote? last -1@0
            > deliver 1
            n1->n2 t1 vote? last -1@0
              n2 becomes follower in term 1
            > crash 2
            n2 crashes; durable: term 1, vote n1, log empty
            > restart 2
            > deliver
            n1->n3 t1 vote? last -1@0
            n3->n1 t1 vote? last -1@0
            n3->n2 t1 vote? last -1@0
            n2->n1 t1 vote granted
              n1 becomes leader in term 1
            n3->n1 t1 vote refused
            n1->n3 t1 vote refused
            n2->n3 t1 vote refused
              n3 becomes follower in term 1
            n1->n2 t1 append prev -1@0 [] commit -1
              n2 becomes follower in term 1, leader n1
            n1->n3 t1 append prev -1@0 [] commit -1
              n3 becomes follower in term 1, leader n1
            n2->n1 t1 append ok match -1
            n3->n1 t1 append ok match -1
            > status
            n1 leader term 1 commit -1 log empty
              n2: match -1 next 0 replicate inflight 0
              n3: match -1 next 0 replicate inflight 0
            n2 follower term 1 commit -1 log empty
            n3 follower term 1 commit -1 log empty
            """)
    }
}
