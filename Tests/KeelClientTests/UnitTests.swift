import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

final class ResponseMatcherTests: XCTestCase {
    /// Responses that arrive in request order each find their request.
    func testResponsesInOrderMatchTheirRequests() {
        var matcher = ResponseMatcher<String>()
        matcher.expect(7, "metadata")
        matcher.expect(8, "fetch")
        matcher.expect(9, "produce")
        guard case .matched(let first) = matcher.match(7) else { return XCTFail("7 should match") }
        guard case .matched(let second) = matcher.match(8) else { return XCTFail("8 should match") }
        XCTAssertEqual([first, second], ["metadata", "fetch"])
        XCTAssertEqual(matcher.count, 1)
    }

    /// A response that overtakes an earlier one is a mismatch naming the id expected, and the
    /// pending requests stay for the caller to fail.
    func testOutOfOrderResponseIsAMismatch() {
        var matcher = ResponseMatcher<String>()
        matcher.expect(1, "a")
        matcher.expect(2, "b")
        guard case .mismatch(let expected, let actual) = matcher.match(2) else { return XCTFail("must not match") }
        XCTAssertEqual(expected, 1)
        XCTAssertEqual(actual, 2)
        XCTAssertEqual(matcher.removeAll(), ["a", "b"])
        XCTAssertEqual(matcher.count, 0)
    }

    /// A response when nothing is pending (e.g. an answer to an acks=0 produce) is a mismatch.
    func testResponseWithNothingPendingIsAMismatch() {
        var matcher = ResponseMatcher<Int>()
        guard case .mismatch(let expected, _) = matcher.match(5) else { return XCTFail("must not match") }
        XCTAssertNil(expected)
    }

    /// A long run of requests keeps matching after the consumed prefix is compacted away.
    func testLongRunsCompact() {
        var matcher = ResponseMatcher<Int32>()
        for id in Int32(0)..<200 { matcher.expect(id, id) }
        for id in Int32(0)..<150 {
            guard case .matched(let value) = matcher.match(id) else { return XCTFail("\(id) should match") }
            XCTAssertEqual(value, id)
        }
        XCTAssertEqual(matcher.count, 50)
        XCTAssertTrue(matcher.contains(150))
        XCTAssertFalse(matcher.contains(149))
    }
}

final class RecordAccumulatorTests: XCTestCase {
    private let partition = TopicPartition(topic: "t", partition: 0)

    /// A batch closes before the record that would take it past batchBytesMax, and the records
    /// keep their order across batches.
    func testBatchClosesWhenTheNextRecordWouldNotFit() throws {
        var accumulator = RecordAccumulator<Int>(batchBytesMax: 400)
        var closed: [ClosedBatch<Int>] = []
        for index in 0..<20 {
            let outcome = accumulator.append(
                to: partition, timestamp: 1_000, key: nil, value: ByteBuffer(repeating: UInt8(index), count: 40),
                headers: [], waiter: index, nowMs: 0)
            closed += outcome.closed
        }
        closed += accumulator.closeAll()
        XCTAssertGreaterThan(closed.count, 1)
        for batch in closed.dropLast() { XCTAssertLessThanOrEqual(batch.bytes, 400) }
        XCTAssertEqual(closed.map(\.recordCount).reduce(0, +), 20)
        let waiters = closed.flatMap { $0.waiters.map(\.waiter) }
        XCTAssertEqual(waiters, Array(0..<20), "every record's waiter, in order")
        for batch in closed {
            XCTAssertEqual(batch.waiters.map(\.offsetDelta), (0..<batch.recordCount).map { $0 })
        }
        var values: [UInt8] = []
        for batch in closed {
            let bytes = try batch.builder.build(codec: .lz4)
            values += try RecordBatch.records(of: bytes).map { $0.value?.getInteger(at: 0, as: UInt8.self) ?? 255 }
        }
        XCTAssertEqual(values, (0..<20).map { UInt8($0) })
    }

