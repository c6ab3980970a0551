import NIOCore
import Records
import XCTest

final class RecordTests: XCTestCase {
    /// A record with every optional part round-trips, and its size is known before writing.
    func testRecordRoundTripsWithNullsEmptiesAndHeaders() throws {
        let records = [
            Record(timestampDelta: 0, offsetDelta: 0, key: buffer("k"), value: buffer("v")),
            Record(timestampDelta: -12, offsetDelta: 1, key: nil, value: nil),
            Record(timestampDelta: 1 << 40, offsetDelta: 2, key: ByteBuffer(), value: ByteBuffer()),
            Record(
                timestampDelta: 5, offsetDelta: 3, key: buffer("k"), value: buffer("v"),
                headers: [
                    RecordHeader(key: "a", value: buffer("1")), RecordHeader(key: "null", value: nil),
                    RecordHeader(key: "ünïcødé", value: ByteBuffer()),
                ]),
        ]
        var buffer = ByteBuffer()
        for record in records {
            let before = buffer.writerIndex
            XCTAssertEqual(record.write(to: &buffer), record.encodedSize)
            XCTAssertEqual(buffer.writerIndex - before, record.encodedSize)
        }
        for record in records {
            XCTAssertEqual(try Record.read(from: &buffer), record)
        }
        XCTAssertEqual(buffer.readableBytes, 0)
    }

    /// The encoding is DefaultRecord's, byte for byte, on a hand-worked example.
    func testRecordBytesFollowKafkasLayout() {
        let record = Record(
            timestampDelta: 1, offsetDelta: 2, key: buffer("k"), value: nil,
            headers: [RecordHeader(key: "h", value: buffer("v"))])
        var out = ByteBuffer()
        record.write(to: &out)
        // length 11 → 0x16; attributes; ts 1 → 0x02; offset 2 → 0x04; key len 1 → 0x02 'k';
        // value -1 → 0x01; 1 header → 0x02; key len 1 'h'; value len 1 'v'.
        let expected: [UInt8] = [0x16, 0x00, 0x02, 0x04, 0x02, 0x6B, 0x01, 0x02, 0x02, 0x68, 0x02, 0x76]
        XCTAssertEqual(Array(out.readableBytesView), expected)
    }

    /// Every malformed record is refused with `malformedRecord`, never a trap.
    func testMalformedRecordsAreRejected() {
        let cases: [(String, [UInt8])] = [
            ("length beyond the bytes", [0x20, 0x00]),
            ("negative length", [0x01]),
            ("no attributes", [0x00]),
            ("key length below -1", [0x0A, 0x00, 0x00, 0x00, 0x03, 0x01]),
            ("key longer than the record", [0x0A, 0x00, 0x00, 0x00, 0x40, 0x01]),
            ("value longer than the record", [0x0A, 0x00, 0x00, 0x00, 0x01, 0x40]),
            ("negative header count", [0x0C, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01]),
            ("header count beyond the bytes", [0x0C, 0x00, 0x00, 0x00, 0x01, 0x01, 0x7E]),
            ("null header key", [0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01, 0x01]),
            ("bytes left after the fields", [0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00]),
            ("over-long varint", [0x18, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        ]
        for (name, bytes) in cases {
            var input = ByteBuffer(bytes: bytes)
            XCTAssertThrowsError(try Record.read(from: &input), name) { error in
                guard case .malformedRecord = error as? RecordBatchError else {
                    return XCTFail("\(name): \(error)")
                }
            }
        }
    }

    /// Decoded keys and values are slices of the input: no payload is copied.
    func testDecodedPayloadSharesTheInputStorage() throws {
        var out = ByteBuffer()
        Record(timestampDelta: 0, offsetDelta: 0, key: buffer("key"), value: buffer("value")).write(to: &out)
        let storage = out.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let record = try Record.read(from: &out)
        let valueAddress = record.value?.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(valueAddress, storage + 9)  // length, attributes, 2 deltas, key length, "key", value length
    }
}
