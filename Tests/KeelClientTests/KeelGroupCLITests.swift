import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

/// `keel consume --group` and `keel group list|describe|delete|reset-offsets`, run as a user would:
/// against librdkafka's mock cluster for consuming, and against the scripted coordinator
/// (FakeGroupBroker) for the admin calls the mock lacks (DescribeGroups, ListGroups, DeleteGroups).
final class KeelGroupCLITests: XCTestCase {
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

    /// Runs `keel arguments...` on a thread of its own (the test's tasks keep running meanwhile).
    private func keel(_ arguments: [String], input: String = "") async throws -> ChildProcess.Output {
        let binary = try XCTUnwrap(KeelBrokerProcess.keelBinary(), "no keel binary beside the tests")
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result { try ChildProcess.run([binary] + arguments, input: input, timeoutSeconds: 60) })
            }
        }
    }

    private var bootstrap: [String] { ["--bootstrap", fake.bootstrap] }

    private func member() async throws -> KeelConsumer {
        var configuration = ConsumerConfiguration(groupId: "joined")
        configuration.heartbeatIntervalMs = 100
        configuration.enableAutoCommit = false
        let client = try KeelClient(bootstrap: fake.bootstrap)
        clients.append(client)
        let consumer = try KeelConsumer(client: client, configuration: configuration)
        consumers.append(consumer)
        try await consumer.subscribe(["t"])
        try await eventually("the member's assignment") { await consumer.assignment.count == 2 }
        return consumer
    }

    /// `keel consume --group` prints records from where the group is and commits the positions of
    /// the records it printed on the way out (the committed offset is the next one to read).
    func testConsumeWithGroupCommitsWhatItPrinted() async throws {
        let cluster = try MockCluster(brokers: 1)
        defer { cluster.stop() }
        let produced = try await keel(
            ["produce", "grouped", "--partition", "0", "--bootstrap", cluster.bootstrap],
            input: (1...10).map(String.init).joined(separator: "\n") + "\n")
        XCTAssertEqual(produced.status, 0, produced.stderr)
        let consumed = try await keel(
            [
                "consume", "grouped", "--group", "cli", "--from", "earliest", "--count", "4", "--bootstrap",
                cluster.bootstrap,
            ])
        XCTAssertEqual(consumed.status, 0, consumed.stderr)
        XCTAssertEqual(consumed.stdout, "1\n2\n3\n4\n")
        let client = try KeelClient(bootstrap: cluster.bootstrap)
        clients.append(client)
        let committed = try await client.committedOffsets(
            group: "cli", partitions: [TopicPartition(topic: "grouped", partition: 0)])
        XCTAssertEqual(committed, [TopicPartition(topic: "grouped", partition: 0): Offset(4)])
    }

    /// `describe` prints the group's state and protocol, and per partition the committed offset,
    /// the log end offset, the lag between them, and the member that owns it.
    func testDescribeShowsLagPerPartition() async throws {
        fake.setLogEnd("t", 0, 10)
        fake.setLogEnd("t", 1, 5)
        fake.state.withLock { $0.committed["joined"] = [TopicPartition(topic: "t", partition: 0): 4] }
        _ = try await member()
        let output = try await keel(["group", "describe", "joined"] + bootstrap)
        XCTAssertEqual(output.status, 0, output.stderr)
        let lines = output.stdout.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        XCTAssertEqual(
            lines,
            [
                "group joined state Stable protocol consumer/range coordinator 1 members 1",
                "TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG MEMBER-ID CLIENT-ID HOST",
                "t 0 4 10 6 member-1 keel /127.0.0.1",
                "t 1 - 5 - member-1 keel /127.0.0.1",
            ])
    }

    /// `list` names every group; `delete` removes an empty group, and refuses, with one line, a
    /// group that has members or does not exist.
    func testListAndDelete() async throws {
        fake.state.withLock { $0.knownGroups = ["old", "older"] }
        _ = try await member()
        let listed = try await keel(["group", "list"] + bootstrap)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertEqual(listed.stdout, "joined\nold\nolder\n")
        let deleted = try await keel(["group", "delete", "old", "older"] + bootstrap)
        XCTAssertEqual(deleted.status, 0, deleted.stderr)
        XCTAssertEqual(deleted.stdout, "deleted group 'old'\ndeleted group 'older'\n")
        let busy = try await keel(["group", "delete", "joined"] + bootstrap)
        XCTAssertNotEqual(busy.status, 0)
        XCTAssertEqual(busy.stderr, "Error: group 'joined' still has members; stop its consumers first\n")
        let missing = try await keel(["group", "delete", "old"] + bootstrap)
        XCTAssertEqual(missing.stderr, "Error: group 'old' does not exist; see the groups with `keel group list`\n")
    }

    /// `reset-offsets` shows the plan without --execute and commits it with: to the earliest or
    /// latest offset, to an offset (clamped to the log), to a time (ms or ISO 8601), per topic or
    /// topic:partitions or for every committed partition; a group with members is refused.
    func testResetOffsets() async throws {
        let t0 = TopicPartition(topic: "t", partition: 0)
        let t1 = TopicPartition(topic: "t", partition: 1)
        fake.setLogEnd("t", 0, 10)
        fake.setLogEnd("t", 1, 5)
        fake.state.withLock {
            $0.knownGroups = ["replay"]
            $0.committed["replay"] = [t0: 8, t1: 5]
        }
        func committed() -> [TopicPartition: Int64] { fake.state.value.committed["replay"] ?? [:] }

        let dry = try await keel(["group", "reset-offsets", "replay", "--topic", "t", "--to-earliest"] + bootstrap)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertEqual(
            dry.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") },
            [
                "TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET", "t 0 8 0", "t 1 5 0",
                "dry run: nothing changed; add --execute to commit these offsets",
            ])
        XCTAssertEqual(committed(), [t0: 8, t1: 5], "a dry run changes nothing")

        let cases: [([String], [TopicPartition: Int64])] = [
            (["--topic", "t:0", "--to-offset", "3"], [t0: 3, t1: 5]),
            (["--topic", "t:0", "--to-datetime", "1002"], [t0: 2, t1: 5]),
            (["--topic", "t:0,1", "--to-datetime", "1970-01-01T00:00:01.004Z"], [t0: 4, t1: 4]),
            (["--topic", "t:1", "--to-earliest"], [t0: 4, t1: 0]),
            (["--all-topics", "--to-latest"], [t0: 10, t1: 5]),
        ]
        for (arguments, expected) in cases {
            let output = try await keel(["group", "reset-offsets", "replay", "--execute"] + arguments + bootstrap)
            XCTAssertEqual(output.status, 0, "\(arguments): \(output.stderr)")
            XCTAssertTrue(output.stdout.contains("committed"), output.stdout)
            XCTAssertEqual(committed(), expected, "\(arguments)")
        }
        let clamped = try await keel(
            ["group", "reset-offsets", "replay", "--topic", "t:0", "--to-offset", "99", "--execute"] + bootstrap)
        XCTAssertTrue(clamped.stdout.contains("note: t-0: offset 99 is outside 0..10, using 10"), clamped.stdout)
        XCTAssertEqual(committed()[t0], 10)

        _ = try await member()
        let refused = try await keel(
            ["group", "reset-offsets", "joined", "--topic", "t", "--to-earliest", "--execute"] + bootstrap)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertEqual(
            refused.stderr,
            "Error: group 'joined' has active members (state Stable); stop its consumers, then reset its offsets\n")
        XCTAssertNil(fake.state.value.committed["joined"], "the refused reset committed nothing")
    }

    /// Each mistake gets exactly one line on stderr saying what to do, and a failing exit status.
    func testGroupMistakesGetOneLine() async throws {
        fake.state.withLock { $0.advertiseDeleteGroups = false }
        let cases: [([String], String)] = [
            (["group", "reset-offsets", "g", "--topic", "t"], "give exactly one of --to-earliest, --to-latest"),
            (["group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"], "(2 given)"),
            (["group", "reset-offsets", "g", "--to-earliest"], "name the partitions to reset with --topic"),
            (["group", "reset-offsets", "g", "--to-earliest", "--topic", "t", "--all-topics"], "not both"),
            (["group", "reset-offsets", "g", "--to-earliest", "--topic", "t:x"], "write e.g. --topic orders:0,2"),
            (
                ["group", "reset-offsets", "g", "--to-datetime", "yesterday", "--topic", "t"],
                "write e.g. --to-datetime 2026"
            ),
            (["group", "reset-offsets", "g", "--to-offset=-1", "--topic", "t"], "--to-offset must be 0 or more"),
            (["group", "reset-offsets", "g", "--to-earliest", "--topic", "t:7"], "has no partition 7"),
            (["consume", "t", "--group", "g", "--partition", "0"], "--partition cannot be used with --group"),
            (["consume", "t", "--group", "g", "--from", "5"], "must be earliest or latest"),
            (["group", "describe"], "Missing expected argument '<group>'; see `keel group describe --help`"),
            (["group", "describe", "nosuch"], "group 'nosuch' does not exist"),
            (["group", "delete", "g"], "does not support DeleteGroups"),
            (["group", "list", "--bootstrap", "127.0.0.1:1"], "start one with `keel broker`"),
        ]
        for (arguments, expected) in cases {
            let full = arguments.contains("--bootstrap") ? arguments : arguments + bootstrap
            let output = try await keel(full)
            XCTAssertNotEqual(output.status, 0, arguments.joined(separator: " "))
            let lines = output.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(arguments): \(output.stderr)")
            XCTAssertTrue(output.stderr.contains(expected), "\(arguments): \(output.stderr)")
        }
    }
}
