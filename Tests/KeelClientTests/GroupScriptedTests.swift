import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

/// Waits until `condition` holds, polling every 10 ms, for at most `seconds`.
func eventually(
    _ what: String,
    seconds: Double = 15,
    file: StaticString = #filePath,
    line: UInt = #line,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    XCTFail("timed out waiting for: \(what)", file: file, line: line)
    throw CancellationError()
}

/// Collects rebalance events for assertions.
final class RebalanceLog: Sendable {
    private let events = LockedBox<[RebalanceEvent]>([])
    var all: [RebalanceEvent] { events.value }
    func record(_ event: RebalanceEvent) { events.withLock { $0.append(event) } }
}

/// The group consumer against a scripted coordinator (FakeGroupBroker): joining, committed
/// positions, commits, and every coordinator error the consumer must survive.
final class GroupScriptedTests: XCTestCase {
    private var fake: FakeGroupBroker!
    private var clients: [KeelClient] = []
    private var consumers: [KeelConsumer] = []

    override func setUp() async throws {
        fake = try await FakeGroupBroker(partitions: 2)
    }

    override func tearDown() async throws {
        for consumer in consumers { await consumer.close() }
        for client in clients { await client.close() }
        await fake?.stop()
    }

    /// Fast timers, so that a test's rebalances take milliseconds.
    private func configuration(
        _ body: (inout ConsumerConfiguration) -> Void = { _ in }
    ) -> ConsumerConfiguration {
        var configuration = ConsumerConfiguration(groupId: "joined")
        configuration.sessionTimeoutMs = 2_000
        configuration.heartbeatIntervalMs = 50
        configuration.retryBackoffMs = 5
        configuration.retryBackoffMaxMs = 50
        configuration.autoOffsetReset = .earliest
        configuration.enableAutoCommit = false
        configuration.fetchMaxWaitMs = 100
        body(&configuration)
        return configuration
    }

    private func consumer(_ configuration: ConsumerConfiguration, topics: [String] = ["t"]) async throws -> KeelConsumer
    {
        var settings = try KeelClientConfiguration(bootstrap: fake.bootstrap)
        settings.retryBackoffMs = 5
        settings.requestTimeoutMs = 5_000
        let client = KeelClient(configuration: settings)
        clients.append(client)
        let consumer = try KeelConsumer(client: client, configuration: configuration)
        consumers.append(consumer)
        try await consumer.subscribe(topics)
        return consumer
    }

    /// Polls until `count` records came (each poll waits at most 5 s).
    private func take(_ count: Int, from consumer: KeelConsumer) async throws -> [ConsumerRecord] {
        var records: [ConsumerRecord] = []
        while records.count < count {
            guard let record = try await consumer.poll(timeoutMs: 5_000) else {
                XCTFail("only \(records.count) of \(count) records came")
                break
            }
            records.append(record)
        }
        return records
    }

    private func values(_ records: [ConsumerRecord]) -> [String] {
        records.map { $0.value.map { String(buffer: $0) } ?? "" }
    }

    /// A new member joins (FindCoordinator, JoinGroup, SyncGroup with its own assignment as leader),
    /// starts each partition at its committed offset or, without one, at auto.offset.reset, commits
    /// "next offset to read" for the current generation, and leaves the group on close.
    func testJoinStartsAtCommittedOffsetsCommitsAndLeaves() async throws {
        fake.setLogEnd("t", 0, 10)
        fake.setLogEnd("t", 1, 5)
        fake.state.withLock { $0.committed["joined"] = [TopicPartition(topic: "t", partition: 0): 4] }
        let consumer = try await consumer(configuration())
        let records = try await take(11, from: consumer)
        XCTAssertEqual(
            Set(values(records)), Set((4..<10).map { "p0-\($0)" } + (0..<5).map { "p1-\($0)" }))
        XCTAssertEqual(records.filter { $0.partition == 0 }.map(\.offset.value), Array(4..<10))
        let assignment = await consumer.assignment
        XCTAssertEqual(
            assignment, [TopicPartition(topic: "t", partition: 0), TopicPartition(topic: "t", partition: 1)])
        let generation = await consumer.generationId
        XCTAssertEqual(generation, 1)
        try await eventually("a heartbeat while the user reads") { !self.fake.lines("Heartbeat").isEmpty }
        try await consumer.commit()
        await consumer.close()
        XCTAssertEqual(
            fake.transcript.filter { !$0.hasPrefix("Heartbeat") },
            [
                "FindCoordinator joined", "JoinGroup member= instance=-",
                "SyncGroup gen=1 member=member-1 member-1=[t-0,t-1]", "OffsetFetch joined",
                "OffsetCommit gen=1 member=member-1 t-0=10 t-1=5", "LeaveGroup member=member-1",
            ])
        XCTAssertTrue(fake.lines("Heartbeat").allSatisfy { $0 == "Heartbeat gen=1 member=member-1" })
    }