    /// A record larger than batchBytesMax still gets a batch of its own.
    func testOversizeRecordGetsItsOwnBatch() {
        var accumulator = RecordAccumulator<Int>(batchBytesMax: 200)
        _ = accumulator.append(
            to: partition, timestamp: 1, key: nil, value: ByteBuffer(repeating: 1, count: 10), headers: [], waiter: nil,
            nowMs: 0)
        let outcome = accumulator.append(
            to: partition, timestamp: 1, key: nil, value: ByteBuffer(repeating: 2, count: 1_000), headers: [],
            waiter: nil, nowMs: 0)
        XCTAssertEqual(outcome.closed.map(\.recordCount), [1, 1], "the small batch, then the big record alone")
        XCTAssertNil(accumulator.open[partition])
    }

    /// Linger: only batches older than lingerMs close, and a stale timer (old generation) closes nothing.
    func testLingerClosesOnlyExpiredBatchesOfTheRightGeneration() {
        var accumulator = RecordAccumulator<Int>(batchBytesMax: 64 * 1024)
        let other = TopicPartition(topic: "t", partition: 1)
        let first = accumulator.append(
            to: partition, timestamp: 1, key: nil, value: ByteBuffer(string: "a"), headers: [], waiter: nil, nowMs: 0)
        _ = accumulator.append(
            to: other, timestamp: 1, key: nil, value: ByteBuffer(string: "b"), headers: [], waiter: nil, nowMs: 4)
        XCTAssertEqual(accumulator.closeExpired(nowMs: 5, lingerMs: 5).map(\.topicPartition), [partition])
        let generation = try! XCTUnwrap(first.startedGeneration)
        _ = accumulator.append(
            to: partition, timestamp: 1, key: nil, value: ByteBuffer(string: "c"), headers: [], waiter: nil, nowMs: 6)
        XCTAssertNil(accumulator.close(partition, generation: generation), "the old timer must not close the new batch")
        XCTAssertEqual(accumulator.closeAll().count, 2)
    }
}

final class SequenceNumberTests: XCTestCase {
    /// Each partition numbers its batches from 0 by record count, independently.
    func testSequencesAdvanceByRecordCountPerPartition() {
        var sequences = SequenceNumbers()
        let a = TopicPartition(topic: "t", partition: 0)
        let b = TopicPartition(topic: "t", partition: 1)
        XCTAssertEqual(sequences.assign(a, count: 3), 0)
        XCTAssertEqual(sequences.assign(a, count: 5), 3)
        XCTAssertEqual(sequences.assign(b, count: 2), 0)
        XCTAssertEqual(sequences.assign(a, count: 1), 8)
        XCTAssertEqual(sequences.peek(b), 2)
        sequences.reset(a, to: 3)
        XCTAssertEqual(sequences.assign(a, count: 1), 3)
    }

    /// Sequences wrap from Int32.max to 0, as Kafka's DefaultRecordBatch.incrementSequence does.
    func testSequencesWrapPastInt32Max() {
        XCTAssertEqual(SequenceNumbers.increment(Int32.max, by: 1), 0)
        XCTAssertEqual(SequenceNumbers.increment(Int32.max - 1, by: 3), 1)
        XCTAssertEqual(SequenceNumbers.increment(5, by: 3), 8)
    }
}

final class ErrorClassificationTests: XCTestCase {
    /// Leadership and transport errors are retriable and refresh metadata; request mistakes are not.
    func testErrorsMapToRetriableOrNot() {
        let retriable: [KeelClientError] = [
            .broker(.notLeaderOrFollower, context: ""), .broker(.leaderNotAvailable, context: ""),
            .broker(.unknownTopicOrPartition, context: ""), .broker(.requestTimedOut, context: ""),
            .broker(.notEnoughReplicas, context: ""), .connectionClosed(address: "x"),
            .connectFailed(address: "x", reason: "refused"), .requestTimedOut(api: .produce, timeoutMs: 1),
            .leaderNotAvailable(topic: "t", partition: 0),
        ]
        for error in retriable { XCTAssertTrue(error.isRetriable, "\(error)") }
        let fatal: [KeelClientError] = [
            .broker(.messageTooLarge, context: ""), .broker(.invalidRecord, context: ""),
            .broker(.offsetOutOfRange, context: ""),
            .broker(.topicAlreadyExists, context: ""), .broker(.outOfOrderSequenceNumber, context: ""),
            .broker(.invalidProducerEpoch, context: ""), .protocolViolation("x"), .unknownTopic("t"),
            .unsupportedVersion(api: .fetch, version: 11, brokerRange: 12...13), .closed,
        ]
        for error in fatal { XCTAssertFalse(error.isRetriable, "\(error)") }
        XCTAssertTrue(KeelClientError.broker(.notLeaderOrFollower, context: "").invalidatesMetadata)
        XCTAssertTrue(KeelClientError.broker(.unknownTopicOrPartition, context: "").invalidatesMetadata)
        XCTAssertTrue(KeelClientError.broker(.leaderNotAvailable, context: "").invalidatesMetadata)
        XCTAssertFalse(KeelClientError.broker(.messageTooLarge, context: "").invalidatesMetadata)
    }

