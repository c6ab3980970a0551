import NIOCore
import Records
import XCTest

final class RecordBatchTests: XCTestCase {
    private func assertSampleRecords(_ records: [Record], file: StaticString = #filePath, line: UInt = #line) {
        let expected = sampleRecords()
        XCTAssertEqual(records.count, expected.count, file: file, line: line)
        for (index, (record, input)) in zip(records, expected).enumerated() {
            XCTAssertEqual(record.offsetDelta, Int32(index), file: file, line: line)
            XCTAssertEqual(record.timestampDelta, input.timestamp - 1_000, file: file, line: line)
            XCTAssertEqual(record.key, input.key, file: file, line: line)
            XCTAssertEqual(record.value, input.value, file: file, line: line)
            XCTAssertEqual(record.headers, input.headers, file: file, line: line)
        }
    }

    /// An uncompressed batch round-trips: header fields as built, CRC valid, records as appended.
    func testUncompressedBatchRoundTrips() throws {
        var builder = RecordBatchBuilder()
        for record in sampleRecords() {
            builder.append(timestamp: record.timestamp, key: record.key, value: record.value, headers: record.headers)
        }
        let recordsBytes = builder.recordsBytes
        let batch = try builder.build(
            baseOffset: Offset(100), partitionLeaderEpoch: 7, producerId: 55, producerEpoch: 2, baseSequence: 9,
            isTransactional: true)
        let header = try RecordBatch.validate(batch, at: 0)
        try RecordBatch.validateClientBatch(header)
        XCTAssertEqual(batch.readableBytes, RecordBatchHeader.size + recordsBytes)
        XCTAssertEqual(header.totalSize, batch.readableBytes)
        XCTAssertEqual(header.baseOffset, 100)
        XCTAssertEqual(header.partitionLeaderEpoch, 7)
        XCTAssertEqual(header.attributes, BatchAttributes(codec: .none, transactional: true))
        XCTAssertEqual(header.lastOffsetDelta, 4)
        XCTAssertEqual(header.recordsCount, 5)
        XCTAssertEqual(header.baseTimestamp, 1_000)
        XCTAssertEqual(header.maxTimestamp, 1_500)
        XCTAssertEqual(header.producerId, 55)
        XCTAssertEqual(header.producerEpoch, 2)
        XCTAssertEqual(header.baseSequence, 9)
        XCTAssertEqual(header.lastOffset, Offset(104))
        assertSampleRecords(try RecordBatch.records(of: batch))
    }

    /// An LZ4 batch round-trips, its records section is an LZ4 frame, and it is smaller than the records.
    func testLZ4BatchRoundTrips() throws {
        let plain = try sampleBatch()
        let batch = try sampleBatch(codec: .lz4)
        let header = try RecordBatch.validate(batch, at: 0)
        XCTAssertEqual(header.attributes.codec, .lz4)
        XCTAssertLessThan(batch.readableBytes, plain.readableBytes)
        let magic = batch.getInteger(at: RecordBatchHeader.size, endianness: .little, as: UInt32.self)
        XCTAssertEqual(magic, LZ4Frame.magic)
        assertSampleRecords(try RecordBatch.records(of: batch))
    }

    /// Many records and a 1 MiB value survive both codecs; offsets and timestamps stay in order.
    func testManyRecordsAndAOneMebibyteValueRoundTrip() throws {
        var rng = SplitMix64(seed: 7)
        let big = ByteBuffer(bytes: randomBytes(1 << 20, using: &rng))
        for codec in [CompressionCodec.none, .lz4] {
            var builder = RecordBatchBuilder(baseTimestamp: 10_000)
            for i in 0..<3000 {
                builder.append(timestamp: 10_000 + Int64(i), key: buffer("key-\(i)"), value: buffer("value \(i)"))
            }
            builder.append(timestamp: 20_000, key: nil, value: big)
            let batch = try builder.build(codec: codec)
            let header = try RecordBatch.validate(batch, at: 0)
            XCTAssertEqual(header.recordsCount, 3001)
            XCTAssertEqual(header.maxTimestamp, 20_000)
            let records = try RecordBatch.records(of: batch)
            XCTAssertEqual(records.count, 3001)
            XCTAssertEqual(records.map(\.offsetDelta), (0..<3001).map { Int32($0) })
            XCTAssertEqual(records[1234].key, buffer("key-1234"))
            XCTAssertEqual(records[1234].timestampDelta, 1234)
            XCTAssertEqual(records[3000].value, big, "\(codec)")
        }
    }