    /// REBALANCE_IN_PROGRESS on a heartbeat: with auto-commit the positions are committed first
    /// (the generation is still valid), then the member rejoins with the same member id.
    func testRebalanceInProgressCommitsThenRejoinsWithTheSameMemberId() async throws {
        fake.setLogEnd("t", 0, 3)
        let events = RebalanceLog()
        let consumer = try await consumer(
            configuration {
                $0.enableAutoCommit = true
                $0.autoCommitIntervalMs = 600_000
                $0.onRebalance = { events.record($0) }
            })
        _ = try await take(3, from: consumer)
        _ = try await consumer.poll(timeoutMs: 0)  // the third record is processed
        fake.inject(.heartbeat, .rebalanceInProgress)
        try await eventually("a second JoinGroup") { self.fake.lines("JoinGroup").count == 2 }
        try await eventually("the second generation's assignment") { events.all.count == 3 }
        let transcript = fake.transcript.filter { !$0.hasPrefix("Heartbeat") && !$0.hasPrefix("OffsetFetch") }
        XCTAssertEqual(
            Array(transcript.dropFirst(3).prefix(3)),
            [
                "OffsetCommit gen=1 member=member-1 t-0=3 t-1=0", "JoinGroup member=member-1 instance=-",
                "SyncGroup gen=2 member=member-1 member-1=[t-0,t-1]",
            ])
        let all = [TopicPartition(topic: "t", partition: 0), TopicPartition(topic: "t", partition: 1)]
        XCTAssertEqual(events.all, [.assigned(all), .revoked(all), .assigned(all)])
        // The committed positions carry over: nothing is read twice.
        fake.setLogEnd("t", 0, 4)
        let next = try await take(1, from: consumer)
        XCTAssertEqual(next.first?.offset, Offset(3))
    }

    /// ILLEGAL_GENERATION ends the generation: the partitions are lost (no commit) and the member
    /// rejoins under its id; UNKNOWN_MEMBER_ID makes it rejoin as a new member (empty id).
    func testEndedGenerationsLosePartitionsAndRejoin() async throws {
        fake.setLogEnd("t", 0, 2)
        let events = RebalanceLog()
        let consumer = try await consumer(
            configuration {
                $0.enableAutoCommit = true
                $0.autoCommitIntervalMs = 600_000
                $0.onRebalance = { events.record($0) }
            })
        _ = try await take(2, from: consumer)
        fake.inject(.heartbeat, .illegalGeneration)
        try await eventually("generation 2") { await consumer.generationId == 2 }
        fake.inject(.heartbeat, .unknownMemberId)
        try await eventually("generation 3, assigned") { events.all.count == 5 }
        let joins = fake.lines("JoinGroup")
        XCTAssertEqual(
            joins,
            [
                "JoinGroup member= instance=-", "JoinGroup member=member-1 instance=-",
                "JoinGroup member= instance=-",
            ])
        XCTAssertTrue(fake.lines("OffsetCommit").isEmpty, "a lost generation commits nothing")
        let memberId = await consumer.memberId
        XCTAssertEqual(memberId, "member-2")
        let all = [TopicPartition(topic: "t", partition: 0), TopicPartition(topic: "t", partition: 1)]
        XCTAssertEqual(events.all, [.assigned(all), .lost(all), .assigned(all), .lost(all), .assigned(all)])
    }

