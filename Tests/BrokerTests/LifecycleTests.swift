import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

/// What outlives a process: topics with their configs, data, producer ids; and retention.
final class LifecycleTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws { directory = try makeTemporaryDirectory("lifecycle") }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: directory + ".log")
    }

    private func offset(_ connection: RawConnection, _ topic: String, _ partition: Int32, at timestamp: Int64) throws
        -> Int64
    {
        let answer = try connection.roundTrip(
            ListOffsetsRequest(
                replicaId: -1, isolationLevel: 0,
                topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: timestamp)])]),
            version: 2)
        return try XCTUnwrap(answer.topics.first?.partitions.first).offset
    }

    func testTopicsConfigsDataAndProducerIdsSurviveAGracefulRestart() throws {
        let first = try BrokerProcess(dataDirectory: directory)
        var connection = try RawConnection(port: first.port)
        let created = try connection.roundTrip(
            CreateTopicsRequest(
                topics: [
                    .init(
                        name: "kept", numPartitions: 3, replicationFactor: 1, assignments: [],
                        configs: [
                            .init(name: "retention.ms", value: "3600000"),
                            .init(name: "compression.type", value: "producer"),
                        ])
                ], timeoutMs: 10_000, validateOnly: false),
            version: 3)
        XCTAssertEqual(created.topics.first?.errorCode, ErrorCode.none)
        let produced = try connection.roundTrip(
            produceRequest("kept", partition: 1, records: try makeBatch(count: 5)), version: 7)
        XCTAssertEqual(produced.responses.first?.partitionResponses.first?.baseOffset, 0)
        let before = try connection.roundTrip(
            InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 1000), version: 1)
        XCTAssertEqual(try first.stop(), 0, first.log)

        let second = try BrokerProcess(dataDirectory: directory)
        connection = try RawConnection(port: second.port)
        let metadata = try connection.roundTrip(
            MetadataRequest(topics: [.init(name: "kept")], allowAutoTopicCreation: false), version: 4)
        XCTAssertEqual(metadata.topics.first?.errorCode, ErrorCode.none)
        XCTAssertEqual(metadata.topics.first?.partitions.count, 3)
        XCTAssertEqual(metadata.brokers.first?.port, Int32(second.port))
        let configs = try connection.roundTrip(
            DescribeConfigsRequest(
                resources: [.init(resourceType: 2, resourceName: "kept", configurationKeys: nil)],
                includeSynonyms: false),
            version: 1)
        let entries = try XCTUnwrap(configs.results.first?.configs)
        XCTAssertEqual(entries.first { $0.name == "retention.ms" }?.value, "3600000")
        XCTAssertEqual(entries.first { $0.name == "retention.ms" }?.configSource, 1)
        XCTAssertEqual(entries.first { $0.name == "compression.type" }?.value, "producer")
        XCTAssertEqual(entries.first { $0.name == "segment.bytes" }?.configSource, 5)
        XCTAssertEqual(try offset(connection, "kept", 1, at: -1), 5)
        XCTAssertEqual(try offset(connection, "kept", 1, at: 1_700_000_000_003), 3, "time index after reopen")
        let after = try connection.roundTrip(
            InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 1000), version: 1)
        XCTAssertGreaterThan(after.producerId, before.producerId, "producer ids are unique across restarts")
        XCTAssertFalse(second.log.contains("partition recovered"), "a graceful stop leaves nothing to recover: \(second.log)")

        let deleted = try connection.roundTrip(DeleteTopicsRequest(topicNames: ["kept"], timeoutMs: 1000), version: 1)
        XCTAssertEqual(deleted.responses.first?.errorCode, ErrorCode.none)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/kept-1"))
        XCTAssertEqual(try second.stop(), 0, second.log)
        let third = try BrokerProcess(dataDirectory: directory)
        connection = try RawConnection(port: third.port)
        let gone = try connection.roundTrip(
            MetadataRequest(topics: [.init(name: "kept")], allowAutoTopicCreation: false), version: 4)
        XCTAssertEqual(gone.topics.first?.errorCode, .unknownTopicOrPartition)
        XCTAssertEqual(try third.stop(), 0, third.log)
    }

    func testIdempotentProducerStateIsRebuiltFromTheLogOnRestart() throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let first = try BrokerProcess(dataDirectory: directory)
        var connection = try RawConnection(port: first.port)
        let producer = try connection.roundTrip(
            InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 1000), version: 1)
        let pid = producer.producerId
        func produce(_ batch: ByteBuffer) throws -> ProduceResponse.TopicResponse.PartitionResponse {
            let answer = try connection.roundTrip(produceRequest("idem", records: batch), version: 7)
            return try XCTUnwrap(answer.responses.first?.partitionResponses.first)
        }
        _ = try connection.roundTrip(
            MetadataRequest(topics: [.init(name: "idem")], allowAutoTopicCreation: true), version: 4)
        let old = try makeBatch(count: 5, timestamp: now - 3 * 24 * 3600 * 1000)
        XCTAssertEqual(try produce(old).baseOffset, 0)
        let batch = try makeBatch(count: 5, producerId: pid, epoch: 0, sequence: 0, timestamp: now)
        XCTAssertEqual(try produce(batch).baseOffset, 5)
        XCTAssertEqual(try first.stop(signal: SIGKILL), SIGKILL)

        let second = try BrokerProcess(dataDirectory: directory)
        connection = try RawConnection(port: second.port)
        let retry = try produce(batch)
        XCTAssertEqual(retry.errorCode, .none)
        XCTAssertEqual(retry.baseOffset, 5, "a retry after the restart gets its original offsets")
        let gap = try produce(try makeBatch(count: 1, producerId: pid, epoch: 0, sequence: 9, timestamp: now))
        XCTAssertEqual(gap.errorCode, .outOfOrderSequenceNumber)
        let next = try produce(try makeBatch(count: 1, producerId: pid, epoch: 0, sequence: 5, timestamp: now))
        XCTAssertEqual(next.baseOffset, 10)
        XCTAssertEqual(try second.stop(), 0, second.log)
    }

    func testAutomaticTopicCreationFollowsTheNodeSettings() throws {
        let creating = try BrokerProcess(dataDirectory: directory, arguments: ["--default-partitions", "3"])
        var connection = try RawConnection(port: creating.port)
        let asked = MetadataRequest(topics: [.init(name: "auto")], allowAutoTopicCreation: true)
        let created = try connection.roundTrip(asked, version: 4)
        XCTAssertEqual(created.topics.first?.errorCode, ErrorCode.none)
        XCTAssertEqual(created.topics.first?.partitions.map(\.partitionIndex), [0, 1, 2])
        let notAllowed = try connection.roundTrip(
            MetadataRequest(topics: [.init(name: "other")], allowAutoTopicCreation: false), version: 4)
        XCTAssertEqual(notAllowed.topics.first?.errorCode, .unknownTopicOrPartition)
        XCTAssertEqual(try creating.stop(), 0, creating.log)

        let refusing = try BrokerProcess(dataDirectory: directory, arguments: ["--auto-create-topics", "false"])
        connection = try RawConnection(port: refusing.port)
        let answer = try connection.roundTrip(
            MetadataRequest(topics: [.init(name: "auto"), .init(name: "fresh")], allowAutoTopicCreation: true),
            version: 4)
        XCTAssertEqual(answer.topics.map(\.errorCode), [.none, .unknownTopicOrPartition])
        XCTAssertEqual(try refusing.stop(), 0, refusing.log)
    }

    func testRetentionDeletesOldSegmentsByBytes() throws {
        let broker = try BrokerProcess(
            dataDirectory: directory, arguments: ["--log-retention-check-interval-ms", "50"])
        let connection = try RawConnection(port: broker.port)
        let created = try connection.roundTrip(
            CreateTopicsRequest(
                topics: [
                    .init(
                        name: "short", numPartitions: 1, replicationFactor: 1, assignments: [],
                        configs: [
                            .init(name: "segment.bytes", value: "1024"),
                            .init(name: "retention.bytes", value: "2048"),
                            .init(name: "compression.type", value: "producer"),
                        ])
                ], timeoutMs: 10_000, validateOnly: false),
            version: 3)
        XCTAssertEqual(created.topics.first?.errorCode, ErrorCode.none)
        for _ in 0..<20 {
            let answer = try connection.roundTrip(
                produceRequest("short", records: try makeBatch(count: 4, valueBytes: 150)), version: 7)
            XCTAssertEqual(answer.responses.first?.partitionResponses.first?.errorCode, ErrorCode.none)
        }
        XCTAssertEqual(try offset(connection, "short", 0, at: -1), 80)
        // One batch (about 720 bytes) per segment; retention keeps about 2048 bytes of whole segments.
        try waitUntil("retention to move the log start past 60", seconds: 20) {
            try offset(connection, "short", 0, at: -2) >= 60
        }
        let start = try offset(connection, "short", 0, at: -2)
        XCTAssertLessThan(start, 80, "the active segment is never deleted")
        let fetch = FetchRequest(
            replicaId: -1, maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0,
            sessionEpoch: -1,
            topics: [
                .init(
                    topic: "short",
                    partitions: [
                        .init(
                            partition: 0, currentLeaderEpoch: -1, fetchOffset: 0, logStartOffset: -1,
                            partitionMaxBytes: 1 << 20)
                    ])
            ], forgottenTopicsData: [], rackId: "")
        let answer = try connection.roundTrip(fetch, version: 11)
        XCTAssertEqual(answer.responses.first?.partitions.first?.errorCode, .offsetOutOfRange)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(answer.responses.first?.partitions.first?.logStartOffset), start)
        XCTAssertTrue(broker.log.contains("retention deleted"), broker.log)
        XCTAssertEqual(try broker.stop(), 0, broker.log)
    }

    /// SIGTERM while requests are parked in the broker: long-poll fetches (max_wait_ms 5000) on
    /// every partition and acks=all produces. Shutdown must answer or fail each of them before
    /// the event loops stop: a promise left behind crashes a debug build (exit 4, not 0).
    func testGracefulShutdownWithLongPollFetchesAndProducesInFlight() throws {
        for round in 0..<3 {
            let broker = try BrokerProcess(dataDirectory: directory + "-\(round)")
            defer { try? FileManager.default.removeItem(atPath: directory + "-\(round)") }
            let admin = try RawConnection(port: broker.port)
            let partitions: Int32 = 32
            let created = try admin.roundTrip(
                CreateTopicsRequest(
                    topics: [
                        .init(name: "lp", numPartitions: partitions, replicationFactor: 1, assignments: [], configs: [])
                    ], timeoutMs: 10_000, validateOnly: false),
                version: 3)
            XCTAssertEqual(created.topics.first?.errorCode, ErrorCode.none)
            var connections: [RawConnection] = []
            for c in 0..<24 {
                let connection = try RawConnection(port: broker.port)
                let fetch = FetchRequest(
                    replicaId: -1, maxWaitMs: 5000, minBytes: 1 << 20, maxBytes: 1 << 20, isolationLevel: 0,
                    sessionId: 0, sessionEpoch: -1,
                    topics: [
                        .init(
                            topic: "lp",
                            partitions: (0..<partitions).map {
                                .init(
                                    partition: $0, currentLeaderEpoch: -1, fetchOffset: 0, logStartOffset: -1,
                                    partitionMaxBytes: 1 << 20)
                            })
                    ], forgottenTopicsData: [], rackId: "")
                for n in 0..<8 {
                    try connection.send(
                        KafkaRequestEncoder.encodeFrame(fetch, version: 11, correlationId: Int32(n), clientId: "lp"))
                }
                for n in 0..<4 {
                    try connection.send(
                        KafkaRequestEncoder.encodeFrame(
                            produceRequest(
                                "lp", partition: Int32((c + n) % Int(partitions)), records: try makeBatch(count: 10)),
                            version: 7, correlationId: Int32(10 + n), clientId: "lp"))
                }
                connections.append(connection)
            }
            // Requests on a connection are dispatched in order, so once every produce sent behind
            // the fetches is stored, every fetch has been dispatched and is parked (min_bytes is
            // 1 MiB). The produced batches are identical, so partition p holds exactly
            // (produces to p) × (the size of one stored batch). Then stop the node while more
            // produces arrive.
            let dataDirectory = directory + "-\(round)"
            var producesPerPartition: [Int: Int] = [:]
            for c in 0..<24 { for n in 0..<4 { producesPerPartition[(c + n) % Int(partitions), default: 0] += 1 } }
            func segmentSize(_ partition: Int) -> Int {
                let segment = dataDirectory + "/lp-\(partition)/00000000000000000000.log"
                return (try? FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int) ?? 0
            }
            try waitUntil("every produce behind the parked fetches to be stored", seconds: 30) {
                let oneBatch = segmentSize(0)  // partition 0 gets exactly one produce
                return oneBatch > 0 && producesPerPartition.allSatisfy { segmentSize($0.key) == $0.value * oneBatch }
            }
            for (c, connection) in connections.enumerated() {
                try? connection.send(
                    KafkaRequestEncoder.encodeFrame(
                        produceRequest("lp", partition: Int32(c % Int(partitions)), records: try makeBatch(count: 10)),
                        version: 7, correlationId: 99, clientId: "lp"))
            }
            XCTAssertEqual(try broker.stop(), 0, broker.log)
            try? FileManager.default.removeItem(atPath: directory + "-\(round).log")
        }
    }
}
