// The controller's pure parts: the metadata record codec, the replayed state, and the state machine's decisions.
import Broker
import KafkaProtocol
import NIOCore
import Raft
import Records
import XCTest

/// One record of each type, with awkward values (empty strings, non-ASCII, extremes).
let sampleMetadataRecords: [MetadataRecord] = [
    .nodeRegistered(
        NodeRegistration(id: 1, clientHost: "127.0.0.1", clientPort: 9092, clusterHost: "", clusterPort: 19092)),
    .nodeRegistered(
        NodeRegistration(
            id: Int32.max, clientHost: "nœud-é.test", clientPort: 0, clusterHost: "h", clusterPort: 1,
            incarnation: Int64.min)),
    .topicCreated(name: "orders", assignment: [[1, 2, 3], [2, 3, 1]], overrides: ["retention.ms": "1000"]),
    .topicCreated(name: "empty", assignment: [], overrides: [:]),
    .topicDeleted(name: "orders"),
    .topicConfigChanged(name: "t", overrides: ["segment.bytes": "4096", "compression.type": "producer"]),
    .partitionLeaderChanged(topic: "t", partition: 7, leader: -1, term: Int64.max),
    .producerIdBlockAllocated(nextBlockStart: 1000),
]

final class ControllerMetadataTests: XCTestCase {
    /// Every record type survives encoding into a batch and decoding back, and equal records give equal bytes.
    func testRecordsRoundTripThroughABatch() throws {
        let batch = MetadataRecordCodec.batch(sampleMetadataRecords, timestamp: 1_700_000_000_000)
        let decoded = try MetadataRecordCodec.records(ofBatch: batch)
        XCTAssertEqual(decoded.map(\.record), sampleMetadataRecords)
        XCTAssertEqual(decoded.map(\.offset), (0..<Int64(sampleMetadataRecords.count)).map { $0 })
        for record in sampleMetadataRecords {
            XCTAssertEqual(
                try MetadataRecordCodec.decode(
                    key: MetadataRecordCodec.key(record), value: MetadataRecordCodec.value(record)), record)
            XCTAssertEqual(MetadataRecordCodec.value(record), MetadataRecordCodec.value(record))
        }
    }

    /// A value cut anywhere short, or followed by an extra byte, is refused with a typed error.
    func testTruncatedAndPaddedValuesAreRefused() {
        for record in sampleMetadataRecords {
            let key = MetadataRecordCodec.key(record)
            let value = MetadataRecordCodec.value(record)
            for length in 0..<value.readableBytes {
                XCTAssertThrowsError(
                    try MetadataRecordCodec.decode(key: key, value: value.getSlice(at: 0, length: length)),
                    "\(record) cut at \(length)")
            }
            var padded = value
            padded.writeInteger(UInt8(0))
            XCTAssertThrowsError(try MetadataRecordCodec.decode(key: key, value: padded)) { error in
                XCTAssertEqual(error as? MetadataRecordError, .trailingBytes(type: record.type, count: 1))
            }
        }
        XCTAssertThrowsError(try MetadataRecordCodec.decode(key: nil, value: ByteBuffer(bytes: [1])))
        XCTAssertThrowsError(try MetadataRecordCodec.decode(key: ByteBuffer(bytes: [0, 99]), value: ByteBuffer()))
        XCTAssertThrowsError(
            try MetadataRecordCodec.decode(key: ByteBuffer(bytes: [0, 3]), value: ByteBuffer(bytes: [2, 0, 0]))
        ) { error in
            XCTAssertEqual(error as? MetadataRecordError, .unsupportedVersion(type: .topicDeleted, version: 2))
        }
    }

