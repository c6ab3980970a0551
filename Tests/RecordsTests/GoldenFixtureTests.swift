import Foundation
import NIOCore
import Records
import XCTest

/// Batches written by other implementations: tools/fixtures/make_python_fixtures.py (its own
/// encoder, python-lz4) and tools/fixtures/make_kcat_fixtures.py (librdkafka 2.0.2 via kcat 1.7.1).
final class GoldenFixtureTests: XCTestCase {
    struct PythonFixtures: Decodable {
        let fixtures: [PythonFixture]
        let recordSets: [String: [ExpectedRecord]]
    }

    struct PythonFixture: Decodable {
        struct Inputs: Decodable {
            let codec: String
            let baseOffset: Int64
            let partitionLeaderEpoch: Int32
            let producerId: Int64
            let producerEpoch: Int16
            let baseSequence: Int32
            let isTransactional: Bool
            let isControl: Bool
            let logAppendTime: Int64?
        }

        struct Header: Decodable {
            let baseOffset: Int64
            let batchLength: Int32
            let partitionLeaderEpoch: Int32
            let crc: UInt32
            let attributes: Int16
            let lastOffsetDelta: Int32
            let baseTimestamp: Int64
            let maxTimestamp: Int64
            let producerId: Int64
            let producerEpoch: Int16
            let baseSequence: Int32
            let recordsCount: Int32
        }

        struct Control: Decodable {
            let version: Int16
            let type: Int16
            let coordinatorEpoch: Int32?
            let leaderId: Int32?
            let voters: [Int32]?
            let grantingVoters: [Int32]?
        }

        let file: String
        let inputs: Inputs
        let header: Header
        let recordSet: String
        let expectError: String?
        let control: Control?
        let size: Int
    }

    struct KcatFixtures: Decodable {
        let kcat: String
        let fixtures: [KcatFixture]
    }

    struct KcatFixture: Decodable {
        let file: String
        let command: String
        let codec: String
        let idempotent: Bool
        let lineCount: Int
        let records: [ExpectedRecord]
    }

    /// Every Python-made batch decodes to its expected header and records, except the one with linked LZ4 blocks.
    func testPythonFixturesDecodeToTheirExpectedContent() throws {
        let expected = try fixtureJSON("python/expected.json", as: PythonFixtures.self)
        XCTAssertGreaterThanOrEqual(expected.fixtures.count, 8)
        for fixture in expected.fixtures {
            let batch = try fixtureBytes("python/\(fixture.file)")
            XCTAssertEqual(batch.readableBytes, fixture.size, fixture.file)
            let header = try RecordBatch.validate(batch, at: 0)
            let want = fixture.header
            XCTAssertEqual(
                header,
                RecordBatchHeader(
                    baseOffset: want.baseOffset, batchLength: want.batchLength,
                    partitionLeaderEpoch: want.partitionLeaderEpoch, magic: 2, crc: want.crc,
                    attributes: BatchAttributes(rawValue: want.attributes), lastOffsetDelta: want.lastOffsetDelta,
                    baseTimestamp: want.baseTimestamp, maxTimestamp: want.maxTimestamp, producerId: want.producerId,
                    producerEpoch: want.producerEpoch, baseSequence: want.baseSequence,
                    recordsCount: want.recordsCount),
                fixture.file)
            if fixture.expectError == "dependentBlocks" {
                XCTAssertThrowsError(try RecordBatch.records(of: batch), fixture.file) { error in
                    XCTAssertEqual(error as? RecordBatchError, .compression(LZ4FrameError.dependentBlocks.description))
                }
                continue
            }
            XCTAssertNil(fixture.expectError)
            let records = try RecordBatch.records(of: batch)
            let expectedRecords = try XCTUnwrap(expected.recordSets[fixture.recordSet])
            XCTAssertEqual(records.count, expectedRecords.count, fixture.file)
            for (index, (record, want)) in zip(records, expectedRecords).enumerated() {
                want.check(record, hex: true, "\(fixture.file) record \(index)")
            }
            if let control = fixture.control {
                let parsed = try ControlRecord(parsing: records[0])
                let type = ControlRecordType(rawValue: control.type)
                XCTAssertEqual(parsed, ControlRecord(version: control.version, type: type))
                if let epoch = control.coordinatorEpoch {
                    XCTAssertEqual(try ControlRecord.coordinatorEpoch(ofEndTransactionMarker: records[0].value), epoch)
                }
            }
        }
    }

