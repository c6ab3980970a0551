import ConsumerGroups
import XCTest

/// Group behaviour as scripts with expected transcripts (see `ScenarioRunner` for the commands).
final class ScenarioTests: XCTestCase {
    /// A lone consumer waits out the initial rebalance delay, leads generation 1 and heartbeats in Stable.
    func testSingleMemberJoinsAfterInitialDelay() {
        assertScenario(
            #"""
            > join c1 protocols=range
            > tick 2999
            > tick 1
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1]
            > sync c1 member=c1-1 gen=1 assign=c1-1:t0+t1
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:t0+t1]
            c1: sync assignment=t0+t1
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat NONE
            > describe c1
            c1: describe
              g Stable type=consumer protocol=range members=[c1-1:t0+t1]
            > list c1
            c1: list g(consumer)
            """#
        )
    }

    /// Members arriving during the initial delay extend it; all three join generation 1 and the leader's
    /// assignment releases the parked followers; a fourth member starts generation 2.
    func testThreeMembersJoinThenAFourthRebalances() {
        assertScenario(
            #"""
            # The delay is 3 s, extended by 3 s at a time while members arrive, within the rebalance timeout (10 s).
            > join c1
            > tick 2000
            > join c2
            # At 3 s c2 has arrived: extended to 6 s.
            > tick 1000
            > join c3
            # At 6 s c3 has arrived: extended to 9 s; nobody else comes, so the join completes then.
            > tick 3000
            > tick 3000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2,c3-3]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-2
            c3: join gen=1 protocol=range leader=c1-1 member=c3-3
            # Followers are parked until the leader's assignment is committed.
            > sync c2 member=c2-2 gen=1
            > sync c3 member=c3-3 gen=1
            > sync c1 member=c1-1 gen=1 assign=c1-1:p0+p1,c2-2:p2+p3,c3-3:p4+p5
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0+p1,c2-2:p2+p3,c3-3:p4+p5]
            c1: sync assignment=p0+p1
            c2: sync assignment=p2+p3
            c3: sync assignment=p4+p5
            # A fourth member: no initial delay outside Empty; the others learn from their heartbeats.
            > join c4
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat REBALANCE_IN_PROGRESS
            > heartbeat c2 member=c2-2 gen=1
            c2: heartbeat REBALANCE_IN_PROGRESS
            > join c1 member=c1-1
            > join c2 member=c2-2
            > join c3 member=c3-3
            c1: join gen=2 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2,c3-3,c4-4]
            c2: join gen=2 protocol=range leader=c1-1 member=c2-2
            c3: join gen=2 protocol=range leader=c1-1 member=c3-3
            c4: join gen=2 protocol=range leader=c1-1 member=c4-4
            > sync c2 member=c2-2 gen=2
            > sync c1 member=c1-1 gen=2 assign=c1-1:p0+p1,c2-2:p2,c3-3:p3+p4,c4-4:p5
            append: metadata g gen=2 protocol=range leader=c1-1 members=[c1-1:p0+p1,c2-2:p2,c3-3:p3+p4,c4-4:p5]
            c1: sync assignment=p0+p1
            c2: sync assignment=p2
            > sync c3 member=c3-3 gen=2
            c3: sync assignment=p3+p4
            > sync c4 member=c4-4 gen=2
            c4: sync assignment=p5
            # A request from the previous generation is stale.
            > heartbeat c4 member=c4-4 gen=1
            c4: heartbeat ILLEGAL_GENERATION
            > sync c4 member=c4-4 gen=1
            c4: sync error=ILLEGAL_GENERATION
            > describe c1
            c1: describe
              g Stable type=consumer protocol=range members=[c1-1:p0+p1,c2-2:p2,c3-3:p3+p4,c4-4:p5]
            """#
        )
    }

    /// A member that leaves triggers a rebalance among the others; the last one leaving empties the group.
    func testMembersLeave() {
        assertScenario(
            #"""
            > join c1
            > join c2
            # c2 arrived during the initial delay, which is therefore extended once: the join completes at 6 s.
            > tick 6000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-2
            > sync c1 member=c1-1 gen=1 assign=c1-1:p0,c2-2:p1
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0,c2-2:p1]
            c1: sync assignment=p0
            > sync c2 member=c2-2 gen=1
            c2: sync assignment=p1
            > leave c2 member=c2-2
            c2: leave NONE
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat REBALANCE_IN_PROGRESS
            > join c1 member=c1-1
            c1: join gen=2 protocol=range leader=c1-1 member=c1-1 members=[c1-1]
            > sync c1 member=c1-1 gen=2 assign=c1-1:p0+p1
            append: metadata g gen=2 protocol=range leader=c1-1 members=[c1-1:p0+p1]
            c1: sync assignment=p0+p1
            > leave c1 member=c1-1
            c1: leave NONE
            append: metadata g gen=3 protocol=- leader=- members=[]
            > leave c1 member=c1-1
            c1: leave UNKNOWN_MEMBER_ID
            > describe c1
            c1: describe
              g Empty type=consumer protocol= members=[]
            """#
        )
    }

    /// A member that stops heartbeating is removed when its session times out, and the group rebalances;
    /// one that does not rejoin within the rebalance timeout is dropped from the next generation.
    func testSessionExpiryAndRebalanceTimeout() {
        assertScenario(
            #"""
            > join c1 session=10000
            > join c2 session=10000
            > join c3 session=60000 rebalance=30000
            > tick 6000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2,c3-3]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-2
            c3: join gen=1 protocol=range leader=c1-1 member=c3-3
            > sync c1 member=c1-1 gen=1 assign=c1-1:p0,c2-2:p1,c3-3:p2
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0,c2-2:p1,c3-3:p2]
            c1: sync assignment=p0
            > sync c2 member=c2-2 gen=1
            c2: sync assignment=p1
            > sync c3 member=c3-3 gen=1
            c3: sync assignment=p2
            > tick 6000
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat NONE
            > heartbeat c3 member=c3-3 gen=1
            c3: heartbeat NONE
            # c2 stays silent: its session ends 10 s after its last contact (the sync at 6 s).
            > tick 3999
            > tick 1
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat REBALANCE_IN_PROGRESS
            > heartbeat c3 member=c3-3 gen=1
            c3: heartbeat REBALANCE_IN_PROGRESS
            > join c1 member=c1-1
            # c3 never rejoins: the rebalance timeout (30 s, the largest of the members') drops it.
            > tick 29999
            > tick 1
            c1: join gen=2 protocol=range leader=c1-1 member=c1-1 members=[c1-1]
            > sync c1 member=c1-1 gen=2 assign=c1-1:p0+p1+p2
            append: metadata g gen=2 protocol=range leader=c1-1 members=[c1-1:p0+p1+p2]
            c1: sync assignment=p0+p1+p2
            > dump
            g: Stable gen=2 protocol=range leader=c1-1
              members=[c1-1:p0+p1+p2]
              offsets=[]
            """#
        )
    }

    /// When the leader dies, the survivors rejoin and the first of them leads the next generation.
    func testLeaderFailure() {
        assertScenario(
            #"""
            > join c1
            > join c2
            > join c3
            > tick 6000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2,c3-3]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-2
            c3: join gen=1 protocol=range leader=c1-1 member=c3-3
            > sync c2 member=c2-2 gen=1
            > sync c3 member=c3-3 gen=1
            > sync c1 member=c1-1 gen=1 assign=c1-1:p0,c2-2:p1,c3-3:p2
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0,c2-2:p1,c3-3:p2]
            c1: sync assignment=p0
            c2: sync assignment=p1
            c3: sync assignment=p2
            > tick 5000
            > heartbeat c2 member=c2-2 gen=1
            c2: heartbeat NONE
            > heartbeat c3 member=c3-3 gen=1
            c3: heartbeat NONE
            # c1, the leader, is gone: its session ends at 16 s.
            > tick 5000
            > heartbeat c2 member=c2-2 gen=1
            c2: heartbeat REBALANCE_IN_PROGRESS
            > join c3 member=c3-3
            > join c2 member=c2-2
            c2: join gen=2 protocol=range leader=c2-2 member=c2-2 members=[c2-2,c3-3]
            c3: join gen=2 protocol=range leader=c2-2 member=c3-3
            > sync c3 member=c3-3 gen=2
            > sync c2 member=c2-2 gen=2 assign=c2-2:p0+p1,c3-3:p2
            append: metadata g gen=2 protocol=range leader=c2-2 members=[c2-2:p0+p1,c3-3:p2]
            c2: sync assignment=p0+p1
            c3: sync assignment=p2
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat UNKNOWN_MEMBER_ID
            """#
        )
    }

    /// A static member that restarts gets a new member id and its assignment back with no rebalance; its old
    /// member id is fenced; a restart that changes the protocol choice does rebalance.
    func testStaticMemberRestartsWithoutRebalance() {
        assertScenario(
            #"""
            > join c1 instance=i1 protocols=range,roundrobin
            > join c2 instance=i2 protocols=range,roundrobin
            > join c3 instance=i3 protocols=range,roundrobin
            > tick 6000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2,c3-3]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-2
            c3: join gen=1 protocol=range leader=c1-1 member=c3-3
            > sync c1 member=c1-1 gen=1 instance=i1 assign=c1-1:p0,c2-2:p1,c3-3:p2
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0,c2-2:p1,c3-3:p2]
            c1: sync assignment=p0
            > sync c2 member=c2-2 gen=1 instance=i2
            c2: sync assignment=p1
            > sync c3 member=c3-3 gen=1 instance=i3
            c3: sync assignment=p2
            # c2 restarts (no LeaveGroup: static members do not send one) and rejoins with its instance id.
            > join c2 instance=i2 protocols=roundrobin,range
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0,c2-4:p1,c3-3:p2]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-4
            > sync c2 member=c2-4 gen=1 instance=i2
            c2: sync assignment=p1
            > heartbeat c2 member=c2-4 gen=1
            c2: heartbeat NONE
            > describe c1
            c1: describe
              g Stable type=consumer protocol=range members=[c1-1:p0,c2-4:p1,c3-3:p2]
            # The old incarnation is fenced.
            > sync c2 member=c2-2 gen=1 instance=i2
            c2: sync error=FENCED_INSTANCE_ID
            > join c2 member=c2-2 instance=i2
            c2: join error=FENCED_INSTANCE_ID member=c2-2
            > heartbeat c2 member=c2-2 gen=1
            c2: heartbeat UNKNOWN_MEMBER_ID
            # The leader restarts too: no rebalance; it stays the leader and gets the member list.
            > join c1 instance=i1 protocols=range,roundrobin
            append: metadata g gen=1 protocol=range leader=c1-5 members=[c1-5:p0,c2-4:p1,c3-3:p2]
            c1: join gen=1 protocol=range leader=c1-5 member=c1-5 members=[c1-5,c2-4,c3-3]
            > heartbeat c3 member=c3-3 gen=1
            c3: heartbeat NONE
            # c3 restarts preferring roundrobin: the vote would now pick roundrobin, so this time the group rebalances.
            > join c3 instance=i3 protocols=roundrobin,range
            > heartbeat c2 member=c2-4 gen=1
            c2: heartbeat REBALANCE_IN_PROGRESS
            > join c1 member=c1-5 instance=i1 protocols=range,roundrobin
            > join c2 member=c2-4 instance=i2 protocols=roundrobin,range
            c1: join gen=2 protocol=roundrobin leader=c1-5 member=c1-5 members=[c1-5,c2-4,c3-6]
            c2: join gen=2 protocol=roundrobin leader=c1-5 member=c2-4
            c3: join gen=2 protocol=roundrobin leader=c1-5 member=c3-6
            > dump
            g: CompletingRebalance gen=2 protocol=roundrobin leader=c1-5
              members=[c1-5(i1):p0,c2-4(i2):p1,c3-6(i3):p2]
              offsets=[]
            """#
        )
    }

    /// The protocol is chosen by vote among those every member supports; a member with no protocol in
    /// common, another protocol type, or a session timeout out of bounds is refused.
    func testProtocolVoteAndRefusals() {
        assertScenario(
            #"""
            > join c1 protocols=range,roundrobin
            > join c2 protocols=roundrobin
            > join c3 protocols=sticky
            c3: join error=INCONSISTENT_GROUP_PROTOCOL member=
            > join c4 type=connect protocols=range
            c4: join error=INCONSISTENT_GROUP_PROTOCOL member=
            > join c5 session=5999
            c5: join error=INVALID_SESSION_TIMEOUT member=
            > join c6 session=1800001
            c6: join error=INVALID_SESSION_TIMEOUT member=
            > join c7 protocols=roundrobin,range
            > tick 6000
            c1: join gen=1 protocol=roundrobin leader=c1-1 member=c1-1 members=[c1-1,c2-2,c7-3]
            c2: join gen=1 protocol=roundrobin leader=c1-1 member=c2-2
            c7: join gen=1 protocol=roundrobin leader=c1-1 member=c7-3
            > dump
            g: CompletingRebalance gen=1 protocol=roundrobin leader=c1-1
              members=[c1-1,c2-2,c7-3]
              offsets=[]
            > join c8 group= protocols=range
            c8: join error=INVALID_GROUP_ID member=
            > sync c9 group=nope member=x gen=1
            c9: sync error=UNKNOWN_MEMBER_ID
            > heartbeat c9 group=nope member=x gen=1
            c9: heartbeat UNKNOWN_MEMBER_ID
            > join c9 group=nope member=x
            c9: join error=UNKNOWN_MEMBER_ID member=x
            """#
        )
    }

    /// Offset commits follow Kafka's rules: standalone commits only while Empty, known members only, the
    /// current generation only, none during CompletingRebalance; the reply waits for the records' commit.
    func testOffsetCommitRules() {
        assertScenario(
            #"""
            # Standalone commits create an Empty group; a commit to an unknown group with a generation is stale.
            > commit a offsets=t:0=5,t:1=7
            append: offset g t-0=5
            append: offset g t-1=7
            a: commit t-0=NONE t-1=NONE
            > commit a group=h gen=3 member=m offsets=t:0=1
            a: commit t-0=ILLEGAL_GENERATION
            > join c1
            > tick 3000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1]
            > commit a offsets=t:0=6
            a: commit t-0=UNKNOWN_MEMBER_ID
            > commit c1 member=c1-1 gen=1 offsets=t:0=6
            c1: commit t-0=REBALANCE_IN_PROGRESS
            > sync c1 member=c1-1 gen=1 assign=c1-1:t0+t1
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:t0+t1]
            c1: sync assignment=t0+t1
            > commit c1 member=c1-1 gen=2 offsets=t:0=6
            c1: commit t-0=ILLEGAL_GENERATION
            > commit c1 member=nobody gen=1 offsets=t:0=6
            c1: commit t-0=UNKNOWN_MEMBER_ID
            # The reply waits until the records are committed.
            > hold
            > commit c1 member=c1-1 gen=1 offsets=t:0=8,t:1=9
            append (held): offset g t-0=8
            append (held): offset g t-1=9
            > release
            committed 2 record(s) of g
            c1: commit t-0=NONE t-1=NONE
            # Commits of the previous generation are fine while PreparingRebalance, not while CompletingRebalance.
            > join c2
            > commit c1 member=c1-1 gen=1 offsets=t:0=10
            append: offset g t-0=10
            c1: commit t-0=NONE
            > join c1 member=c1-1
            c1: join gen=2 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2]
            c2: join gen=2 protocol=range leader=c1-1 member=c2-2
            > commit c1 member=c1-1 gen=2 offsets=t:0=11
            c1: commit t-0=REBALANCE_IN_PROGRESS
            > commit c1 member=c1-1 gen=1 offsets=t:0=11
            c1: commit t-0=ILLEGAL_GENERATION
            > fetch a
            a: fetch t-0=10 t-1=9
            # Negative partitions and metadata beyond offset.metadata.max.bytes (4096; error 12) are refused.
            > commit a group=other offsets=t:-1=3,t:0=4
            append: offset other t-0=4
            a: commit t--1=UNKNOWN_TOPIC_OR_PARTITION t-0=NONE
            > commit a group=other offsets=t:1=5 metadata=x*4097
            a: commit t-1=UNKNOWN(12)
            > commit a group=other offsets=t:1=5 metadata=x*4096
            append: offset other t-1=5
            a: commit t-1=NONE
            > fetch a group=other
            a: fetch t-0=4 t-1=5
            """#
        )
    }

    /// OffsetFetch returns every committed offset, or the partitions asked for with -1 where none exists.
    func testOffsetFetch() {
        assertScenario(
            #"""
            > commit a offsets=t:1=7,t:0=5,u:3=1
            append: offset g t-1=7
            append: offset g t-0=5
            append: offset g u-3=1
            a: commit t-1=NONE t-0=NONE u-3=NONE
            > fetch a
            a: fetch t-0=5 t-1=7 u-3=1
            > fetch a partitions=t:0,t:2,u:3,v:0
            a: fetch t-0=5 t-2=-1 u-3=1 v-0=-1
            > fetch a group=unknown
            a: fetch (none)
            > fetch a group=unknown partitions=t:0
            a: fetch t-0=-1
            """#
        )
    }

    /// DescribeGroups shows state, protocol and members (assignments only when Stable); ListGroups lists all.
    func testDescribeAndList() {
        assertScenario(
            #"""
            > list a
            a: list (none)
            > commit a group=standalone offsets=t:0=1
            append: offset standalone t-0=1
            a: commit t-0=NONE
            > join c1
            > describe a groups=g,standalone,missing
            a: describe
              g PreparingRebalance type=consumer protocol= members=[c1-1]
              standalone Empty type= protocol= members=[]
              missing Dead type= protocol= members=[]
            > tick 3000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1]
            > describe a
            a: describe
              g CompletingRebalance type=consumer protocol= members=[c1-1]
            > sync c1 member=c1-1 gen=1 assign=c1-1:t0
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:t0]
            c1: sync assignment=t0
            > describe a
            a: describe
              g Stable type=consumer protocol=range members=[c1-1:t0]
            > list a
            a: list g(consumer) standalone()
            """#
        )
    }

    /// Offsets of an Empty group expire after the retention (7 days) with tombstones, and the group goes;
    /// offsets of a live group do not expire.
    func testOffsetsOfEmptyGroupsExpire() {
        assertScenario(
            #"""
            > commit a group=h offsets=t:0=5
            append: offset h t-0=5
            a: commit t-0=NONE
            > join c1
            > tick 3000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1]
            > sync c1 member=c1-1 gen=1 assign=c1-1:t0
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:t0]
            c1: sync assignment=t0
            > commit c1 member=c1-1 gen=1 offsets=t:0=9
            append: offset g t-0=9
            c1: commit t-0=NONE
            # A week passes: c1's session ends (g becomes Empty, keeps its offsets); h's offsets expire, h goes.
            > tick 604800000
            append: metadata g gen=2 protocol=- leader=- members=[]
            append: offset h t-0 tombstone
            append: metadata h tombstone
            > dump
            g: Empty gen=2 protocol=- leader=-
              members=[]
              offsets=[t-0=9]
            # g's offsets expire a week after g became Empty, at the first expiry check after that.
            > tick 604799999
            > dump
            g: Empty gen=2 protocol=- leader=-
              members=[]
              offsets=[t-0=9]
            > tick 600000
            append: offset g t-0 tombstone
            append: metadata g tombstone
            > dump
            > list a
            a: list (none)
            """#
        )
    }

    /// A new coordinator replaying the partition gets every group back with its generation, leader, members,
    /// assignments and offsets; members carry on with heartbeats; while loading, requests are refused.
    func testReloadRebuildsTheSameState() {
        assertScenario(
            #"""
            > join c1 instance=i1
            > join c2
            > tick 6000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-2
            > sync c1 member=c1-1 gen=1 instance=i1 assign=c1-1:p0,c2-2:p1
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0,c2-2:p1]
            c1: sync assignment=p0
            > sync c2 member=c2-2 gen=1
            c2: sync assignment=p1
            > commit c1 member=c1-1 gen=1 offsets=t:0=42,t:1=17
            append: offset g t-0=42
            append: offset g t-1=17
            c1: commit t-0=NONE t-1=NONE
            > commit a group=solo offsets=u:0=3
            append: offset solo u-0=3
            a: commit u-0=NONE
            > dump
            g: Stable gen=1 protocol=range leader=c1-1
              members=[c1-1(i1):p0,c2-2:p1]
              offsets=[t-0=42,t-1=17]
            solo: Empty gen=0 protocol=- leader=-
              members=[]
              offsets=[u-0=3]
            > reload finish=no
            reloaded 4 records
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat COORDINATOR_LOAD_IN_PROGRESS
            > join c3
            c3: join error=COORDINATOR_LOAD_IN_PROGRESS member=
            > commit c1 member=c1-1 gen=1 offsets=t:0=43
            c1: commit t-0=COORDINATOR_LOAD_IN_PROGRESS
            > fetch c1
            c1: fetch error=COORDINATOR_LOAD_IN_PROGRESS
            > list c1
            c1: list error=COORDINATOR_LOAD_IN_PROGRESS
            > describe c1
            c1: describe
              g error=COORDINATOR_LOAD_IN_PROGRESS type= protocol= members=[]
            > loaded
            > dump
            g: Stable gen=1 protocol=range leader=c1-1
              members=[c1-1(i1):p0,c2-2:p1]
              offsets=[t-0=42,t-1=17]
            solo: Empty gen=0 protocol=- leader=-
              members=[]
              offsets=[u-0=3]
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat NONE
            > heartbeat c2 member=c2-2 gen=1
            c2: heartbeat NONE
            > sync c2 member=c2-2 gen=1
            c2: sync assignment=p1
            > fetch c1
            c1: fetch t-0=42 t-1=17
            # The static member restarts against the new coordinator without a rebalance.
            > join c1 instance=i1
            append: metadata g gen=1 protocol=range leader=c1-r6-1 members=[c1-r6-1:p0,c2-2:p1]
            c1: join gen=1 protocol=range leader=c1-r6-1 member=c1-r6-1 members=[c1-r6-1,c2-2]
            # c2 goes quiet: its fresh session timer (from the load) expires and the group rebalances.
            > tick 5000
            > heartbeat c1 member=c1-r6-1 gen=1
            c1: heartbeat NONE
            > tick 5000
            > dump
            g: PreparingRebalance gen=1 protocol=range leader=c1-r6-1
              members=[c1-r6-1(i1):p0]
              offsets=[t-0=42,t-1=17]
            solo: Empty gen=0 protocol=- leader=-
              members=[]
              offsets=[u-0=3]
            """#
        )
    }

    /// A follower that never sends SyncGroup is removed when the pending-sync timeout fires.
    func testPendingSyncTimeout() {
        assertScenario(
            #"""
            > join c1
            > join c2
            > tick 6000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1,c2-2]
            c2: join gen=1 protocol=range leader=c1-1 member=c2-2
            > sync c1 member=c1-1 gen=1 assign=c1-1:p0,c2-2:p1
            append: metadata g gen=1 protocol=range leader=c1-1 members=[c1-1:p0,c2-2:p1]
            c1: sync assignment=p0
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat NONE
            > tick 9000
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat NONE
            > heartbeat c2 member=c2-2 gen=1
            c2: heartbeat NONE
            # c2 heartbeats but never fetched its assignment: the pending-sync timeout (10 s after the join) removes it.
            > tick 1000
            > heartbeat c1 member=c1-1 gen=1
            c1: heartbeat REBALANCE_IN_PROGRESS
            > dump
            g: PreparingRebalance gen=1 protocol=range leader=c1-1
              members=[c1-1:p0]
              offsets=[]
            """#
        )
    }

    /// Only an Empty group can be deleted: its offsets and metadata are tombstoned and it is gone (Dead).
    func testDeleteGroups() {
        assertScenario(
            #"""
            > commit a group=h offsets=t:0=5,t:1=6
            append: offset h t-0=5
            append: offset h t-1=6
            a: commit t-0=NONE t-1=NONE
            > join c1
            > tick 3000
            c1: join gen=1 protocol=range leader=c1-1 member=c1-1 members=[c1-1]
            > delete a groups=h,g,missing,
            append: offset h t-0 tombstone
            append: offset h t-1 tombstone
            append: metadata h tombstone
            a: delete h=NONE g=NON_EMPTY_GROUP missing=GROUP_ID_NOT_FOUND =INVALID_GROUP_ID
            > fetch a group=h
            a: fetch (none)
            > describe a groups=h
            a: describe
              h Dead type= protocol= members=[]
            > list a
            a: list g(consumer)
            """#
        )
    }
}