    /// Seeded random bytes and random bit flips of valid values never crash the decoder: it decodes or throws.
    func testGarbageNeverCrashesTheDecoder() {
        let seed: UInt64 = 0x5EED_C0DE
        var random = SeededRandom(seed: seed)
        var decodedCount = 0
        for round in 0..<20_000 {
            let key = ByteBuffer(bytes: [0, UInt8(random.next() % 8)])
            var value: ByteBuffer
            if round % 2 == 0 {
                let length = Int(random.next() % 64)
                value = ByteBuffer(bytes: (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            } else {
                let record = sampleMetadataRecords[Int(random.next() % UInt64(sampleMetadataRecords.count))]
                value = MetadataRecordCodec.value(record)
                let position = Int(random.next() % UInt64(value.readableBytes))
                let byte = value.getInteger(at: position, as: UInt8.self) ?? 0
                value.setInteger(byte ^ UInt8(1 << (random.next() % 8)), at: position)
            }
            if (try? MetadataRecordCodec.decode(key: key, value: value)) != nil { decodedCount += 1 }
        }
        XCTAssertGreaterThan(decodedCount, 0, "seed \(seed): some flips land in values and still decode")
    }

    /// The encoding is pinned byte for byte, so that a change to the format shows up as a failing test (bump the
    /// version then).
    func testEncodingIsPinned() {
        let record = MetadataRecord.topicCreated(name: "ab", assignment: [[1, 2]], overrides: ["k": "v"])
        XCTAssertEqual(Array(MetadataRecordCodec.key(record).readableBytesView), [0x00, 0x02])
        XCTAssertEqual(
            Array(MetadataRecordCodec.value(record).readableBytesView),
            [
                0x01,  // version
                0x00, 0x02, 0x61, 0x62,  // name "ab"
                0x00, 0x00, 0x00, 0x01,  // 1 partition
                0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,  // replicas [1, 2]
                0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x6B, 0x00, 0x01, 0x76,  // overrides {k: v}
            ])
        XCTAssertEqual(
            Array(MetadataRecordCodec.value(.producerIdBlockAllocated(nextBlockStart: 258)).readableBytesView),
            [0x01, 0, 0, 0, 0, 0, 0, 0x01, 0x02])
    }

    /// A control batch holds no metadata records, and a corrupt batch is refused.
    func testControlAndCorruptBatches() throws {
        let control = RecordBatchBuilder.controlBatch(
            ControlRecord(type: .leaderChange),
            value: ControlRecord.leaderChangeValue(leaderId: 1, voters: [1], grantingVoters: []),
            timestamp: 0, baseOffset: Offset(5), partitionLeaderEpoch: 1)
        XCTAssertTrue(try MetadataRecordCodec.records(ofBatch: control).isEmpty)
        var corrupt = MetadataRecordCodec.batch([.topicDeleted(name: "x")], timestamp: 0)
        corrupt.setInteger(UInt8(0xFF), at: corrupt.writerIndex - 1)
        XCTAssertThrowsError(try MetadataRecordCodec.records(ofBatch: corrupt))
    }

    /// Replaying the same records always builds the same state, and each record type lands where queries see it.
    func testReplayIsDeterministic() {
        var random = SeededRandom(seed: 42)
        var log: [MetadataRecord] = (1...5).map {
            .nodeRegistered(
                NodeRegistration(id: $0, clientHost: "h\($0)", clientPort: 9090 + $0, clusterHost: "c", clusterPort: 1))
        }
        for k in 0..<300 {
            let name = "t\(random.next() % 20)"
            switch random.next() % 5 {
            case 0: log.append(.topicDeleted(name: name))
            case 1: log.append(.topicConfigChanged(name: name, overrides: ["retention.ms": "\(k)"]))
            case 2:
                log.append(
                    .partitionLeaderChanged(
                        topic: name, partition: Int32(random.next() % 3), leader: Int32(random.next() % 5),
                        term: Int64(random.next() % 10)))
            case 3: log.append(.producerIdBlockAllocated(nextBlockStart: Int64(k * 1000)))
            default: log.append(.topicCreated(name: name, assignment: [[1, 2], [2, 3]], overrides: [:]))
            }
        }
        let first = ClusterMetadataState().applying(log)
        let second = log.reduce(ClusterMetadataState()) { $0.applying($1) }
        XCTAssertEqual(first, second)
        XCTAssertEqual(first.nodeIds, [1, 2, 3, 4, 5])
        XCTAssertEqual(first.nodes[3]?.clientPort, 9093)

        let state = ClusterMetadataState().applying([
            .topicCreated(name: "a", assignment: [[1, 2], [2, 1]], overrides: ["retention.ms": "5"]),
            .topicCreated(name: "a", assignment: [[3]], overrides: [:]),
            .partitionLeaderChanged(topic: "a", partition: 1, leader: 2, term: 4),
            .partitionLeaderChanged(topic: "a", partition: 1, leader: 1, term: 3),
            .partitionLeaderChanged(topic: "a", partition: 9, leader: 1, term: 9),
            .topicConfigChanged(name: "a", overrides: ["segment.bytes": "2048"]),
            .producerIdBlockAllocated(nextBlockStart: 2000),
            .producerIdBlockAllocated(nextBlockStart: 1000),
        ])
        XCTAssertEqual(state.replicas(topic: "a", partition: 1), [2, 1], "the first creation wins")
        XCTAssertEqual(state.leader(topic: "a", partition: 1), PartitionLeader(leader: 2, term: 4))
        XCTAssertNil(state.leader(topic: "a", partition: 9))
        XCTAssertEqual(state.overrides(of: "a"), ["segment.bytes": "2048"])
        XCTAssertEqual(state.producerIdNextBlockStart, 2000)
        XCTAssertEqual(state.partitions(on: 1).map(\.partition), [0, 1])
        XCTAssertNil(state.applying(.topicDeleted(name: "a")).topic("a"))
    }
}

final class ControllerStateMachineTests: XCTestCase {
    func cluster(nodes: Int32) -> ClusterMetadataState {
        ClusterMetadataState().applying(
            (1...nodes).map {
                .nodeRegistered(
                    NodeRegistration(id: $0, clientHost: "h", clientPort: 9092, clusterHost: "h", clusterPort: 19092))
            })
    }

    /// Runs `command` and applies its records, as the controller does after the commit.
    func run(_ command: ControllerCommand, _ state: inout ClusterMetadataState, _ machine: ControllerStateMachine)
        throws(ControllerError) -> ControllerReply
    {
        let decision = try machine.decide(command, in: state)
        state.apply(decision.records)
        return decision.reply
    }

    /// Every refusal carries the Kafka error code CreateTopics, DeleteTopics and AlterConfigs answer with.
    func testCommandsAreValidated() throws {
        let machine = ControllerStateMachine()
        var state = cluster(nodes: 3)
        func code(_ command: ControllerCommand) -> ErrorCode {
            do throws(ControllerError) {
                _ = try machine.decide(command, in: state)
                return .none
            } catch {
                return error.code
            }
        }
        func create(_ name: String, _ partitions: Int32 = 1, _ rf: Int16 = 1, _ configs: [String: String] = [:])
            -> ControllerCommand
        {
            .createTopic(name: name, partitions: partitions, replicationFactor: rf, configs: configs)
        }
        XCTAssertEqual(code(create("t", 3, 4)), .invalidReplicationFactor)
        XCTAssertEqual(code(create("t", 3, 0)), .invalidReplicationFactor)
        XCTAssertEqual(code(create("t", 0, 1)), .invalidPartitions)
        XCTAssertEqual(code(create("t", Broker.partitionsMax + 1, 1)), .invalidPartitions)
        XCTAssertEqual(code(create("bad name!")), .invalidTopicException)
        XCTAssertEqual(code(create(ControllerStateMachine.metadataTopic)), .invalidTopicException)
        XCTAssertEqual(code(create("t", 1, 1, ["retention.ms": "soon"])), .invalidConfig)
        XCTAssertEqual(code(create("t", 1, 1, ["no.such.config": "1"])), .invalidConfig)
        XCTAssertEqual(code(.deleteTopic(name: "t")), .unknownTopicOrPartition)
        XCTAssertEqual(code(.alterConfig(name: "t", configs: [:])), .unknownTopicOrPartition)
        XCTAssertEqual(code(.allocateProducerIdBlock(size: 0)), .invalidRequest)

        let reply = try run(create("t", 3, 3, ["retention.ms": "1000"]), &state, machine)
        XCTAssertEqual(reply, .topicCreated(assignment: [[1, 2, 3], [2, 3, 1], [3, 1, 2]]))
        XCTAssertEqual(code(create("t")), .topicAlreadyExists)
        XCTAssertEqual(code(.alterConfig(name: "t", configs: ["segment.bytes": "x"])), .invalidConfig)
        XCTAssertEqual(try run(.alterConfig(name: "t", configs: ["segment.bytes": "4096"]), &state, machine), .done)
        XCTAssertEqual(state.overrides(of: "t"), ["segment.bytes": "4096"])
        XCTAssertEqual(try run(.deleteTopic(name: "t"), &state, machine), .done)
        XCTAssertNil(state.topic("t"))

        let defaults = try run(create("d", -1, -1), &state, machine)
        // Defaults: 1 partition, RF min(3, nodes); the rotation continues after the 3 partitions of "t".
        XCTAssertEqual(defaults, .topicCreated(assignment: [[1, 3, 2]]))
    }

    /// Explicit assignments are taken as given once every replica is a registered node, distinct within its
    /// partition, and every partition has as many replicas.
    func testExplicitAssignmentsAreChecked() throws {
        let machine = ControllerStateMachine()
        let state = cluster(nodes: 3)
        func create(_ assignment: [[Int32]], name: String = "t") throws(ControllerError) -> [MetadataRecord] {
            try machine.decide(.createTopicWithAssignment(name: name, assignment: assignment, configs: [:]), in: state)
                .records
        }
        XCTAssertEqual(
            try create([[3, 1], [1, 2]]), [.topicCreated(name: "t", assignment: [[3, 1], [1, 2]], overrides: [:])])
        for bad in [[[1, 1]], [[1, 4]], [[1], [1, 2]], [[]]] as [[[Int32]]] {
            XCTAssertThrowsError(try create(bad)) {
                XCTAssertEqual(($0 as? ControllerError)?.code, .invalidReplicationFactor)
            }
        }
        XCTAssertThrowsError(try create([])) { XCTAssertEqual(($0 as? ControllerError)?.code, .invalidPartitions) }
        XCTAssertThrowsError(try create([[1]], name: "a/b")) {
            XCTAssertEqual(($0 as? ControllerError)?.code, .invalidTopicException)
        }
    }

    /// Registering a node twice with the same addresses and incarnation proposes nothing; new addresses or a new
    /// incarnation (a restart) replace the old registration.
    func testRegisterNodeIsIdempotent() throws {
        let machine = ControllerStateMachine()
        var state = ClusterMetadataState()
        let node = NodeRegistration(id: 2, clientHost: "a", clientPort: 1, clusterHost: "b", clusterPort: 2)
        XCTAssertEqual(try machine.decide(.registerNode(node), in: state).records, [.nodeRegistered(node)])
        state.apply(.nodeRegistered(node))
        XCTAssertEqual(try machine.decide(.registerNode(node), in: state).records, [])
        var moved = node
        moved.clientPort = 9
        XCTAssertEqual(try machine.decide(.registerNode(moved), in: state).records, [.nodeRegistered(moved)])
        var restarted = node
        restarted.incarnation = 77
        XCTAssertEqual(try machine.decide(.registerNode(restarted), in: state).records, [.nodeRegistered(restarted)])
    }

    /// Successive producer id blocks never overlap.
    func testProducerIdBlocksAreDisjoint() throws {
        let machine = ControllerStateMachine()
        var state = ClusterMetadataState()
        var blocks: [Range<Int64>] = []
        for size in [1000, 1, 1000] as [Int64] {
            guard case .producerIdBlock(let block) = try run(.allocateProducerIdBlock(size: size), &state, machine)
            else { return XCTFail("no block") }
            blocks.append(block)
        }
        XCTAssertEqual(blocks, [0..<1000, 1000..<1001, 1001..<2001])
    }

    /// Across many topics every node leads about as many partitions and holds about as many replicas as any other,
    /// and no partition has a node twice.
    func testAssignmentIsSpreadEvenly() throws {
        for (nodes, rf) in [(3, 3), (5, 3), (5, 2), (4, 1), (7, 3)] as [(Int32, Int16)] {
            let machine = ControllerStateMachine()
            var state = cluster(nodes: nodes)
            var random = SeededRandom(seed: UInt64(nodes) * 100 + UInt64(rf))
            var leaders: [Int32: Int] = [:]
            var replicas: [Int32: Int] = [:]
            var total = 0
            for k in 0..<200 {
                let partitions = Int32(1 + random.next() % 12)
                let reply = try run(
                    .createTopic(name: "t\(k)", partitions: partitions, replicationFactor: rf, configs: [:]), &state,
                    machine)
                guard case .topicCreated(let assignment) = reply else { return XCTFail("no assignment") }
                XCTAssertEqual(assignment.count, Int(partitions))
                for partition in assignment {
                    XCTAssertEqual(partition.count, Int(rf))
                    XCTAssertEqual(Set(partition).count, partition.count, "replicas on distinct nodes")
                    leaders[partition[0], default: 0] += 1
                    for node in partition { replicas[node, default: 0] += 1 }
                    total += 1
                }
            }
            let fairLeaders = Double(total) / Double(nodes)
            let fairReplicas = fairLeaders * Double(rf)
            for node in 1...nodes {
                XCTAssertEqual(Double(leaders[node] ?? 0), fairLeaders, accuracy: 1, "\(nodes) nodes RF \(rf): leaders")
                XCTAssertEqual(
                    Double(replicas[node] ?? 0), fairReplicas, accuracy: fairReplicas * 0.05 + 2,
                    "\(nodes) nodes RF \(rf): replicas")
            }
        }
    }

    /// A partition leader report is recorded once per news: the same leader again, or an older term, is ignored.
    func testLeaderReportsRecordOnlyNews() throws {
        let machine = ControllerStateMachine()
        var state = cluster(nodes: 3)
        _ = try run(.createTopic(name: "t", partitions: 2, replicationFactor: 3, configs: [:]), &state, machine)
        let report = ControllerCommand.reportPartitionLeader(topic: "t", partition: 1, leader: 2, term: 5)
        XCTAssertEqual(try machine.decide(report, in: state).records.count, 1)
        _ = try run(report, &state, machine)
        XCTAssertEqual(try machine.decide(report, in: state).records, [])
        XCTAssertEqual(
            try machine.decide(.reportPartitionLeader(topic: "t", partition: 1, leader: 3, term: 4), in: state)
                .records, [])
        XCTAssertThrowsError(
            try machine.decide(.reportPartitionLeader(topic: "t", partition: 2, leader: 3, term: 4), in: state))
    }
}
