// Well-formed but wrong peer messages: each is dropped with its reason, changes nothing, and never traps.
import XCTest

final class InvalidMessageTests: XCTestCase {
    /// A message from a node outside the group, or claiming to come from the receiver itself, is dropped.
    func testMessagesFromOutsideTheGroupAreDropped() {
        checkScript(
            """
            > nodes 3
            > inject n7->n1 t1 heartbeat commit -1
            n7->n1 t1 heartbeat commit -1
              n1 drops it: from n7, not another voter of the group
            > inject n1->n1 t1 heartbeat commit -1
            n1->n1 t1 heartbeat commit -1
              n1 drops it: from n1, not another voter of the group
            > pending
            (none)
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 0 commit -1 log empty
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// Terms above `Term.max` and indexes outside -1...`LogIndex.max` are dropped without touching the term.
    func testAbsurdNumbersAreDropped() {
        checkScript(
            """
            > nodes 3
            > inject n2->n1 t2147483648 heartbeat commit -1
            n2->n1 t2147483648 heartbeat commit -1
              n1 drops it: out of range: term 2147483648
            > inject n2->n1 t1 heartbeat commit -2
            n2->n1 t1 heartbeat commit -2
              n1 drops it: out of range: commit -2
            > inject n2->n1 t1 append ok match 9223372036854775807
            n2->n1 t1 append ok match 9223372036854775807
              n1 drops it: out of range: match 9223372036854775807
            > inject n2->n1 t1 pre-vote? last -5@0
            n2->n1 t1 pre-vote? last -5@0
              n1 drops it: out of range: lastIndex -5
            > inject n2->n1 t1 reset log to start -1 after @0 commit -1
            n2->n1 t1 reset log to start -1 after @0 commit -1
              n1 drops it: out of range: start -1
            > pending
            (none)
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 0 commit -1 log empty
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// An append whose entries do not chain from its previous index, go back in term, carry a term above the
    /// message's, or hold a payload that does not cover the range, is dropped: nothing is written or answered.
    func testAppendWithEntriesThatDoNotChainIsDropped() {
        checkScript(
            """
            > nodes 3
            > log 2 1x2 1x3 term=1
            > inject n1->n2 t1 append prev 4@1 [6...7@1] commit -1
            n1->n2 t1 append prev 4@1 [6...7@1] commit -1
              n2 drops it: malformed: entry 6...7 does not follow 4
            > inject n1->n2 t1 append prev 4@1 [5...6@1 6...8@1] commit -1
            n1->n2 t1 append prev 4@1 [5...6@1 6...8@1] commit -1
              n2 drops it: malformed: entry 6...8 does not follow 6
            > inject n1->n2 t1 append prev 4@1 [7...5@1] commit -1
            n1->n2 t1 append prev 4@1 [7...5@1] commit -1
              n2 drops it: malformed: entry 7...5 does not follow 4
            > inject n1->n2 t1 append prev 4@1 [5@2] commit -1
            n1->n2 t1 append prev 4@1 [5@2] commit -1
              n2 drops it: malformed: entry 5...5 of term 2 after term 1, in a message of term 1
            > inject n1->n2 t2 append prev 4@1 [5@2 6@1] commit -1
            n1->n2 t2 append prev 4@1 [5@2 6@1] commit -1
              n2 drops it: malformed: entry 6...6 of term 1 after term 2, in a message of term 2
            > inject n1->n2 t1 append prev 4@2 [5@2] commit -1
            n1->n2 t1 append prev 4@2 [5@2] commit -1
              n2 drops it: malformed: prev term 2 above the message term
            > inject n1->n2 t1 append prev 4@1 [5...6@1x3] commit -1
            n1->n2 t1 append prev 4@1 [5...6@1] commit -1
              n2 drops it: malformed: entry 5...6 holds 3 records
            > inject n1->n2 t1 append prev 4@1 [5...6@0] commit -1
            n1->n2 t1 append prev 4@1 [5...6@0] commit -1
              n2 drops it: malformed: entry 5...6 of term 0 after term 1, in a message of term 1
            > pending
            (none)
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 1 commit -1 log 0...1@1 2...4@1
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// One leader per term: an append, heartbeat or reset from a second "leader" of the receiver's term — to
    /// the leader itself, or to a follower that knows the real one — is dropped (it used to trap), and so is a
    /// TimeoutNow from anyone but the follower's leader.
    func testSecondLeaderInTheSameTermIsDropped() {
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
            > inject n2->n1 t1 append prev -1@0 [] commit -1
            n2->n1 t1 append prev -1@0 [] commit -1
              n1 drops it: n2 claims a leadership this node knows to be another's
            > inject n2->n1 t1 heartbeat commit -1
            n2->n1 t1 heartbeat commit -1
              n1 drops it: n2 claims a leadership this node knows to be another's
            > inject n2->n3 t1 heartbeat commit -1
            n2->n3 t1 heartbeat commit -1
              n3 drops it: n2 claims a leadership this node knows to be another's
            > inject n2->n3 t1 reset log to start 0 after @0 commit -1
            n2->n3 t1 reset log to start 0 after @0 commit -1
              n3 drops it: n2 claims a leadership this node knows to be another's
            > inject n2->n3 t1 timeout now
            n2->n3 t1 timeout now
              n3 drops it: n2 claims a leadership this node knows to be another's
            > pending
            (none)
            > status
            n1 leader term 1 commit -1 log empty
              n2: match -1 next 0 replicate inflight 0
              n3: match -1 next 0 replicate inflight 0
            n2 follower term 1 commit -1 log empty
            n3 follower term 1 commit -1 log empty
            """)
    }

    /// A vote granted in a term the node never campaigned in, or a pre-vote for a term it never asked about, is
    /// dropped without adopting the term; a refusal from a higher term is legitimate and is adopted.
    func testVoteForATermNeverCampaignedInIsDropped() {
        checkScript(
            """
            > nodes 3
            > inject n2->n1 t5 vote granted
            n2->n1 t5 vote granted
              n1 drops it: malformed: a vote granted in term 5, above this node's term 0
            > inject n2->n1 t7 pre-vote granted
            n2->n1 t7 pre-vote granted
              n1 drops it: malformed: a pre-vote granted for term 7, never asked for (term 0)
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 0 commit -1 log empty
            n3 follower term 0 commit -1 log empty
            > inject n2->n1 t5 vote refused
            n2->n1 t5 vote refused
              n1 becomes follower in term 5
            > status
            n1 follower term 5 commit -1 log empty
            n2 follower term 0 commit -1 log empty
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// A log reset whose start contradicts the receiver's committed entries is dropped (it used to trap), and so
    /// is one whose start lies above the leader's own commit index.
    func testResetThatContradictsCommittedEntriesIsDropped() {
        checkScript(
            """
            > nodes 3
            > log 2 1x2 1x3 term=1
            > inject n1->n2 t1 heartbeat commit 4
            n1->n2 t1 heartbeat commit 4
              n2 becomes follower in term 1, leader n1
              n2 commits up to 4
            > inject n1->n2 t2 reset log to start 3 after @2 commit 4
            n1->n2 t2 reset log to start 3 after @2 commit 4
              n2 drops it: contradicts the log: a reset to start 3 after @2 contradicts committed 2@1
            > inject n1->n2 t1 reset log to start 10 after @1 commit 4
            n1->n2 t1 reset log to start 10 after @1 commit 4
              n2 drops it: malformed: log start 10 above the leader's commit index 4 + 1
            > drop
            > inject n1->n2 t1 reset log to start 10 after @1 commit 9
            n1->n2 t1 reset log to start 10 after @1 commit 9
              n2 writes reset to start 10 after @1
              n2 commits up to 9
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 1 commit 9 log [start 10 after @1] empty
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// An append that would cut or match one of the receiver's batches in its middle, or cover two of them with
    /// one, is dropped: entries of one term are written once by its one leader, so their boundaries cannot
    /// differ (the cut used to reach the log, which refuses a truncation inside a batch, and the replica stopped).
    func testAppendThatSplitsABatchIsDropped() {
        checkScript(
            """
            > nodes 3
            > log 2 1x2 1x3 term=1
            > inject n1->n2 t2 append prev 3@1 [4@2] commit -1
            n1->n2 t2 append prev 3@1 [4@2] commit -1
              n2 drops it: contradicts the log: 3@1 is inside one of this node's batches
            > inject n1->n2 t2 append prev 1@1 [2...3@1 4@2] commit -1
            n1->n2 t2 append prev 1@1 [2...3@1 4@2] commit -1
              n2 drops it: contradicts the log: batch 2...3@1 splits one of this node's
            > inject n1->n2 t2 append prev -1@0 [0...4@1 5@2] commit -1
            n1->n2 t2 append prev -1@0 [0...4@1 5@2] commit -1
              n2 drops it: contradicts the log: batch 0...4@1 splits one of this node's
            > pending
            (none)
            > inject n1->n2 t2 append prev 1@1 [2...4@1 5@2] commit -1
            n1->n2 t2 append prev 1@1 [2...4@1 5@2] commit -1
              n2 becomes follower in term 2, leader n1
              n2 writes append 5@2
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 2 commit -1 log 0...1@1 2...4@1 5@2
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// An acknowledgement or a rejection of entries beyond the leader's log is dropped; the follower's progress
    /// stays as it was.
    func testAnswersAboutEntriesTheLeaderNeverHadAreDropped() {
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
            > inject n2->n1 t1 append ok match 5
            n2->n1 t1 append ok match 5
              n1 drops it: beyond the log: match 5 above this leader's last index -1
            > inject n2->n1 t1 append rejected prev 7 hint 3@1
            n2->n1 t1 append rejected prev 7 hint 3@1
              n1 drops it: beyond the log: a rejection of 7, above this leader's last index -1
            > inject n2->n1 t1 append rejected prev -1 hint 3@1
            n2->n1 t1 append rejected prev -1 hint 3@1
              n1 drops it: malformed: hint 3@1 for a rejection of -1
            > pending
            (none)
            > status
            n1 leader term 1 commit -1 log empty
              n2: match -1 next 0 replicate inflight 0
              n3: match -1 next 0 replicate inflight 0
            n2 follower term 1 commit -1 log empty
            n3 follower term 1 commit -1 log empty
            """)
    }

    /// A follower commits at most what it has checked against the leader's log, whatever commit index the
    /// leader sends.
    func testCommitNeverPassesWhatTheLeaderSent() {
        checkScript(
            """
            > nodes 3
            > log 2 1x2 1x3 2x2 term=2
            > inject n1->n2 t2 append prev 1@1 [2...4@1] commit 9
            n1->n2 t2 append prev 1@1 [2...4@1] commit 9
              n2 becomes follower in term 2, leader n1
              n2 commits up to 4
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 2 commit 4 log 0...1@1 2...4@1 5...6@2
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// A peer may push a node to `Term.max`; the node then stays a follower rather than campaign past it (a
    /// term beyond cannot be stored as a batch's partitionLeaderEpoch).
    func testNodeAtTheLargestTermNoLongerCampaigns() {
        checkScript(
            """
            > nodes 3
            > inject n2->n1 t2147483647 heartbeat commit -1
            n2->n1 t2147483647 heartbeat commit -1
              n1 becomes follower in term 2147483647, leader n2
            > tick 1 60
            > campaign 1
            > status
            n1 follower term 2147483647 commit -1 log empty
            n2 follower term 0 commit -1 log empty
            n3 follower term 0 commit -1 log empty
            """)
    }

    /// An append whose entries below the receiver's commit index differ from its committed ones is dropped: a
    /// leader holds every committed entry. (It used to skip them and append entries of an older term after the
    /// committed prefix, which the log's epoch cache refuses with a trap; found by the fuzz test, seed 28.)
    func testAppendThatContradictsTheCommittedPrefixIsDropped() {
        checkScript(
            """
            > nodes 3
            > log 2 3x2 3x3 term=3
            > inject n1->n2 t3 heartbeat commit 4
            n1->n2 t3 heartbeat commit 4
              n2 becomes follower in term 3, leader n1
              n2 commits up to 4
            > inject n1->n2 t4 append prev -1@0 [0...1@1 2...4@1 5@1] commit 5
            n1->n2 t4 append prev -1@0 [0...1@1 2...4@1 5@1] commit 5
              n2 drops it: contradicts the log: 1@1 differs from committed 1@3
            > inject n1->n2 t3 append prev -1@0 [0...1@3 2...4@3 5@3] commit 5
            n1->n2 t3 append prev -1@0 [0...1@3 2...4@3 5@3] commit 5
              n2 writes append 5@3
              n2 commits up to 5
            > status
            n1 follower term 0 commit -1 log empty
            n2 follower term 3 commit 5 log 0...1@3 2...4@3 5@3
            n3 follower term 0 commit -1 log empty
            """)
    }
}
