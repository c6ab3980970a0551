import KafkaProtocol
import NIOCore
import XCTest

final class PrimitivesTests: XCTestCase {
    /// Fixed-width integers, strings, bytes, arrays and UUIDs read back what the writer wrote.
    func testClassicPrimitivesRoundTrip() throws {
        var writer = KafkaWriter()
        writer.writeInt8(-3)
        writer.writeInt16(-300)
        writer.writeInt32(70_000)
        writer.writeInt64(-5_000_000_000)
        writer.writeBool(true)
        writer.writeString("héllo")
        writer.writeNullableString(nil)
        writer.writeBytes(buffer([1, 2, 3]))
        writer.writeNullableBytes(nil)
        writer.writeInt32Array([1, -1, Int32.max])
        writer.writeNullableStringArray(nil)
        writer.writeUUID(KafkaUUID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10))

        var reader = KafkaReader(writer.buffer)
        XCTAssertEqual(try reader.readInt8(), -3)
        XCTAssertEqual(try reader.readInt16(), -300)
        XCTAssertEqual(try reader.readInt32(), 70_000)
        XCTAssertEqual(try reader.readInt64(), -5_000_000_000)
        XCTAssertEqual(try reader.readBool(), true)
        XCTAssertEqual(try reader.readString(), "héllo")
        XCTAssertNil(try reader.readNullableString())
        XCTAssertEqual(bytes(try reader.readBytes()), [1, 2, 3])
        XCTAssertNil(try reader.readNullableBytes())
        XCTAssertEqual(try reader.readInt32Array(), [1, -1, Int32.max])
        XCTAssertNil(try reader.readNullableStringArray())
        XCTAssertEqual(try reader.readUUID(), KafkaUUID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10))
        XCTAssertNoThrow(try reader.expectEnd())
    }

    /// A string is an int16 byte length followed by UTF-8; null is length -1.
    func testStringLayout() {
        var writer = KafkaWriter()
        writer.writeString("ab")
        writer.writeNullableString(nil)
        XCTAssertEqual(bytes(writer.buffer), [0x00, 0x02, 0x61, 0x62, 0xFF, 0xFF])
    }

    /// Unsigned varints use 7 bits a byte, low group first, and at most 5 bytes.
    func testUnsignedVarintLayoutAndLimits() throws {
        let cases: [(UInt32, [UInt8])] = [
            (0, [0x00]), (1, [0x01]), (127, [0x7F]), (128, [0x80, 0x01]), (300, [0xAC, 0x02]),
            (16_384, [0x80, 0x80, 0x01]), (UInt32.max, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ]
        for (value, encoded) in cases {
            var writer = KafkaWriter()
            writer.writeUnsignedVarint(value)
            XCTAssertEqual(bytes(writer.buffer), encoded, "encoding \(value)")
            var reader = KafkaReader(buffer(encoded))
            XCTAssertEqual(try reader.readUnsignedVarint(), value)
        }
        var tooWide = KafkaReader(buffer([0xFF, 0xFF, 0xFF, 0xFF, 0x1F]))
        XCTAssertThrowsError(try tooWide.readUnsignedVarint()) {
            XCTAssertEqual($0 as? KafkaProtocolError, .malformedVarint)
        }
        var endless = KafkaReader(buffer([0x80, 0x80, 0x80, 0x80, 0x80, 0x80]))
        XCTAssertThrowsError(try endless.readUnsignedVarint()) {
            XCTAssertEqual($0 as? KafkaProtocolError, .malformedVarint)
        }
        var cut = KafkaReader(buffer([0x80]))
        XCTAssertThrowsError(try cut.readUnsignedVarint()) {
            XCTAssertEqual($0 as? KafkaProtocolError, .truncated(needed: 1, remaining: 0))
        }
    }

    /// Compact strings, bytes and arrays carry length + 1 as an unsigned varint, 0 meaning null.
    func testCompactFormsRoundTrip() throws {
        var writer = KafkaWriter()
        writer.writeCompactString("kcat")
        writer.writeCompactNullableString(nil)
        writer.writeCompactBytes(buffer([7, 8]))
        writer.writeCompactNullableBytes(nil)
        writer.writeCompactArray([Int16(5), 6]) { $0.writeInt16($1) }
        writer.writeCompactNullableArray([Int16]?.none) { $0.writeInt16($1) }
        writer.writeEmptyTaggedFields()
        XCTAssertEqual(
            bytes(writer.buffer),
            [0x05, 0x6B, 0x63, 0x61, 0x74, 0x00, 0x03, 0x07, 0x08, 0x00, 0x03, 0x00, 0x05, 0x00, 0x06, 0x00, 0x00])

        var reader = KafkaReader(writer.buffer)
        XCTAssertEqual(try reader.readCompactString(), "kcat")
        XCTAssertNil(try reader.readCompactNullableString())
        XCTAssertEqual(bytes(try reader.readCompactBytes()), [7, 8])
        XCTAssertNil(try reader.readCompactNullableBytes())
        let array = try reader.readCompactArray(minElementBytes: 2) {
            (reader: inout KafkaReader) throws(KafkaProtocolError) in try reader.readInt16()
        }
        XCTAssertEqual(array, [5, 6])
        let null = try reader.readCompactNullableArray(minElementBytes: 2) {
            (reader: inout KafkaReader) throws(KafkaProtocolError) in try reader.readInt16()
        }
        XCTAssertNil(null)
        try reader.skipTaggedFields()
        XCTAssertEqual(reader.remaining, 0)
    }

    /// Unknown tagged fields are skipped by their size, leaving the reader on the next field.
    func testTaggedFieldsAreSkipped() throws {
        var reader = KafkaReader(buffer([0x02, 0x00, 0x03, 0x61, 0x62, 0x63, 0x05, 0x00, 0x2A]))
        try reader.skipTaggedFields()
        XCTAssertEqual(try reader.readInt8(), 42)

        var oversize = KafkaReader(buffer([0x01, 0x00, 0x10, 0x61]))
        XCTAssertThrowsError(try oversize.skipTaggedFields()) {
            XCTAssertEqual($0 as? KafkaProtocolError, .truncated(needed: 16, remaining: 1))
        }
        var tooMany = KafkaReader(buffer([0x7F, 0x00, 0x00]))
        XCTAssertThrowsError(try tooMany.skipTaggedFields()) {
            XCTAssertEqual($0 as? KafkaProtocolError, .tooManyElements(count: 127, max: 1))
        }
    }

    /// Malformed lengths, nulls and encodings become typed errors.
    func testMalformedInputGivesTypedErrors() {
        func check(_ input: [UInt8], _ expected: KafkaProtocolError, _ read: (inout KafkaReader) throws -> Void) {
            var reader = KafkaReader(buffer(input))
            XCTAssertThrowsError(try read(&reader)) { XCTAssertEqual($0 as? KafkaProtocolError, expected) }
        }
        check([0xFF, 0xFE], .invalidLength(-2)) { _ = try $0.readNullableString() }
        check([0xFF, 0xFF], .unexpectedNull) { _ = try $0.readString() }
        check([0x00, 0x02, 0xC3, 0x28], .invalidUTF8) { _ = try $0.readString() }
        check([0x00, 0x05, 0x61], .truncated(needed: 5, remaining: 1)) { _ = try $0.readString() }
        check([0xFF, 0xFF, 0xFF, 0xFF], .unexpectedNull) { _ = try $0.readBytes() }
        check([0x80, 0x00, 0x00, 0x00], .invalidLength(Int(Int32.min))) { _ = try $0.readNullableBytes() }
        check([0x00, 0x00, 0x00, 0x09, 1, 2], .truncated(needed: 9, remaining: 2)) { _ = try $0.readBytes() }
        check([0xFF, 0xFF, 0xFF, 0xFF], .unexpectedNull) { _ = try $0.readInt32Array() }
        check([0xFF, 0xFF, 0xFF, 0xFE], .invalidLength(-2)) { _ = try $0.readInt32Array() }
        check([0x00], .unexpectedNull) { _ = try $0.readCompactString() }
        check([0x03, 0xC3], .truncated(needed: 2, remaining: 1)) { _ = try $0.readCompactString() }
        check([0x00], .truncated(needed: 2, remaining: 1)) { _ = try $0.readInt16() }
        check([0x01, 0x02, 0x03], .truncated(needed: 16, remaining: 3)) { _ = try $0.readUUID() }
    }

    /// A hostile array count is refused before anything is reserved: count × minimum size must fit.
    func testArrayCountIsBoundedByRemainingBytesAndLimit() {
        var huge = KafkaReader(buffer([0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1]))
        XCTAssertThrowsError(try huge.readInt32Array()) {
            XCTAssertEqual($0 as? KafkaProtocolError, .tooManyElements(count: Int(Int32.max), max: 1))
        }
        var limited = KafkaReader(
            buffer([0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]),
            limits: KafkaReader.Limits(arrayCountMax: 2))
        XCTAssertThrowsError(try limited.readInt32Array()) {
            XCTAssertEqual($0 as? KafkaProtocolError, .tooManyElements(count: 3, max: 2))
        }
        var compactHuge = KafkaReader(buffer([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))
        XCTAssertThrowsError(
            try compactHuge.readCompactArray(minElementBytes: 1) {
                (reader: inout KafkaReader) throws(KafkaProtocolError) in try reader.readInt8()
            }
        ) { XCTAssertEqual($0 as? KafkaProtocolError, .tooManyElements(count: Int(UInt32.max) - 1, max: 0)) }
    }

    /// Records come back as a slice of the request frame, without copying the bytes.
    func testRecordsAreASliceOfTheFrame() throws {
        var writer = KafkaWriter()
        writer.writeRecords(Samples.records)
        let frame = writer.buffer
        var reader = KafkaReader(frame)
        let records = try XCTUnwrap(try reader.readRecords())
        XCTAssertEqual(records, Samples.records)
        let frameBase = frame.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let recordsBase = records.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(recordsBase, frameBase + 4, "records must share the frame's storage")
    }

    /// Error codes carry Kafka's names and retriability.
    func testErrorCodeNames() {
        XCTAssertEqual(ErrorCode.notLeaderOrFollower.description, "NOT_LEADER_OR_FOLLOWER(6)")
        XCTAssertEqual(ErrorCode(rawValue: 35), .unsupportedVersion)
        XCTAssertTrue(ErrorCode.notLeaderOrFollower.isRetriable)
        XCTAssertFalse(ErrorCode.invalidRecord.isRetriable)
        XCTAssertEqual(ErrorCode(999).name, "UNKNOWN(999)")
    }
}