    /// COORDINATOR_NOT_AVAILABLE and NOT_COORDINATOR send the consumer back to FindCoordinator;
    /// COORDINATOR_LOAD_IN_PROGRESS retries the same coordinator; all with backoff and no rejoin
    /// when the membership is fine. A commit refused with NOT_COORDINATOR is retried.
    func testCoordinatorErrorsRediscoverAndRetry() async throws {
        fake.inject(.findCoordinator, .coordinatorNotAvailable)
        fake.inject(.joinGroup, .notCoordinator, .coordinatorLoadInProgress)
        fake.setLogEnd("t", 0, 1)
        let consumer = try await consumer(configuration())
        _ = try await take(1, from: consumer)
        XCTAssertEqual(fake.lines("FindCoordinator").count, 3)
        XCTAssertEqual(fake.lines("JoinGroup").count, 3)

        fake.inject(.heartbeat, .coordinatorNotAvailable)
        try await eventually("a fourth FindCoordinator") { self.fake.lines("FindCoordinator").count >= 4 }
        let found = fake.lines("FindCoordinator").count
        fake.inject(.offsetCommit, .notCoordinator)
        try await consumer.commit()
        XCTAssertEqual(
            fake.lines("OffsetCommit"),
            ["OffsetCommit gen=1 member=member-1 t-0=1 t-1=0", "OffsetCommit gen=1 member=member-1 t-0=1 t-1=0"])
        XCTAssertGreaterThan(fake.lines("FindCoordinator").count, found)
        XCTAssertEqual(fake.lines("JoinGroup").count, 3, "the membership survived")
        let generation = await consumer.generationId
        XCTAssertEqual(generation, 1)
    }

    /// KIP-394: a first JoinGroup answered MEMBER_ID_REQUIRED is sent again at once with the id given.
    func testMemberIdRequiredJoinsAgainWithTheGivenId() async throws {
        fake.state.withLock { $0.requireMemberId = true }
        let consumer = try await consumer(configuration())
        try await eventually("an assignment") { await !consumer.assignment.isEmpty }
        XCTAssertEqual(
            fake.lines("JoinGroup"), ["JoinGroup member= instance=-", "JoinGroup member=member-1 instance=-"])
    }

    /// A static member sends its group.instance.id, sends no LeaveGroup on close, and its
    /// restart (a new client, no member id) joins under the same instance id and gets the same
    /// partitions; FENCED_INSTANCE_ID stops a consumer for good.
    func testStaticMembership() async throws {
        fake.setLogEnd("t", 0, 1)
        let first = try await consumer(configuration { $0.groupInstanceId = "host-a" })
        _ = try await take(1, from: first)
        try await first.commit()
        await first.close()
        XCTAssertTrue(fake.lines("LeaveGroup").isEmpty)
        let second = try await consumer(configuration { $0.groupInstanceId = "host-a" })
        try await eventually("the restarted member's assignment") { await second.assignment.count == 2 }
        XCTAssertEqual(
            fake.lines("JoinGroup"), ["JoinGroup member= instance=host-a", "JoinGroup member= instance=host-a"])
        fake.setLogEnd("t", 0, 2)
        let resumed = try await take(1, from: second)
        XCTAssertEqual(resumed.first?.offset, Offset(1), "the restart resumes from the committed offset")

        fake.inject(.heartbeat, .fencedInstanceId)
        do {
            while try await second.poll(timeoutMs: 5_000) != nil {}
            XCTFail("a fenced member must stop")
        } catch {
            XCTAssertEqual(error, .broker(.fencedInstanceId, context: "Heartbeat"))
        }
    }