    /// Bootstrap lists parse host:port pairs and refuse anything else with one clear error.
    func testBootstrapAddressesParse() throws {
        XCTAssertEqual(
            try BrokerAddress.parseList("127.0.0.1:9092, broker-2:19092,[::1]:9093"),
            [
                BrokerAddress(host: "127.0.0.1", port: 9092), BrokerAddress(host: "broker-2", port: 19092),
                BrokerAddress(host: "::1", port: 9093),
            ])
        for bad in ["", "host", "host:", ":9092", "host:0", "host:70000", "host:x"] {
            XCTAssertThrowsError(try BrokerAddress.parseList(bad), bad)
        }
    }
}

final class FetchDecoderTests: XCTestCase {
    private func batch(base: Int64, values: [String], control: Bool = false) throws -> ByteBuffer {
        if control {
            return RecordBatchBuilder.controlBatch(
                ControlRecord(type: .leaderChange),
                value: ControlRecord.leaderChangeValue(leaderId: 1, voters: [1], grantingVoters: [1]), timestamp: 5,
                baseOffset: Offset(base))
        }
        var builder = RecordBatchBuilder()
        for (index, value) in values.enumerated() {
            builder.append(
                timestamp: 100 + Int64(index), key: ByteBuffer(string: "k\(index)"), value: ByteBuffer(string: value),
                headers: [RecordHeader(key: "h", value: nil)])
        }
        return try builder.build(codec: .lz4, baseOffset: Offset(base))
    }

    /// Records before the fetch offset inside the first batch, control batches and a batch cut
    /// short by max bytes are all left out; the next offset follows the last whole batch.
    func testSkipsEarlierRecordsControlBatchesAndAPartialTail() throws {
        var bytes = try batch(base: 10, values: ["a", "b", "c"])
        var control = try batch(base: 13, values: [], control: true)
        bytes.writeBuffer(&control)
        var third = try batch(base: 14, values: ["d", "e"])
        bytes.writeBuffer(&third)
        var partial = try batch(base: 16, values: ["f"])
        bytes.writeBytes(partial.readBytes(length: partial.readableBytes - 5) ?? [])
        let decoded = try FetchDecoder.decode(bytes, topic: "t", partition: 0, from: Offset(11))
        XCTAssertEqual(decoded.records.map(\.offset.value), [11, 12, 14, 15])
        XCTAssertEqual(decoded.records.map { $0.value.map { String(buffer: $0) } }, ["b", "c", "d", "e"])
        XCTAssertEqual(decoded.records.map(\.timestamp), [101, 102, 100, 101])
        XCTAssertEqual(decoded.records.first?.headers, [RecordHeader(key: "h", value: nil)])
        XCTAssertEqual(decoded.next, Offset(16))
    }

    /// A batch whose CRC does not match is reported as corrupt, never returned.
    func testCorruptBatchIsAnError() throws {
        var bytes = try batch(base: 0, values: ["a"])
        let last = bytes.writerIndex - 1
        bytes.setInteger((bytes.getInteger(at: last, as: UInt8.self) ?? 0) ^ 0xff, at: last)
        XCTAssertThrowsError(try FetchDecoder.decode(bytes, topic: "t", partition: 0, from: .zero)) { error in
            guard case .corruptBatch = error as? KeelClientError else { return XCTFail("\(error)") }
        }
    }
}
