import NIOCore
import Records
import XCTest

final class VarintTests: XCTestCase {
    /// Zig-zag varints encode to the bytes Kafka's ByteUtils writes and read back unchanged.
    func testSignedVarintsMatchKafkaBytesAndRoundTrip() throws {
        let known: [(Int32, [UInt8])] = [
            (0, [0x00]), (-1, [0x01]), (1, [0x02]), (-2, [0x03]), (63, [0x7E]), (-64, [0x7F]),
            (64, [0x80, 0x01]), (300, [0xD8, 0x04]),
            (Int32.max, [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), (Int32.min, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ]
        for (value, encoded) in known {
            var buffer = ByteBuffer()
            XCTAssertEqual(buffer.writeVarint(value), encoded.count)
            XCTAssertEqual(Array(buffer.readableBytesView), encoded, "\(value)")
            XCTAssertEqual(Varint.size(value), encoded.count)
            XCTAssertEqual(try buffer.readVarint(), value)
            XCTAssertEqual(buffer.readableBytes, 0)
        }
    }

    /// Zig-zag varlongs round-trip at every power-of-two boundary and at the extremes.
    func testSignedVarlongsRoundTripAtBoundaries() throws {
        var values: [Int64] = [0, 1, -1, .max, .min]
        for shift in 0..<63 {
            let p = Int64(1) << shift
            values += [p, p - 1, -p, -p - 1, p + 1]
        }
        for value in values {
            var buffer = ByteBuffer()
            let written = buffer.writeVarlong(value)
            XCTAssertEqual(written, Varint.size(value), "\(value)")
            XCTAssertLessThanOrEqual(written, 10)
            XCTAssertEqual(try buffer.readVarlong(), value)
        }
        var buffer = ByteBuffer()
        buffer.writeVarlong(.min)
        XCTAssertEqual(Array(buffer.readableBytesView), [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }

    /// Unsigned varints (compact lengths, tagged fields) use no zig-zag.
    func testUnsignedVarintsMatchKafkaBytesAndRoundTrip() throws {
        let known: [(UInt32, [UInt8])] = [
            (0, [0x00]), (1, [0x01]), (127, [0x7F]), (128, [0x80, 0x01]), (16_383, [0xFF, 0x7F]),
            (16_384, [0x80, 0x80, 0x01]), (UInt32.max, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ]
        for (value, encoded) in known {
            var buffer = ByteBuffer()
            XCTAssertEqual(buffer.writeUnsignedVarint(value), encoded.count)
            XCTAssertEqual(Array(buffer.readableBytesView), encoded, "\(value)")
            XCTAssertEqual(Varint.size(unsigned: UInt64(value)), encoded.count)
            XCTAssertEqual(try buffer.readUnsignedVarint(), value)
        }
    }

    /// Random values of every width round-trip, and the size functions agree with the writers.
    func testRandomValuesRoundTrip() throws {
        var rng = SplitMix64(seed: testSeed("testRandomValuesRoundTrip"))
        var buffer = ByteBuffer()
        var expected: [(Int32, Int64, UInt32)] = []
        for _ in 0..<5000 {
            let bits = Int.random(in: 0...63, using: &rng)
            let wide = Int64(bitPattern: rng.next() >> UInt64(bits))
            let narrow = Int32(truncatingIfNeeded: wide)
            let unsigned = UInt32(truncatingIfNeeded: rng.next() >> UInt64(bits))
            XCTAssertEqual(buffer.writeVarint(narrow), Varint.size(narrow))
            XCTAssertEqual(buffer.writeVarlong(wide), Varint.size(wide))
            XCTAssertEqual(buffer.writeUnsignedVarint(unsigned), Varint.size(unsigned: UInt64(unsigned)))
            expected.append((narrow, wide, unsigned))
        }
        for (narrow, wide, unsigned) in expected {
            XCTAssertEqual(try buffer.readVarint(), narrow)
            XCTAssertEqual(try buffer.readVarlong(), wide)
            XCTAssertEqual(try buffer.readUnsignedVarint(), unsigned)
        }
        XCTAssertEqual(buffer.readableBytes, 0)
    }

    /// A sixth byte for a 32-bit varint, or an eleventh for a 64-bit one, is refused and the reader does not move.
    func testOverLongEncodingsAreRejected() {
        var sixBytes = ByteBuffer(bytes: [0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
        XCTAssertThrowsError(try sixBytes.readVarint()) { XCTAssertEqual($0 as? VarintError, .tooLong(maxBytes: 5)) }
        XCTAssertThrowsError(try sixBytes.readUnsignedVarint()) {
            XCTAssertEqual($0 as? VarintError, .tooLong(maxBytes: 5))
        }
        XCTAssertEqual(sixBytes.readerIndex, 0)
        // Six bytes are fine for a varlong, eleven are not.
        XCTAssertEqual(try sixBytes.getVarlong(at: 0).length, 6)
        let eleven = ByteBuffer(bytes: [UInt8](repeating: 0x80, count: 10) + [0x00])
        XCTAssertThrowsError(try eleven.getVarlong(at: 0)) {
            XCTAssertEqual($0 as? VarintError, .tooLong(maxBytes: 10))
        }
    }

    /// A varint cut short, or read past the written bytes, says truncated instead of trapping.
    func testTruncatedVarintsAreRejected() {
        for bytes: [UInt8] in [[], [0x80], [0xFF, 0xFF], [0x80, 0x80, 0x80, 0x80]] {
            var buffer = ByteBuffer(bytes: bytes)
            XCTAssertThrowsError(try buffer.readVarint()) { XCTAssertEqual($0 as? VarintError, .truncated) }
            XCTAssertThrowsError(try buffer.readVarlong()) { XCTAssertEqual($0 as? VarintError, .truncated) }
            XCTAssertThrowsError(try buffer.readUnsignedVarint()) { XCTAssertEqual($0 as? VarintError, .truncated) }
            XCTAssertEqual(buffer.readerIndex, 0)
        }
        let buffer = ByteBuffer(bytes: [0x02])
        XCTAssertThrowsError(try buffer.getVarint(at: 1)) { XCTAssertEqual($0 as? VarintError, .truncated) }
        XCTAssertThrowsError(try buffer.getVarint(at: -1)) { XCTAssertEqual($0 as? VarintError, .truncated) }
        XCTAssertThrowsError(try buffer.getVarint(at: 1 << 40)) { XCTAssertEqual($0 as? VarintError, .truncated) }
    }

    /// Reading at an index inside a buffer whose reader index has moved uses absolute indexes, as NIO does.
    func testGetVarintUsesAbsoluteIndexes() throws {
        var buffer = ByteBuffer(bytes: [0xAA, 0xBB, 0xD8, 0x04, 0x03])
        buffer.moveReaderIndex(forwardBy: 2)
        XCTAssertEqual(try buffer.getVarint(at: 2).value, 300)
        XCTAssertEqual(try buffer.getVarint(at: 4).value, -2)
        XCTAssertThrowsError(try buffer.getVarint(at: 0))
    }
}
