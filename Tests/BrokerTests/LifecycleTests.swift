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
        XCTAssertFalse(second.log.contains("partition recovered"), "a graceful stop leaves nothing to recover")

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
}
