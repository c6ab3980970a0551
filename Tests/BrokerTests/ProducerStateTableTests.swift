import Broker
import KafkaProtocol
import Records
import XCTest

/// The idempotence rules as a plain value: retries, gaps, epochs, the 5-batch window and
/// sequence wrap-around.
final class ProducerStateTableTests: XCTestCase {
    private func batch(_ first: Int32, _ last: Int32, at offset: Int64) -> ProducerStateTable.BatchMetadata {
        .init(
            firstSequence: first, lastSequence: last, firstOffset: Offset(offset),
            lastOffset: Offset(offset + Int64(last - first)))
    }

    func testRetriesOfTheLastFiveBatchesAreDuplicatesAndOlderOnesAreNot() {
        var table = ProducerStateTable()
        XCTAssertEqual(table.check(producerId: 9, epoch: 0, firstSequence: 0, lastSequence: 1), .append)
        for i in 0..<7 {
            let first = Int32(i * 2)
            table.record(producerId: 9, epoch: 0, batch: batch(first, first + 1, at: Int64(100 + i * 2)))
        }
        XCTAssertEqual(
            table.check(producerId: 9, epoch: 0, firstSequence: 12, lastSequence: 13),
            .duplicate(batch(12, 13, at: 112)))
        XCTAssertEqual(
            table.check(producerId: 9, epoch: 0, firstSequence: 4, lastSequence: 5), .duplicate(batch(4, 5, at: 104)))
        XCTAssertEqual(
            table.check(producerId: 9, epoch: 0, firstSequence: 2, lastSequence: 3),
            .reject(.outOfOrderSequenceNumber), "only the last 5 batches are remembered")
        XCTAssertEqual(table.check(producerId: 9, epoch: 0, firstSequence: 14, lastSequence: 20), .append)
        XCTAssertEqual(
            table.check(producerId: 9, epoch: 0, firstSequence: 15, lastSequence: 20),
            .reject(.outOfOrderSequenceNumber))
    }

    func testANewEpochStartsAtZeroAndFencesTheOldOne() {
        var table = ProducerStateTable()
        table.record(producerId: 1, epoch: 3, batch: batch(0, 4, at: 0))
        XCTAssertEqual(
            table.check(producerId: 1, epoch: 2, firstSequence: 5, lastSequence: 5), .reject(.invalidProducerEpoch))
        XCTAssertEqual(
            table.check(producerId: 1, epoch: 4, firstSequence: 5, lastSequence: 5), .reject(.outOfOrderSequenceNumber))
        XCTAssertEqual(table.check(producerId: 1, epoch: 4, firstSequence: 0, lastSequence: 0), .append)
        table.record(producerId: 1, epoch: 4, batch: batch(0, 0, at: 5))
        XCTAssertEqual(
            table.check(producerId: 1, epoch: 3, firstSequence: 5, lastSequence: 5), .reject(.invalidProducerEpoch))
        XCTAssertEqual(table.check(producerId: 2, epoch: 0, firstSequence: 42, lastSequence: 42), .append)
    }

    func testSequencesWrapPastInt32Max() {
        XCTAssertEqual(ProducerStateTable.lastSequence(first: Int32.max - 1, lastOffsetDelta: 3), 1)
        XCTAssertEqual(ProducerStateTable.lastSequence(first: 10, lastOffsetDelta: 3), 13)
        var table = ProducerStateTable()
        table.record(producerId: 1, epoch: 0, batch: batch(Int32.max - 1, Int32.max, at: 0))
        XCTAssertEqual(table.check(producerId: 1, epoch: 0, firstSequence: 0, lastSequence: 3), .append)
    }

    func testRecoveryReadsIdempotentBatchHeadersOnly() throws {
        var table = ProducerStateTable()
        var plain = try makeBatch(count: 2)
        var idempotent = try makeBatch(count: 3, producerId: 5, epoch: 1, sequence: 0)
        RecordBatch.setBaseOffset(Offset(10), in: &idempotent, at: 0)
        RecordBatch.setBaseOffset(Offset(8), in: &plain, at: 0)
        table.recover(try RecordBatchHeader.read(from: plain, at: 0))
        table.recover(try RecordBatchHeader.read(from: idempotent, at: 0))
        XCTAssertEqual(table.producerCount, 1)
        XCTAssertEqual(
            table.check(producerId: 5, epoch: 1, firstSequence: 0, lastSequence: 2), .duplicate(batch(0, 2, at: 10)))
    }
}

/// Topic configs: Kafka names in, validated values out.
final class TopicConfigTests: XCTestCase {
    func testOverridesAreAppliedAndBadValuesRefused() throws {
        let config = try TopicConfig().applying([
            "retention.ms": "-1", "retention.bytes": "1048576", "segment.bytes": "1048576",
            "max.message.bytes": "2000000", "compression.type": "producer", "cleanup.policy": "delete",
        ])
        XCTAssertEqual(config.retentionMs, -1)
        XCTAssertEqual(config.compression, .producer)
        XCTAssertEqual(config.value(of: "max.message.bytes"), "2000000")
        XCTAssertNil(config.logConfig(flushPolicy: .fsync).retentionMsMax)
        XCTAssertEqual(TopicConfig().value(of: "compression.type"), "lz4")
        for bad in [
            ["cleanup.policy": "compact"], ["compression.type": "brotli"], ["segment.bytes": "12"],
            ["retention.ms": "soon"], ["unclean.leader.election.enable": "true"], ["max.message.bytes": "-1"],
        ] {
            XCTAssertThrowsError(try TopicConfig().applying(bad), "\(bad)")
        }
    }

    func testTopicNamesFollowKafkasRules() {
        XCTAssertNil(Broker.topicNameProblem("orders.v2_EU-1"))
        for bad in ["", ".", "..", "a/b", "naïve", String(repeating: "x", count: 250)] {
            XCTAssertNotNil(Broker.topicNameProblem(bad), bad)
        }
    }
}
