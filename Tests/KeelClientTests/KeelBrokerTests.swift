import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

/// KeelClient against a real `keel broker` process (skipped while the binary has no broker).
final class KeelBrokerTests: XCTestCase {
    private var broker: KeelBrokerProcess!
    private var client: KeelClient!

    override func setUp() async throws {
        broker = try KeelBrokerProcess()
        client = try KeelClient(bootstrap: broker.bootstrap)
    }

    override func tearDown() async throws {
        await client?.close()
        broker?.stop()
    }

    private func text(_ buffer: ByteBuffer?) -> String? { buffer.map { String(buffer: $0) } }

    /// Admin round trip: create with configs, describe partitions and configs, list, delete.
    func testTopicAdministration() async throws {
        try await client.createTopic("admin", partitions: 3, configs: ["retention.ms": "60000"])
        let info = try await client.describeTopic("admin")
        XCTAssertEqual(info.partitions.map(\.partition), [0, 1, 2])
        let configs = try await client.describeConfigs(topic: "admin")
        XCTAssertEqual(configs.first { $0.name == "retention.ms" }?.value, "60000")
        do {
            try await client.createTopic("admin")
            XCTFail("a second create must fail")
        } catch {
            guard case .broker(.topicAlreadyExists, _) = error else { return XCTFail("\(error)") }
        }
        let names = try await client.listTopics().map(\.name)
        XCTAssertTrue(names.contains("admin"))
        try await client.deleteTopic("admin")
        do {
            _ = try await client.describeTopic("admin")
            XCTFail("a deleted topic must be gone")
        } catch {
            XCTAssertEqual(error, .unknownTopic("admin"))
        }
    }

    /// Records with keys, headers and null values, over several LZ4 batches with idempotence,
    /// come back in order with their content; list offsets finds earliest, latest and by time.
    func testProduceConsumeAndListOffsets() async throws {
        try await client.createTopic("data", partitions: 1)
        var configuration = ProducerConfiguration()
        configuration.batchBytesMax = 2048
        let producer = try await KeelProducer(client: client, configuration: configuration)
        let count = 300
        for index in 0..<count {
            try await producer.enqueue(
                topic: "data", key: index % 4 == 0 ? nil : ByteBuffer(string: "k\(index)"),
                value: index % 9 == 0 ? nil : ByteBuffer(string: "value-\(index)"),
                headers: [RecordHeader(key: "i", value: ByteBuffer(string: "\(index)"))], partition: 0,
                timestamp: 10_000 + Int64(index))
        }
        try await producer.flush()
        var records: [ConsumerRecord] = []
        for try await record in client.partitionConsumer(
            topic: "data", partition: 0, from: .zero, maxWaitMs: 200, idleTimeoutMs: 5_000)
        {
            records.append(record)
            if records.count == count { break }
        }
        XCTAssertEqual(records.map(\.offset.value), (0..<Int64(count)).map { $0 })
        for (index, record) in records.enumerated() {
            XCTAssertEqual(text(record.key), index % 4 == 0 ? nil : "k\(index)")
            XCTAssertEqual(text(record.value), index % 9 == 0 ? nil : "value-\(index)")
            XCTAssertEqual(record.headers.first.flatMap { text($0.value) }, "\(index)")
            XCTAssertEqual(record.timestamp, 10_000 + Int64(index))
        }
        let earliest = try await client.listOffsets(topic: "data", partition: 0, .earliest)
        let latest = try await client.listOffsets(topic: "data", partition: 0, .latest)
        let byTime = try await client.listOffsets(topic: "data", partition: 0, .timestamp(10_123))
        XCTAssertEqual(earliest, .zero)
        XCTAssertEqual(latest, Offset(Int64(count)))
        XCTAssertEqual(byTime, Offset(123))
    }

    /// A batch sent twice with the same producer id and sequence is stored once, and the
    /// retry is answered with the original offset.
    func testIdempotentRetryIsStoredOnce() async throws {
        _ = try await client.topicInfo("dedup")
        let connection = try await client.leaderConnection(topic: "dedup", partition: 0)
        let producerId = try await connection.send(
            InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 60_000), timeoutMs: 10_000)
        var builder = RecordBatchBuilder()
        for index in 0..<3 { builder.append(timestamp: 1_000, key: nil, value: ByteBuffer(string: "d\(index)")) }
        let batch = try builder.build(
            codec: .lz4, producerId: producerId.producerId, producerEpoch: producerId.producerEpoch, baseSequence: 0)
        let request = ProduceRequest(
            transactionalId: nil, acks: -1, timeoutMs: 10_000,
            topicData: [.init(name: "dedup", partitionData: [.init(index: 0, records: batch)])])
        let first = try await connection.send(request, timeoutMs: 10_000)
        let second = try await connection.send(request, timeoutMs: 10_000)
        let firstAnswer = try XCTUnwrap(first.responses.first?.partitionResponses.first)
        let secondAnswer = try XCTUnwrap(second.responses.first?.partitionResponses.first)
        XCTAssertEqual(firstAnswer.errorCode, .none)
        XCTAssertEqual(secondAnswer.errorCode, .none)
        XCTAssertEqual(secondAnswer.baseOffset, firstAnswer.baseOffset)
        let latest = try await client.listOffsets(topic: "dedup", partition: 0, .latest)
        XCTAssertEqual(latest, Offset(3))
    }
}