    /// As leader, a KeelConsumer reads a librdkafka member's v3 subscription and assigns with the
    /// assignor the group chose, exactly as Kafka's range and roundrobin do.
    func testLeaderAssignsAMixedGroup() async throws {
        func int16(_ value: Int16) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
        func int32(_ value: Int32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
        // What librdkafka's rd_kafka_consumer_protocol_member_metadata_new writes for topic "t".
        let librdkafka = int16(3) + int32(1) + int16(1) + Array("t".utf8) + int32(0) + int32(0) + int32(-1) + int16(-1)
        await fake.stop()
        fake = try await FakeGroupBroker(partitions: 4)
        fake.state.withLock {
            $0.extraMembers = [
                .init(memberId: "rdkafka-1", groupInstanceId: nil, metadata: ByteBuffer(bytes: librdkafka))
            ]
        }
        let range = try await consumer(configuration())
        try await eventually("the range assignment") { await range.assignment.count == 2 }
        await range.close()
        let roundRobin = try await consumer(configuration { $0.assignors = [.roundRobin] })
        try await eventually("the roundrobin assignment") { await roundRobin.assignment.count == 2 }
        XCTAssertEqual(
            fake.lines("SyncGroup"),
            [
                "SyncGroup gen=1 member=member-1 member-1=[t-0,t-1] rdkafka-1=[t-2,t-3]",
                "SyncGroup gen=2 member=member-2 member-2=[t-0,t-2] rdkafka-1=[t-1,t-3]",
            ])
    }

    /// A committed offset past the log end gets OFFSET_OUT_OF_RANGE and restarts at
    /// auto.offset.reset; seek moves a partition to an offset, the earliest offset or a time.
    func testOutOfRangeResetsAndSeek() async throws {
        fake.state.withLock {
            $0.logStart = 2
            $0.committed["joined"] = [TopicPartition(topic: "t", partition: 0): 100]
        }
        fake.setLogEnd("t", 0, 5)
        let consumer = try await consumer(configuration())
        let reset = try await take(3, from: consumer)
        XCTAssertEqual(reset.map(\.offset.value), [2, 3, 4])
        let target = TopicPartition(topic: "t", partition: 0)
        try await consumer.seek(target, to: Offset(3))
        let fromThree = try await take(2, from: consumer)
        XCTAssertEqual(fromThree.map(\.offset.value), [3, 4])
        try await consumer.seek(target, to: .earliest)
        let fromStart = try await take(1, from: consumer)
        XCTAssertEqual(fromStart.map(\.offset.value), [2])
        try await consumer.seek(target, to: .timestamp(1_004))
        let fromTime = try await take(1, from: consumer)
        XCTAssertEqual(fromTime.map(\.offset.value), [4])
        let position = await consumer.position(target)
        XCTAssertEqual(position, Offset(5))
        do {
            try await consumer.seek(TopicPartition(topic: "other", partition: 0), to: Offset(1))
            XCTFail("seek of a partition not assigned must fail")
        } catch {
            guard case .invalidArgument = error else { return XCTFail("\(error)") }
        }
    }

    /// Auto-commit commits in the background every interval, counting the record in the user's
    /// hands as not processed, and commits everything handed out on close, before LeaveGroup.
    func testAutoCommitInTheBackgroundAndOnClose() async throws {
        fake.setLogEnd("t", 0, 3)
        let consumer = try await consumer(
            configuration {
                $0.enableAutoCommit = true
                $0.autoCommitIntervalMs = 50
            })
        _ = try await take(3, from: consumer)
        // The third record is still in hand: background commits claim only the first two.
        let target = TopicPartition(topic: "t", partition: 0)
        try await eventually("a background commit of t-0=2") { self.fake.state.value.committed["joined"]?[target] == 2 }
        let heartbeats = fake.lines("Heartbeat").count
        try await eventually("ten more heartbeats, i.e. several commit intervals") {
            self.fake.lines("Heartbeat").count >= heartbeats + 10
        }
        XCTAssertEqual(fake.state.value.committed["joined"]?[target], 2)
        XCTAssertFalse(fake.lines("OffsetCommit").contains { $0.contains("t-0=3") })
        fake.setLogEnd("t", 0, 5)
        _ = try await take(2, from: consumer)
        await consumer.close()
        let tail = Array(fake.transcript.filter { !$0.hasPrefix("Heartbeat") }.suffix(2))
        XCTAssertEqual(tail, ["OffsetCommit gen=1 member=member-1 t-0=5", "LeaveGroup member=member-1"])
        XCTAssertEqual(fake.state.value.committed["joined"]?[target], 5)
    }

    /// A user who does not poll within the rebalance timeout (max.poll.interval.ms) while holding
    /// partitions makes the member leave the group, so others can take them over; the next poll
    /// rejoins as a new member.
    func testSlowPollerLeavesAndRejoinsAtTheNextPoll() async throws {
        fake.setLogEnd("t", 0, 2)
        let events = RebalanceLog()
        let consumer = try await consumer(
            configuration {
                $0.rebalanceTimeoutMs = 300
                $0.onRebalance = { events.record($0) }
            })
        _ = try await take(1, from: consumer)
        // The test now "processes" without polling.
        try await eventually("a LeaveGroup") { !self.fake.lines("LeaveGroup").isEmpty }
        XCTAssertEqual(fake.lines("LeaveGroup"), ["LeaveGroup member=member-1"])
        try await eventually("the partitions given up") { events.all.count == 2 }
        let heartbeats = fake.lines("Heartbeat").count
        XCTAssertEqual(fake.lines("JoinGroup").count, 1, "no rejoin before the next poll")
        let next = try await take(1, from: consumer)
        XCTAssertEqual(next.first?.offset, Offset(0), "nothing was committed: the record is read again")
        XCTAssertEqual(fake.lines("JoinGroup"), ["JoinGroup member= instance=-", "JoinGroup member= instance=-"])
        XCTAssertGreaterThanOrEqual(fake.lines("Heartbeat").count, heartbeats)
        let all = [TopicPartition(topic: "t", partition: 0), TopicPartition(topic: "t", partition: 1)]
        XCTAssertEqual(Array(events.all.prefix(3)), [.assigned(all), .lost(all), .assigned(all)])
    }

    /// The commit of a stale generation is refused with ILLEGAL_GENERATION and makes the consumer
    /// rejoin; commitAsync reports its outcome.
    func testCommitErrorsAndCommitAsync() async throws {
        fake.setLogEnd("t", 0, 2)
        let consumer = try await consumer(configuration())
        _ = try await take(1, from: consumer)
        let outcome = LockedBox<Result<Void, KeelClientError>?>(nil)
        await consumer.commitAsync { result in outcome.withLock { $0 = result } }
        try await eventually("the async commit") { outcome.value != nil }
        guard case .success = outcome.value else { return XCTFail("\(String(describing: outcome.value))") }
        fake.inject(.offsetCommit, .illegalGeneration)
        _ = try await take(1, from: consumer)
        do {
            try await consumer.commit()
            XCTFail("the commit must fail")
        } catch {
            XCTAssertEqual(error, .broker(.illegalGeneration, context: "commit the offset of group 'joined' for t-0"))
        }
        try await eventually("a rejoin") { await consumer.generationId == 2 }
    }

    /// Group administration: describe (state, assignor, members with their decoded assignment),
    /// list, read committed offsets, commit from outside the group, and delete (refused while the
    /// group has members; GROUP_ID_NOT_FOUND for an unknown group).
    func testGroupAdministration() async throws {
        let consumer = try await consumer(configuration())
        try await eventually("an assignment") { await consumer.assignment.count == 2 }
        let admin = clients[0]
        let description = try await admin.describeGroup("joined")
        XCTAssertEqual(description.state, "Stable")
        XCTAssertEqual(description.protocolType, "consumer")
        XCTAssertEqual(description.protocolName, "range")
        XCTAssertEqual(description.coordinator, 1)
        XCTAssertEqual(description.members.map(\.memberId), ["member-1"])
        XCTAssertEqual(description.members.first?.clientId, "keel")
        XCTAssertEqual(description.members.first?.subscription?.topics, ["t"])
        XCTAssertEqual(
            description.members.first?.assignment,
            [TopicPartition(topic: "t", partition: 0), TopicPartition(topic: "t", partition: 1)])

        let offsets = [TopicPartition(topic: "t", partition: 0): Offset(7)]
        try await admin.commitOffsets(group: "other", offsets)
        let read = try await admin.committedOffsets(group: "other")
        XCTAssertEqual(read, offsets)
        let listed = try await admin.listGroups().map(\.groupId)
        XCTAssertEqual(listed, ["joined", "other"])
        do {
            try await admin.deleteGroup("joined")
            XCTFail("a group with members must not be deleted")
        } catch {
            XCTAssertEqual(error, .broker(.nonEmptyGroup, context: "delete group 'joined'"))
        }
        try await admin.deleteGroup("other")
        do {
            try await admin.deleteGroup("other")
            XCTFail("a deleted group is gone")
        } catch {
            XCTAssertEqual(error, .broker(.groupIdNotFound, context: "delete group 'other'"))
        }
        let dead = try await admin.describeGroup("never")
        XCTAssertEqual(dead.state, "Dead")
        XCTAssertTrue(dead.members.isEmpty)
    }

    /// A broker that does not advertise DeleteGroups (an old one) gets no
    /// DeleteGroups request: the client says it is unsupported.
    func testDeleteGroupNeedsTheBrokerToAdvertiseIt() async throws {
        fake.state.withLock { $0.advertiseDeleteGroups = false }
        let client = try KeelClient(bootstrap: fake.bootstrap)
        clients.append(client)
        do {
            try await client.deleteGroup("g")
            XCTFail("DeleteGroups is not advertised")
        } catch {
            guard case .unsupportedVersion(.deleteGroups, _, nil) = error else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(fake.broker.requests.contains { if case .deleteGroups = $0.request { true } else { false } })
    }
}