    /// Our encoder, given the same inputs as the Python encoder, writes the same bytes, uncompressed.
    func testOurEncoderMatchesThePythonEncoderByteForByte() throws {
        let expected = try fixtureJSON("python/expected.json", as: PythonFixtures.self)
        var compared = 0
        for fixture in expected.fixtures where fixture.expectError == nil {
            let theirs = try fixtureBytes("python/\(fixture.file)")
            let records = try RecordBatch.records(of: theirs)
            let inputs = fixture.inputs
            let ours: ByteBuffer
            if let control = fixture.control {
                let value: ByteBuffer?
                if let epoch = control.coordinatorEpoch {
                    value = ControlRecord.endTransactionMarkerValue(coordinatorEpoch: epoch)
                } else {
                    value = ControlRecord.leaderChangeValue(
                        leaderId: control.leaderId ?? -1, voters: control.voters ?? [],
                        grantingVoters: control.grantingVoters ?? [])
                }
                ours = RecordBatchBuilder.controlBatch(
                    ControlRecord(version: control.version, type: ControlRecordType(rawValue: control.type)),
                    value: value, timestamp: fixture.header.baseTimestamp, baseOffset: Offset(inputs.baseOffset),
                    partitionLeaderEpoch: inputs.partitionLeaderEpoch, producerId: inputs.producerId,
                    producerEpoch: inputs.producerEpoch, isTransactional: inputs.isTransactional)
            } else {
                var builder = RecordBatchBuilder()
                for record in records {
                    builder.append(
                        timestamp: fixture.header.baseTimestamp + record.timestampDelta, key: record.key,
                        value: record.value, headers: record.headers)
                }
                ours = try builder.build(
                    baseOffset: Offset(inputs.baseOffset), partitionLeaderEpoch: inputs.partitionLeaderEpoch,
                    producerId: inputs.producerId, producerEpoch: inputs.producerEpoch,
                    baseSequence: inputs.baseSequence, isTransactional: inputs.isTransactional,
                    isControl: inputs.isControl, logAppendTime: inputs.logAppendTime)
            }
            if inputs.codec == "none" {
                XCTAssertEqual(Array(ours.readableBytesView), Array(theirs.readableBytesView), fixture.file)
                compared += 1
            } else {
                // Different LZ4 encoders need not agree on bytes; the records must.
                XCTAssertEqual(try RecordBatch.records(of: ours), records, fixture.file)
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 4)
    }

    /// kcat's batches (librdkafka: LZ4, uncompressed, idempotent) pass validation and decode to the lines it was given.
    func testKcatFixturesDecodeToTheLinesKcatWasGiven() throws {
        let expected = try fixtureJSON("kcat/expected.json", as: KcatFixtures.self)
        XCTAssertEqual(expected.fixtures.count, 4)
        for fixture in expected.fixtures {
            let batch = try fixtureBytes("kcat/\(fixture.file)")
            let header = try RecordBatch.validate(batch, at: 0)
            try RecordBatch.validateClientBatch(header)
            XCTAssertEqual(header.attributes.codec?.description, fixture.codec, fixture.file)
            XCTAssertEqual(header.totalSize, batch.readableBytes, "one batch per capture")
            XCTAssertEqual(Int(header.recordsCount), fixture.lineCount, fixture.file)
            if fixture.idempotent {
                XCTAssertEqual(header.producerId, 4242, "the fake broker's producer id")
                XCTAssertEqual(header.producerEpoch, 0)
                XCTAssertEqual(header.baseSequence, 0)
            } else {
                XCTAssertEqual(header.producerId, -1)
            }
            let records = try RecordBatch.records(of: batch)
            XCTAssertEqual(records.count, fixture.records.count, fixture.file)
            for (index, (record, want)) in zip(records, fixture.records).enumerated() {
                XCTAssertEqual(record.offsetDelta, Int32(index))
                want.check(record, hex: false, "\(fixture.file) record \(index)")
            }
        }
    }

    /// Re-encoding librdkafka's uncompressed batch from its records reproduces it byte for byte,
    /// and our `compress` of it decodes to the same records as librdkafka's own LZ4 batch.
    func testOurEncoderMatchesLibrdkafkaByteForByte() throws {
        let theirs = try fixtureBytes("kcat/none-keys-headers.bin")
        let header = try RecordBatch.validate(theirs, at: 0)
        let records = try RecordBatch.records(of: theirs)
        var builder = RecordBatchBuilder()
        for record in records {
            builder.append(
                timestamp: header.baseTimestamp + record.timestampDelta, key: record.key, value: record.value,
                headers: record.headers)
        }
        let ours = try builder.build(
            baseOffset: Offset(header.baseOffset), partitionLeaderEpoch: header.partitionLeaderEpoch,
            producerId: header.producerId, producerEpoch: header.producerEpoch, baseSequence: header.baseSequence)
        XCTAssertEqual(Array(ours.readableBytesView), Array(theirs.readableBytesView))

        let compressed = try RecordBatch.compress(theirs, at: 0, codec: .lz4)
        let theirsLZ4 = try RecordBatch.records(of: try fixtureBytes("kcat/lz4-keys-headers.bin"))
        let oursLZ4 = try RecordBatch.records(of: compressed)
        XCTAssertEqual(oursLZ4.map(\.key), theirsLZ4.map(\.key))
        XCTAssertEqual(oursLZ4.map(\.value), theirsLZ4.map(\.value))
        XCTAssertEqual(oursLZ4.map(\.headers), theirsLZ4.map(\.headers))
    }

    /// Our LZ4 frame of librdkafka's records section is the very frame librdkafka wrote.
    func testOurLZ4FrameMatchesLibrdkafkas() throws {
        for file in ["kcat/lz4-keys-headers.bin", "kcat/lz4-many.bin"] {
            var batch = try fixtureBytes(file)
            batch.moveReaderIndex(forwardBy: RecordBatchHeader.size)
            let plain = try LZ4Frame.decompress(batch, outputBytesMax: 1 << 20)
            var ours = ByteBuffer()
            try LZ4Frame.compress(plain, into: &ours)
            XCTAssertEqual(ours.readableBytes, batch.readableBytes, file)
            XCTAssertEqual(Array(ours.readableBytesView), Array(batch.readableBytesView), file)
        }
    }
}
