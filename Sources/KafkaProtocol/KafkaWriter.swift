import NIOCore

/// Writes Kafka primitive types into one growing `ByteBuffer` (the encodings of `KafkaReader`).
///
/// Lengths that do not fit their prefix (a string over 32767 UTF-8 bytes, an array over
/// Int32.max elements) are caller bugs and trap: everything Keel encodes is produced by Keel.
public struct KafkaWriter: Sendable {
    /// The bytes written so far.
    public var buffer: ByteBuffer

    /// Appends to `buffer`.
    public init(buffer: ByteBuffer) {
        self.buffer = buffer
    }

    /// Appends to a fresh buffer of `capacity` bytes.
    public init(allocator: ByteBufferAllocator = ByteBufferAllocator(), capacity: Int = 256) {
        self.buffer = allocator.buffer(capacity: capacity)
    }

    /// Writes an `int8`.
    public mutating func writeInt8(_ value: Int8) { buffer.writeInteger(value, endianness: .big) }
    /// Writes a big-endian `int16`.
    public mutating func writeInt16(_ value: Int16) { buffer.writeInteger(value, endianness: .big) }
    /// Writes a big-endian `int32`.
    public mutating func writeInt32(_ value: Int32) { buffer.writeInteger(value, endianness: .big) }
    /// Writes a big-endian `int64`.
    public mutating func writeInt64(_ value: Int64) { buffer.writeInteger(value, endianness: .big) }
    /// Writes a big-endian `uint32`.
    public mutating func writeUInt32(_ value: UInt32) { buffer.writeInteger(value, endianness: .big) }
    /// Writes a `bool` as 0 or 1.
    public mutating func writeBool(_ value: Bool) { buffer.writeInteger(UInt8(value ? 1 : 0)) }

    /// Writes a 16-byte `uuid`.
    public mutating func writeUUID(_ value: KafkaUUID) {
        buffer.writeInteger(value.high, endianness: .big)
        buffer.writeInteger(value.low, endianness: .big)
    }

    // MARK: Strings and bytes

    /// Writes a non-nullable `string` (int16 length + UTF-8).
    public mutating func writeString(_ value: String) {
        let length = value.utf8.count
        precondition(length <= Int(Int16.max), "string of \(length) bytes does not fit an int16 length")
        writeInt16(Int16(length))
        buffer.writeString(value)
    }

    /// Writes a nullable `string` (-1 = null).
    public mutating func writeNullableString(_ value: String?) {
        guard let value else { return writeInt16(-1) }
        writeString(value)
    }

    /// Writes non-nullable `bytes` (int32 length).
    public mutating func writeBytes(_ value: ByteBuffer) {
        writeInt32(Int32(value.readableBytes))
        buffer.writeImmutableBuffer(value)
    }

    /// Writes nullable `bytes` (-1 = null).
    public mutating func writeNullableBytes(_ value: ByteBuffer?) {
        guard let value else { return writeInt32(-1) }
        writeBytes(value)
    }

    /// Writes nullable `records` (int32 length, -1 = null), copying the bytes as they are.
    public mutating func writeRecords(_ value: ByteBuffer?) {
        writeNullableBytes(value)
    }

    // MARK: Arrays

    /// Writes a non-nullable `array` (int32 count), each element with `element`.
    public mutating func writeArray<C: Collection>(_ elements: C, _ element: (inout KafkaWriter, C.Element) -> Void) {
        precondition(elements.count <= Int(Int32.max), "array too long")
        writeInt32(Int32(elements.count))
        for value in elements { element(&self, value) }
    }

    /// Writes a nullable `array` (-1 = null).
    public mutating func writeNullableArray<C: Collection>(
        _ elements: C?,
        _ element: (inout KafkaWriter, C.Element) -> Void
    ) {
        guard let elements else { return writeInt32(-1) }
        writeArray(elements, element)
    }

    /// Writes an `array` of `int32`.
    public mutating func writeInt32Array(_ values: [Int32]) {
        writeArray(values) { $0.writeInt32($1) }
    }

    /// Writes an `array` of non-nullable `string`.
    public mutating func writeStringArray(_ values: [String]) {
        writeArray(values) { $0.writeString($1) }
    }

    /// Writes a nullable `array` of non-nullable `string`.
    public mutating func writeNullableStringArray(_ values: [String]?) {
        writeNullableArray(values) { $0.writeString($1) }
    }

    // MARK: Flexible (compact) forms

    /// Writes an unsigned varint (7 bits a byte, low groups first, high bit = more).
    public mutating func writeUnsignedVarint(_ value: UInt32) {
        var rest = value
        while rest >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        buffer.writeInteger(UInt8(rest))
    }

    /// Writes a non-nullable `compact_string` (uvarint length + 1).
    public mutating func writeCompactString(_ value: String) {
        let length = value.utf8.count
        precondition(length <= Int(Int16.max), "string of \(length) bytes is too long")
        writeUnsignedVarint(UInt32(length + 1))
        buffer.writeString(value)
    }

    /// Writes a nullable `compact_string` (0 = null).
    public mutating func writeCompactNullableString(_ value: String?) {
        guard let value else { return writeUnsignedVarint(0) }
        writeCompactString(value)
    }

    /// Writes non-nullable `compact_bytes` (uvarint length + 1).
    public mutating func writeCompactBytes(_ value: ByteBuffer) {
        writeUnsignedVarint(UInt32(value.readableBytes + 1))
        buffer.writeImmutableBuffer(value)
    }

    /// Writes nullable `compact_bytes` (0 = null).
    public mutating func writeCompactNullableBytes(_ value: ByteBuffer?) {
        guard let value else { return writeUnsignedVarint(0) }
        writeCompactBytes(value)
    }

    /// Writes a non-nullable `compact_array` (uvarint count + 1).
    public mutating func writeCompactArray<C: Collection>(
        _ elements: C,
        _ element: (inout KafkaWriter, C.Element) -> Void
    ) {
        precondition(elements.count < Int(UInt32.max), "array too long")
        writeUnsignedVarint(UInt32(elements.count + 1))
        for value in elements { element(&self, value) }
    }

    /// Writes a nullable `compact_array` (0 = null).
    public mutating func writeCompactNullableArray<C: Collection>(
        _ elements: C?,
        _ element: (inout KafkaWriter, C.Element) -> Void
    ) {
        guard let elements else { return writeUnsignedVarint(0) }
        writeCompactArray(elements, element)
    }

    /// Writes an empty tagged-field section (the single byte 0x00).
    public mutating func writeEmptyTaggedFields() {
        buffer.writeInteger(UInt8(0))
    }
}
