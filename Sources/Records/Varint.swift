import NIOCore

/// Why a varint could not be read.
public enum VarintError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes ended before the last byte of the varint (one without the 0x80 bit).
    case truncated
    /// More bytes than the type allows (5 for 32-bit, 10 for 64-bit values).
    case tooLong(maxBytes: Int)

    /// What went wrong, for logs.
    public var description: String {
        switch self {
        case .truncated: "truncated varint"
        case .tooLong(let maxBytes): "varint longer than \(maxBytes) bytes"
        }
    }
}

/// Sizes of the variable-length integers used by Kafka.
///
/// Records use zig-zag signed varints (protobuf `sint32` / `sint64`): 0 → 0, -1 → 1,
/// 1 → 2, -2 → 3, … then 7 bits per byte, least significant group first, the 0x80 bit
/// set on every byte but the last. Compact lengths and tagged fields of flexible Kafka
/// API versions use the same 7-bit groups on an unsigned value, without zig-zag.
public enum Varint {
    /// Longest encoding of a 32-bit value.
    public static let bytesMax32 = 5
    /// Longest encoding of a 64-bit value.
    public static let bytesMax64 = 10

    /// Bytes that `value` takes as an unsigned varint.
    @inlinable
    public static func size(unsigned value: UInt64) -> Int {
        // One byte per started group of 7 bits; 0 still takes one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    /// Bytes that `value` takes as a zig-zag varint.
    @inlinable
    public static func size(_ value: Int32) -> Int { size(unsigned: UInt64(zigZag(value))) }

    /// Bytes that `value` takes as a zig-zag varlong.
    @inlinable
    public static func size(_ value: Int64) -> Int { size(unsigned: zigZag(value)) }

    /// Maps a signed value to an unsigned one so that small magnitudes stay small.
    @inlinable
    public static func zigZag(_ value: Int32) -> UInt32 { UInt32(bitPattern: (value << 1) ^ (value >> 31)) }

    /// Maps a signed value to an unsigned one so that small magnitudes stay small.
    @inlinable
    public static func zigZag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

    /// Inverse of `zigZag(_: Int32)`.
    @inlinable
    public static func unZigZag(_ value: UInt32) -> Int32 { Int32(bitPattern: (value >> 1) ^ (0 &- (value & 1))) }

    /// Inverse of `zigZag(_: Int64)`.
    @inlinable
    public static func unZigZag(_ value: UInt64) -> Int64 { Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1))) }

    /// Decodes an unsigned varint of at most `maxBytes` bytes from the start of `bytes`.
    ///
    /// Like Kafka's `ByteUtils`, bits above the type's width in the last allowed byte
    /// are dropped, and a longer encoding is refused rather than read on.
    /// Returns the value and the number of bytes it took.
    @inlinable
    public static func decode(
        _ bytes: UnsafeRawBufferPointer,
        maxBytes: Int
    ) throws(VarintError) -> (value: UInt64, length: Int) {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var index = 0
        while true {
            guard index < bytes.count else { throw .truncated }
            guard index < maxBytes else { throw .tooLong(maxBytes: maxBytes) }
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) &<< shift
            if byte & 0x80 == 0 { return (value, index) }
            shift += 7
        }
    }
}

extension ByteBuffer {
    // MARK: Writing

    /// Writes `value` as an unsigned varint (compact lengths, tagged fields). Returns the bytes written.
    @discardableResult
    @inlinable
    public mutating func writeUnsignedVarint(_ value: UInt32) -> Int {
        writeUnsignedVarint64(UInt64(value))
    }

    /// Writes `value` as an unsigned 64-bit varint. Returns the bytes written.
    @discardableResult
    @inlinable
    public mutating func writeUnsignedVarint64(_ value: UInt64) -> Int {
        var remaining = value
        var written = 0
        while remaining >= 0x80 {
            written += writeInteger(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        written += writeInteger(UInt8(truncatingIfNeeded: remaining))
        return written
    }

    /// Writes `value` as a zig-zag varint, as records encode lengths and deltas. Returns the bytes written.
    @discardableResult
    @inlinable
    public mutating func writeVarint(_ value: Int32) -> Int {
        writeUnsignedVarint64(UInt64(Varint.zigZag(value)))
    }

    /// Writes `value` as a zig-zag varlong (a record's timestamp delta). Returns the bytes written.
    @discardableResult
    @inlinable
    public mutating func writeVarlong(_ value: Int64) -> Int {
        writeUnsignedVarint64(Varint.zigZag(value))
    }

    // MARK: Reading at an index

    /// Reads an unsigned varint at `index` without moving the reader index.
    ///
    /// Throws `.truncated` when the bytes end first (the writer index bounds the read)
    /// and `.tooLong` after 5 bytes.
    @inlinable
    public func getUnsignedVarint(at index: Int) throws(VarintError) -> (value: UInt32, length: Int) {
        let (value, length) = try getRawVarint(at: index, maxBytes: Varint.bytesMax32)
        return (UInt32(truncatingIfNeeded: value), length)
    }

    /// Reads a zig-zag varint at `index` without moving the reader index.
    @inlinable
    public func getVarint(at index: Int) throws(VarintError) -> (value: Int32, length: Int) {
        let (value, length) = try getRawVarint(at: index, maxBytes: Varint.bytesMax32)
        return (Varint.unZigZag(UInt32(truncatingIfNeeded: value)), length)
    }

    /// Reads a zig-zag varlong at `index` without moving the reader index.
    @inlinable
    public func getVarlong(at index: Int) throws(VarintError) -> (value: Int64, length: Int) {
        let (value, length) = try getRawVarint(at: index, maxBytes: Varint.bytesMax64)
        return (Varint.unZigZag(value), length)
    }

    @inlinable
    func getRawVarint(at index: Int, maxBytes: Int) throws(VarintError) -> (value: UInt64, length: Int) {
        guard index >= self.readerIndex, index < self.writerIndex else { throw .truncated }
        let result: Result<(value: UInt64, length: Int), VarintError> = self.withUnsafeReadableBytes { raw in
            let start = index - self.readerIndex
            let window = UnsafeRawBufferPointer(rebasing: raw[start..<min(raw.count, start + maxBytes + 1)])
            do throws(VarintError) {
                return .success(try Varint.decode(window, maxBytes: maxBytes))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    // MARK: Reading at the reader index

    /// Reads an unsigned varint (compact lengths, tagged fields) and moves the reader index past it.
    /// On error the reader index does not move.
    @inlinable
    public mutating func readUnsignedVarint() throws(VarintError) -> UInt32 {
        let (value, length) = try getUnsignedVarint(at: readerIndex)
        moveReaderIndex(forwardBy: length)
        return value
    }

    /// Reads a zig-zag varint and moves the reader index past it. On error the reader index does not move.
    @inlinable
    public mutating func readVarint() throws(VarintError) -> Int32 {
        let (value, length) = try getVarint(at: readerIndex)
        moveReaderIndex(forwardBy: length)
        return value
    }

    /// Reads a zig-zag varlong and moves the reader index past it. On error the reader index does not move.
    @inlinable
    public mutating func readVarlong() throws(VarintError) -> Int64 {
        let (value, length) = try getVarlong(at: readerIndex)
        moveReaderIndex(forwardBy: length)
        return value
    }
}
