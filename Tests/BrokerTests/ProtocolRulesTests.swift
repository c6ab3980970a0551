import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

/// The broker's produce and fetch rules, driven with raw frames over one connection to a
/// real `keel broker`: CRC and size checks, one batch per partition, idempotent retries,
/// in-order answers to pipelined requests, and every fetched partition echoed.
final class ProtocolRulesTests: XCTestCase {
    var directory = ""
    var broker: BrokerProcess?
    var connection: RawConnection?

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("rules")
        let broker = try BrokerProcess(dataDirectory: directory)
        self.broker = broker
        let connection = try RawConnection(port: broker.port)
        self.connection = connection
        let created = try connection.roundTrip(
            CreateTopicsRequest(
                topics: [
                    .init(name: "rules", numPartitions: 2, replicationFactor: 1, assignments: [], configs: []),
                    .init(
                        name: "small", numPartitions: 1, replicationFactor: 1, assignments: [],
                        configs: [.init(name: "max.message.bytes", value: "2048")]),
                ],
                timeoutMs: 10_000, validateOnly: false),
            version: 3)
        XCTAssertEqual(created.topics.map(\.errorCode), [.none, .none])
    }

    override func tearDownWithError() throws {
        connection = nil
        if let broker { XCTAssertEqual(try broker.stop(), 0, broker.log) }
        broker = nil
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: directory + ".log")
    }

    private func produce(_ topic: String, partition: Int32 = 0, _ records: ByteBuffer?, acks: Int16 = -1) throws
        -> ProduceResponse.TopicResponse.PartitionResponse
    {
        let answer = try XCTUnwrap(connection).roundTrip(
            produceRequest(topic, partition: partition, records: records, acks: acks), version: 7)
        return try XCTUnwrap(answer.responses.first?.partitionResponses.first)
    }

    private func latest(_ topic: String, partition: Int32 = 0) throws -> Int64 {
        let answer = try XCTUnwrap(connection).roundTrip(
            ListOffsetsRequest(
                replicaId: -1, isolationLevel: 0,
                topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: -1)])]),
            version: 2)
        return try XCTUnwrap(answer.topics.first?.partitions.first).offset
    }

    func testCorruptTooLargeControlAndDoubleBatchesAreRefusedAndNotStored() throws {
        XCTAssertEqual(try produce("rules", try makeBatch(count: 3)).baseOffset, 0)
        var corrupt = try makeBatch(count: 2)
        corrupt.setInteger(UInt8(0xFF), at: corrupt.writerIndex - 1)
        XCTAssertEqual(try produce("rules", corrupt).errorCode, .corruptMessage)
        // Random bytes: LZ4 cannot shrink them below max.message.bytes (2048).
        var generator = SeededGenerator(seed: 7)
        var builder = RecordBatchBuilder()
        builder.append(
            timestamp: 1, key: nil,
            value: ByteBuffer(bytes: (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        XCTAssertEqual(try produce("small", try builder.build()).errorCode, .messageTooLarge)
        let control = RecordBatchBuilder.controlBatch(
            ControlRecord(type: .commit), value: ByteBuffer(bytes: [0, 0, 0, 0, 0, 0]), timestamp: 1)
        XCTAssertEqual(try produce("rules", control).errorCode, .invalidRecord)
        var two = try makeBatch(count: 1)
        var second = try makeBatch(count: 1)
        two.writeBuffer(&second)
        XCTAssertEqual(try produce("rules", two).errorCode, .invalidRecord)
        XCTAssertEqual(try produce("rules", partition: 7, try makeBatch(count: 1)).errorCode, .unknownTopicOrPartition)
        XCTAssertEqual(try produce("nowhere", try makeBatch(count: 1)).errorCode, .unknownTopicOrPartition)
        XCTAssertEqual(try latest("rules"), 3, "nothing refused was stored")
        XCTAssertEqual(try latest("small"), 0)
    }

    func testIdempotentRetryGetsItsOriginalOffsetsAndGapsAndStaleEpochsAreRefused() throws {
        let connection = try XCTUnwrap(connection)
        let producer = try connection.roundTrip(
            InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 60_000), version: 1)
        XCTAssertEqual(producer.errorCode, .none)
        let pid = producer.producerId
        XCTAssertEqual(try produce("rules", try makeBatch(count: 1)).baseOffset, 0)
        let first = try makeBatch(count: 5, producerId: pid, epoch: 0, sequence: 0)
        XCTAssertEqual(try produce("rules", first).baseOffset, 1)
        XCTAssertEqual(
            try produce("rules", try makeBatch(count: 2, producerId: pid, epoch: 0, sequence: 5)).baseOffset, 6)
        // An exact retry of an earlier batch is answered with its original offsets; nothing is stored.
        let retry = try produce("rules", first)
        XCTAssertEqual(retry.errorCode, .none)
        XCTAssertEqual(retry.baseOffset, 1)
        XCTAssertEqual(try latest("rules"), 8)
        let gap = try produce("rules", try makeBatch(count: 1, producerId: pid, epoch: 0, sequence: 9))
        XCTAssertEqual(gap.errorCode, .outOfOrderSequenceNumber)
        XCTAssertEqual(
            try produce("rules", try makeBatch(count: 1, producerId: pid, epoch: 1, sequence: 0)).baseOffset, 8)
        let stale = try produce("rules", try makeBatch(count: 1, producerId: pid, epoch: 0, sequence: 7))
        XCTAssertEqual(stale.errorCode, .invalidProducerEpoch)
        XCTAssertEqual(try latest("rules"), 9)
        let next = try connection.roundTrip(
            InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 60_000), version: 0)
        XCTAssertGreaterThan(next.producerId, pid)
    }

    func testPipelinedAnswersKeepRequestOrderBehindALongPoll() throws {
        let connection = try XCTUnwrap(connection)
        let fetch = FetchRequest(
            replicaId: -1, maxWaitMs: 700, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0,
            sessionEpoch: -1,
            topics: [
                .init(
                    topic: "rules",
                    partitions: [
                        .init(
                            partition: 0, currentLeaderEpoch: -1, fetchOffset: 0, logStartOffset: -1,
                            partitionMaxBytes: 1 << 20),
                        .init(
                            partition: 1, currentLeaderEpoch: -1, fetchOffset: 5, logStartOffset: -1,
                            partitionMaxBytes: 1 << 20),
                    ]),
                .init(
                    topic: "missing",
                    partitions: [
                        .init(
                            partition: 0, currentLeaderEpoch: -1, fetchOffset: 0, logStartOffset: -1,
                            partitionMaxBytes: 1 << 20)
                    ]),
            ],
            forgottenTopicsData: [], rackId: "")
        // The first fetch waits (nothing to read), the metadata answer must wait behind it.
        var empty = fetch
        empty.topics = [fetch.topics[0]]
        empty.topics[0].partitions = [fetch.topics[0].partitions[0]]
        try connection.send(KafkaRequestEncoder.encodeFrame(empty, version: 11, correlationId: 1, clientId: "t"))
        try connection.send(
            KafkaRequestEncoder.encodeFrame(
                MetadataRequest(topics: nil, allowAutoTopicCreation: false), version: 4, correlationId: 2,
                clientId: "t"))
        let started = Date()
        let firstFrame = try XCTUnwrap(try connection.readFrame())
        XCTAssertEqual(try KafkaResponseDecoder.correlationId(of: firstFrame), 1)
        XCTAssertGreaterThan(Date().timeIntervalSince(started), 0.5, "the fetch waited for data")
        let (_, waited) = try KafkaResponseDecoder.decode(FetchResponse.self, frame: firstFrame, version: 11)
        XCTAssertEqual(waited.responses.first?.partitions.first?.records.byteCount, 0)
        let second = try XCTUnwrap(try connection.readFrame())
        XCTAssertEqual(try KafkaResponseDecoder.correlationId(of: second), 2)

        // A long poll is answered as soon as data arrives.
        var poll = empty
        poll.maxWaitMs = 20_000
        try connection.send(KafkaRequestEncoder.encodeFrame(poll, version: 11, correlationId: 3, clientId: "t"))
        let producer = try RawConnection(port: try XCTUnwrap(broker).port)
        let produced = try producer.roundTrip(produceRequest("rules", records: try makeBatch(count: 4)), version: 7)
        XCTAssertEqual(produced.responses.first?.partitionResponses.first?.errorCode, ErrorCode.none)
        let woken = try XCTUnwrap(try connection.readFrame())
        XCTAssertEqual(try KafkaResponseDecoder.correlationId(of: woken), 3)
        let (_, data) = try KafkaResponseDecoder.decode(FetchResponse.self, frame: woken, version: 11)
        XCTAssertEqual(data.responses.first?.partitions.first?.highWatermark, 4)

        // Every partition asked for is echoed, with its own error.
        let body = try connection.roundTrip(fetch, version: 11, correlationId: 4)
        XCTAssertEqual(body.responses.map(\.topic), ["rules", "missing"])
        let rules = try XCTUnwrap(body.responses.first)
        XCTAssertEqual(rules.partitions.map(\.partitionIndex), [0, 1])
        XCTAssertEqual(rules.partitions[0].errorCode, .none)
        XCTAssertEqual(rules.partitions[0].highWatermark, 4)
        XCTAssertGreaterThan(rules.partitions[0].records.byteCount, 0)
        XCTAssertEqual(rules.partitions[1].errorCode, .offsetOutOfRange)
        XCTAssertEqual(body.responses[1].partitions.map(\.errorCode), [.unknownTopicOrPartition])
        guard case .bytes(let records) = rules.partitions[0].records else { return XCTFail("records expected") }
        let header = try RecordBatchHeader.read(from: records, at: records.readerIndex)
        XCTAssertEqual(header.attributes.codec, .lz4, "an uncompressed batch is stored LZ4-compressed")
        XCTAssertEqual(try RecordBatch.records(of: records).count, 4)
    }

    func testAcksZeroIsNotAnsweredAndItsFailureClosesTheConnection() throws {
        let connection = try XCTUnwrap(connection)
        try connection.send(
            KafkaRequestEncoder.encodeFrame(
                produceRequest("rules", records: try makeBatch(count: 2), acks: 0), version: 7, correlationId: 10,
                clientId: "t"))
        // The next answer is ListOffsets's (roundTrip checks its correlation id): acks=0 got none.
        // The high watermark reaches 2 once the fsync that covers the batch is done.
        try waitUntil("the acks=0 batch to become readable", seconds: 10) { try latest("rules") == 2 }
        try connection.send(
            KafkaRequestEncoder.encodeFrame(
                produceRequest("nowhere", records: try makeBatch(count: 2), acks: 0), version: 7, correlationId: 11,
                clientId: "t"))
        XCTAssertTrue(try connection.isClosedByPeer())
    }
}
