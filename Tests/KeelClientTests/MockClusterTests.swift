import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

/// End-to-end tests against librdkafka's mock Kafka cluster: a genuine peer implementation of
/// Metadata, Produce, Fetch, ListOffsets and InitProducerId (with idempotence checks).
final class MockClusterTests: XCTestCase {
    private var cluster: MockCluster!
    private var client: KeelClient!

    override func setUp() async throws {
        cluster = try MockCluster(brokers: 3)
        client = try KeelClient(bootstrap: cluster.bootstrap)
    }

    override func tearDown() async throws {
        await client?.close()
        cluster?.stop()
    }

    private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    private func text(_ buffer: ByteBuffer?) -> String? { buffer.map { String(buffer: $0) } }

    /// Reads `count` records of one partition from `offset`, with a deadline.
    private func consume(_ topic: String, partition: Int32, from offset: Offset, count: Int) async throws
        -> [ConsumerRecord]
    {
        var records: [ConsumerRecord] = []
        let consumer = client.partitionConsumer(
            topic: topic, partition: partition, from: offset, maxWaitMs: 200, idleTimeoutMs: 5_000)
        for try await record in consumer {
            records.append(record)
            if records.count == count { break }
        }
        return records
    }

    /// Bootstrapping finds every broker of the cluster and the leaders of an auto-created topic.
    func testMetadataListsBrokersAndLeaders() async throws {
        let info = try await client.topicInfo("meta-topic")
        XCTAssertFalse(info.partitions.isEmpty)
        let metadata = await client.metadata
        XCTAssertEqual(metadata.brokers.count, 3)
        for partition in info.partitions {
            XCTAssertNotNil(metadata.brokers[partition.leader], "leader \(partition.leader) is a known broker")
        }
        let topics = try await client.listTopics()
        XCTAssertTrue(topics.contains { $0.name == "meta-topic" })
        let described = try await client.describeTopic("meta-topic")
        XCTAssertEqual(described.partitions.count, info.partitions.count)
    }

    /// Records with keys, headers and null values, sent over several LZ4 batches with
    /// idempotence, come back in order with the same content and consecutive offsets.
    func testProducedRecordsComeBackInOrder() async throws {
        var configuration = ProducerConfiguration()
        configuration.batchBytesMax = 1024
        let producer = try await KeelProducer(client: client, configuration: configuration)
        let producerId = await producer.producerId
        XCTAssertGreaterThanOrEqual(producerId, 0, "idempotence got a producer id")
        let count = 200
        for index in 0..<count {
            let key: ByteBuffer? = index % 7 == 0 ? nil : buffer("key-\(index)")
            let value: ByteBuffer? =
                index % 11 == 0 ? nil : buffer("value-\(index)-" + String(repeating: "x", count: index))
            let headers = index % 3 == 0 ? [RecordHeader(key: "h", value: buffer("\(index)"))] : []
            try await producer.enqueue(topic: "ordered", key: key, value: value, headers: headers, partition: 0)
        }
        let last = try await producer.send(topic: "ordered", key: buffer("last"), value: buffer("end"), partition: 0)
        try await producer.flush()
        XCTAssertEqual(last, Offset(Int64(count)))

        let records = try await consume("ordered", partition: 0, from: .zero, count: count + 1)
        XCTAssertEqual(records.count, count + 1)
        for (index, record) in records.prefix(count).enumerated() {
            XCTAssertEqual(record.offset, Offset(Int64(index)))
            XCTAssertEqual(text(record.key), index % 7 == 0 ? nil : "key-\(index)")
            XCTAssertEqual(
                text(record.value), index % 11 == 0 ? nil : "value-\(index)-" + String(repeating: "x", count: index))
            XCTAssertEqual(record.headers.map(\.key), index % 3 == 0 ? ["h"] : [])
            XCTAssertEqual(record.headers.first.flatMap { text($0.value) }, index % 3 == 0 ? "\(index)" : nil)
        }
        XCTAssertEqual(text(records.last?.value), "end")
    }

    /// Keyed records land on the partition Kafka's murmur2 partitioner picks.
    func testKeysLandOnMurmur2Partitions() async throws {
        let producer = try await KeelProducer(client: client)
        let partitions = Int32(try await client.topicInfo("keyed").partitions.count)
        XCTAssertGreaterThan(partitions, 1)
        let keys = (0..<40).map { "user-\($0)" }
        for key in keys {
            try await producer.enqueue(topic: "keyed", key: buffer(key), value: buffer("v-\(key)"))
        }
        try await producer.flush()
        var seen = 0
        for partition in 0..<partitions {
            let end = try await client.listOffsets(topic: "keyed", partition: partition, .latest) ?? .zero
            guard end.value > 0 else { continue }
            let records = try await consume("keyed", partition: partition, from: .zero, count: Int(end.value))
            for record in records {
                let key = try XCTUnwrap(record.key)
                XCTAssertEqual(Partitioner.partition(forKey: key, partitionCount: partitions), partition)
                XCTAssertEqual(text(record.value), "v-" + String(buffer: key))
            }
            seen += records.count
        }
        XCTAssertEqual(seen, keys.count)
    }

    /// ListOffsets finds the earliest and the latest offset (the mock cluster keeps no time
    /// index, so lookups by time are tested against the scripted broker).
    func testListOffsetsEarliestAndLatest() async throws {
        var configuration = ProducerConfiguration()
        configuration.lingerMs = 0
        let producer = try await KeelProducer(client: client, configuration: configuration)
        for index in 0..<10 {
            _ = try await producer.send(
                topic: "timed", key: nil, value: buffer("\(index)"), partition: 0,
                timestamp: 1_000_000 + Int64(index) * 10)
        }
        let earliest = try await client.listOffsets(topic: "timed", partition: 0, .earliest)
        let latest = try await client.listOffsets(topic: "timed", partition: 0, .latest)
        XCTAssertEqual(earliest, .zero)
        XCTAssertEqual(latest, Offset(10))
    }

    /// Fetching from an offset inside a batch skips the batch's earlier records.
    func testFetchFromTheMiddleOfABatch() async throws {
        let producer = try await KeelProducer(client: client)
        for index in 0..<20 {
            try await producer.enqueue(topic: "middle", key: nil, value: buffer("m\(index)"), partition: 0)
        }
        try await producer.flush()
        let records = try await consume("middle", partition: 0, from: Offset(13), count: 7)
        XCTAssertEqual(records.map(\.offset.value), Array(13..<20))
        XCTAssertEqual(records.map { text($0.value) }, (13..<20).map { "m\($0)" })
    }
}