    /// Re-appending decoded records reproduces the batch byte for byte.
    func testAppendingDecodedRecordsReproducesTheBatch() throws {
        let batch = try sampleBatch()
        var builder = RecordBatchBuilder(baseTimestamp: 1_000)
        for record in try RecordBatch.records(of: batch) { builder.append(record) }
        XCTAssertEqual(try builder.build(), batch)
    }

    /// LogAppendTime sets attribute bit 3 and the max timestamp; the control flag sets bit 5.
    func testLogAppendTimeAndControlAttributes() throws {
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 5, key: nil, value: buffer("x"))
        let batch = try builder.build(isControl: true, logAppendTime: 99)
        let header = try RecordBatch.validate(batch, at: 0)
        XCTAssertTrue(header.attributes.isLogAppendTime)
        XCTAssertTrue(header.attributes.isControl)
        XCTAssertEqual(header.maxTimestamp, 99)
        XCTAssertEqual(header.baseTimestamp, 5)
    }

    /// The builder refuses codecs Keel does not encode; the reader refuses codecs it does not decode.
    func testUnsupportedCodecsAreRefused() throws {
        for codec in [CompressionCodec.gzip, .snappy, .zstd] {
            var builder = RecordBatchBuilder()
            builder.append(timestamp: 0, key: nil, value: buffer("x"))
            XCTAssertThrowsError(try builder.build(codec: codec)) {
                XCTAssertEqual($0 as? RecordBatchError, .unsupportedCodec(codec.rawValue))
            }
            var batch = try sampleBatch()
            batch.setInteger(codec.rawValue, at: RecordBatchHeader.attributesOffset)
            RecordBatch.updateCRC(in: &batch, at: 0)
            XCTAssertThrowsError(try RecordBatch.records(of: batch)) {
                XCTAssertEqual($0 as? RecordBatchError, .unsupportedCodec(codec.rawValue))
            }
        }
    }

    /// `compress` LZ4-compresses an uncompressed batch, keeping every header field but codec, length and CRC.
    func testCompressKeepsHeaderFieldsAndRecords() throws {
        var builder = RecordBatchBuilder()
        for record in sampleRecords() {
            builder.append(timestamp: record.timestamp, key: record.key, value: record.value, headers: record.headers)
        }
        let plain = try builder.build(
            baseOffset: Offset(77), partitionLeaderEpoch: 3, producerId: 1, producerEpoch: 4, baseSequence: 10,
            isTransactional: true, logAppendTime: 5_000)
        // Put the batch after other bytes to check that `at:` is honoured.
        var input = ByteBuffer(bytes: [1, 2, 3])
        input.writeImmutableBuffer(plain)
        let compressed = try RecordBatch.compress(input, at: 3, codec: .lz4)
        let before = try RecordBatch.validate(plain, at: 0)
        let after = try RecordBatch.validate(compressed, at: 0)
        XCTAssertEqual(after.attributes.codec, .lz4)
        XCTAssertEqual(after.attributes.rawValue & ~0x7, before.attributes.rawValue & ~0x7)
        XCTAssertEqual(after.totalSize, compressed.readableBytes)
        var expected = before
        expected.attributes = after.attributes
        expected.batchLength = after.batchLength
        expected.crc = after.crc
        XCTAssertEqual(after, expected)
        XCTAssertEqual(try RecordBatch.records(of: compressed), try RecordBatch.records(of: plain))
        // The same bytes as building with LZ4 directly.
        var direct = RecordBatchBuilder()
        for record in sampleRecords() {
            direct.append(timestamp: record.timestamp, key: record.key, value: record.value, headers: record.headers)
        }
        let built = try direct.build(
            codec: .lz4, baseOffset: Offset(77), partitionLeaderEpoch: 3, producerId: 1, producerEpoch: 4,
            baseSequence: 10, isTransactional: true, logAppendTime: 5_000)
        XCTAssertEqual(compressed, built)
    }

    /// `compress` refuses a corrupt batch (so it never launders a bad CRC) and one already compressed.
    func testCompressRefusesCorruptAndCompressedBatches() throws {
        var corrupt = try sampleBatch()
        corrupt.setInteger(UInt8(0xEE), at: 70)
        XCTAssertThrowsError(try RecordBatch.compress(corrupt, at: 0, codec: .lz4)) {
            guard case .crcMismatch = $0 as? RecordBatchError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try RecordBatch.compress(try sampleBatch(codec: .lz4), at: 0, codec: .lz4)) {
            guard case .compression = $0 as? RecordBatchError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try RecordBatch.compress(try sampleBatch(), at: 0, codec: .zstd)) {
            XCTAssertEqual($0 as? RecordBatchError, .unsupportedCodec(4))
        }
    }

    /// A COMMIT marker batch is a transactional control batch with a 4-byte key and the coordinator epoch.
    func testCommitMarkerControlBatch() throws {
        let batch = RecordBatchBuilder.controlBatch(
            ControlRecord(type: .commit), value: ControlRecord.endTransactionMarkerValue(coordinatorEpoch: 9),
            timestamp: 123, baseOffset: Offset(50), producerId: 1234, producerEpoch: 3, isTransactional: true)
        let header = try RecordBatch.validate(batch, at: 0)
        XCTAssertTrue(header.attributes.isControl)
        XCTAssertTrue(header.attributes.isTransactional)
        XCTAssertEqual(header.producerId, 1234)
        XCTAssertEqual(header.baseSequence, -1)
        let records = try RecordBatch.records(of: batch)
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(records[0].key?.readableBytes, 4)
        let control = try ControlRecord(parsing: records[0])
        XCTAssertEqual(control, ControlRecord(version: 0, type: .commit))
        XCTAssertEqual(try ControlRecord.coordinatorEpoch(ofEndTransactionMarker: records[0].value), 9)
    }

    /// A LEADER_CHANGE batch carries Kafka's LeaderChangeMessage value and no producer.
    func testLeaderChangeControlBatch() throws {
        let value = ControlRecord.leaderChangeValue(leaderId: 2, voters: [1, 2, 3], grantingVoters: [1, 2])
        XCTAssertEqual(
            Array(value.readableBytesView),
            [0, 0, 0, 0, 0, 0, 0, 2]  // message version, Version, LeaderId
                + [4, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0]  // Voters: count + 1, (VoterId, no tags) × 3
                + [3, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0]  // GrantingVoters
                + [0])  // no tagged fields
        let batch = RecordBatchBuilder.controlBatch(
            ControlRecord(type: .leaderChange), value: value, timestamp: 1, partitionLeaderEpoch: 5)
        let header = try RecordBatch.validate(batch, at: 0)
        XCTAssertTrue(header.attributes.isControl)
        XCTAssertFalse(header.attributes.isTransactional)
        XCTAssertEqual(header.producerId, -1)
        XCTAssertEqual(try ControlRecord(parsing: try RecordBatch.records(of: batch)[0]).type, .leaderChange)
    }

    /// Control keys are parsed as Kafka does: short or negative-version keys are refused, unknown types kept.
    func testControlRecordKeyParsing() {
        func record(_ key: [UInt8]?) -> Record {
            Record(timestampDelta: 0, offsetDelta: 0, key: key.map { ByteBuffer(bytes: $0) }, value: nil)
        }
        XCTAssertThrowsError(try ControlRecord(parsing: record(nil)))
        XCTAssertThrowsError(try ControlRecord(parsing: record([0, 0, 1])))
        XCTAssertThrowsError(try ControlRecord(parsing: record([0xFF, 0xFF, 0, 1])))
        XCTAssertEqual(
            try ControlRecord(parsing: record([0, 1, 0, 42])), ControlRecord(version: 1, type: .init(rawValue: 42)))
        XCTAssertEqual(ControlRecordType(rawValue: 42).description, "UNKNOWN(42)")
        XCTAssertThrowsError(try ControlRecord.coordinatorEpoch(ofEndTransactionMarker: ByteBuffer(bytes: [0, 0, 1])))
    }

    /// One flipped bit anywhere in the CRC-covered bytes (21 to the end) is caught as a CRC mismatch.
    func testEveryFlippedBitAfterByte21IsDetected() throws {
        for codec in [CompressionCodec.none, .lz4] {
            let batch = try sampleBatch(codec: codec)
            for index in RecordBatchHeader.crcStart..<batch.writerIndex {
                for bit in 0..<8 {
                    var corrupt = batch
                    let byte: UInt8 = batch.getInteger(at: index) ?? 0
                    corrupt.setInteger(byte ^ (1 << bit), at: index)
                    XCTAssertThrowsError(try RecordBatch.validate(corrupt, at: 0)) { error in
                        guard case .crcMismatch = error as? RecordBatchError else {
                            return XCTFail("byte \(index) bit \(bit): \(error)")
                        }
                    }
                }
            }
        }
    }

    /// Every proper prefix of a batch is refused as truncated, by validation and by the record reader.
    func testEveryTruncationIsRejected() throws {
        for codec in [CompressionCodec.none, .lz4] {
            let batch = try sampleBatch(codec: codec)
            for length in 0..<batch.readableBytes {
                let prefix = batch.getSlice(at: 0, length: length) ?? ByteBuffer()
                XCTAssertThrowsError(try RecordBatch.validate(prefix, at: 0)) { error in
                    guard case .truncated = error as? RecordBatchError else {
                        return XCTFail("length \(length): \(error)")
                    }
                }
                XCTAssertThrowsError(try RecordReader(batch: prefix, at: 0))
            }
        }
    }

    /// A stream decoder fed one byte at a time says "truncated" until a batch is complete, then yields it.
    func testByteAtATimeDecodingYieldsEachBatchWhenComplete() throws {
        let batches = [try sampleBatch(), try sampleBatch(codec: .lz4, baseOffset: 5), try sampleBatch(baseOffset: 10)]
        var wire = ByteBuffer()
        for batch in batches { wire.writeImmutableBuffer(batch) }
        var ends = Set<Int>()
        var total = 0
        for batch in batches {
            total += batch.readableBytes
            ends.insert(total)
        }
        var stream = ByteBuffer()
        var decoded: [ByteBuffer] = []
        for (fed, byte) in wire.readableBytesView.enumerated() {
            stream.writeInteger(byte)
            do {
                let header = try RecordBatch.validate(stream, at: stream.readerIndex)
                XCTAssertTrue(ends.contains(fed + 1), "a batch completed early, at \(fed + 1) bytes")
                decoded.append(stream.readSlice(length: header.totalSize) ?? ByteBuffer())
            } catch {
                // A literal `catch .truncated` pattern crashes Swift 6.3.1's SILGen with typed throws.
                guard case .truncated = error else { throw error }
                XCTAssertFalse(ends.contains(fed + 1), "a complete batch reported truncated at \(fed + 1) bytes")
            }
        }
        XCTAssertEqual(decoded, batches)
        XCTAssertEqual(stream.readableBytes, 0)
        for batch in decoded { assertSampleRecords(try RecordBatch.records(of: batch)) }
    }

    /// A records count that disagrees with the records section is refused, whichever way it is wrong.
    func testRecordCountMismatchIsRejected() throws {
        for count: Int32 in [4, 6, 1000] {
            var batch = try sampleBatch()
            batch.setInteger(count, at: 57)
            RecordBatch.updateCRC(in: &batch, at: 0)
            XCTAssertThrowsError(try RecordBatch.records(of: batch), "count \(count)") { error in
                guard case .malformedRecord = error as? RecordBatchError else { return XCTFail("\(error)") }
            }
        }
    }

    /// A decompression bomb inside a batch stops at the reader's limit.
    func testCompressedBatchExpandingPastTheLimitIsRefused() throws {
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 0, key: nil, value: ByteBuffer(repeating: 0, count: 4 << 20))
        let batch = try builder.build(codec: .lz4)
        XCTAssertLessThan(batch.readableBytes, 64 * 1024)
        XCTAssertThrowsError(try RecordBatch.records(of: batch, decompressedBytesMax: 1 << 20)) { error in
            guard case .compression = error as? RecordBatchError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try RecordBatch.records(of: batch, decompressedBytesMax: 5 << 20).count, 1)
    }

    /// A control batch passes the plain validation (replicas store them) but never the client-batch rules.
    func testControlBatchesAreNotClientBatches() throws {
        let control = RecordBatchBuilder.controlBatch(
            ControlRecord(type: .leaderChange),
            value: ControlRecord.leaderChangeValue(leaderId: 1, voters: [1, 2, 3], grantingVoters: [1, 2]),
            timestamp: 0)
        let header = try RecordBatch.validate(control, at: 0)
        XCTAssertTrue(header.attributes.isControl)
        XCTAssertThrowsError(try RecordBatch.validateClientBatch(header)) { error in
            XCTAssertEqual(error as? RecordBatchError, .controlBatchNotAllowed)
        }
        XCTAssertNoThrow(try RecordBatch.validateClientBatch(RecordBatch.validate(sampleBatch(), at: 0)))
    }
}
