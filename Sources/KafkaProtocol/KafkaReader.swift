import NIOCore

/// A 16-byte Kafka UUID (topic ids, incarnation ids), as two big-endian halves.
public struct KafkaUUID: Hashable, Sendable {
    /// The first 8 bytes, big-endian.
    public var high: UInt64
    /// The last 8 bytes, big-endian.
    public var low: UInt64

    /// Wraps the two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The all-zero UUID Kafka uses for "no id".
    public static let zero = KafkaUUID(high: 0, low: 0)
}

/// Reads Kafka primitive types from a `ByteBuffer` slice, checking every length before allocating.
///
/// Encodings (PROTOCOL.md §1): integers are big-endian; `string` = int16 length + UTF-8 (-1 = null);
/// `bytes`/`records` = int32 length (-1 = null); `array` = int32 count (-1 = null). Flexible
/// versions use unsigned varints instead: compact string/bytes = uvarint (length + 1), compact
/// array = uvarint (count + 1), 0 = null; every flexible struct ends with a tagged-field section
/// (`uvarint n`, then n × (`uvarint tag`, `uvarint size`, bytes)), which this reader skips.
///
/// An array count is accepted only if `count × minimum element size ≤ remaining bytes` and
/// `count ≤ limits.arrayCountMax`, so a hostile count cannot make us reserve memory the frame
/// cannot back.
public struct KafkaReader: Sendable {
    /// Bounds that apply on top of "no more than the bytes present".
    public struct Limits: Sendable, Equatable {
        /// The largest array count accepted, whatever the remaining bytes.
        public var arrayCountMax: Int

        /// Creates limits.
        public init(arrayCountMax: Int) {
            precondition(arrayCountMax >= 0, "arrayCountMax must not be negative")
            self.arrayCountMax = arrayCountMax
        }

        /// The defaults: at most 1 Mi elements in any one array.
        public static let `default` = Limits(arrayCountMax: 1 << 20)
    }

    /// The bytes still to read (reader index = next byte).
    public private(set) var buffer: ByteBuffer
    /// The bounds in force.
    public let limits: Limits

    /// Reads from the readable bytes of `buffer`.
    public init(_ buffer: ByteBuffer, limits: Limits = .default) {
        self.buffer = buffer
        self.limits = limits
    }

    /// How many bytes are left.
    public var remaining: Int { buffer.readableBytes }

    /// Throws unless nothing is left: a body must use up its frame exactly.
    public func expectEnd() throws(KafkaProtocolError) {
        if remaining != 0 { throw .trailingBytes(remaining) }
    }

    func need(_ count: Int) throws(KafkaProtocolError) {
        if count > remaining { throw .truncated(needed: count, remaining: remaining) }
    }

    // MARK: Fixed-width integers

    mutating func readFixed<T: FixedWidthInteger>(_ type: T.Type) throws(KafkaProtocolError) -> T {
        guard let value = buffer.readInteger(endianness: .big, as: T.self) else {
            throw .truncated(needed: MemoryLayout<T>.size, remaining: remaining)
        }
        return value
    }

    /// Reads an `int8`.
    public mutating func readInt8() throws(KafkaProtocolError) -> Int8 { try readFixed(Int8.self) }
    /// Reads a big-endian `int16`.
    public mutating func readInt16() throws(KafkaProtocolError) -> Int16 { try readFixed(Int16.self) }
    /// Reads a big-endian `int32`.
    public mutating func readInt32() throws(KafkaProtocolError) -> Int32 { try readFixed(Int32.self) }
    /// Reads a big-endian `int64`.
    public mutating func readInt64() throws(KafkaProtocolError) -> Int64 { try readFixed(Int64.self) }
    /// Reads a big-endian `uint32`.
    public mutating func readUInt32() throws(KafkaProtocolError) -> UInt32 { try readFixed(UInt32.self) }

    /// Reads a `bool` (one byte; any non-zero value is true, as in Kafka).
    public mutating func readBool() throws(KafkaProtocolError) -> Bool { try readFixed(UInt8.self) != 0 }

    /// Reads a 16-byte `uuid`.
    public mutating func readUUID() throws(KafkaProtocolError) -> KafkaUUID {
        try need(16)
        let high = try readFixed(UInt64.self)
        let low = try readFixed(UInt64.self)
        return KafkaUUID(high: high, low: low)
    }

    // MARK: Strings and bytes

    /// Reads `length` bytes as UTF-8, rejecting invalid sequences.
    mutating func readUTF8(length: Int) throws(KafkaProtocolError) -> String {
        try need(length)
        let string = buffer.withUnsafeReadableBytes { raw in
            String(validating: UnsafeRawBufferPointer(rebasing: raw[0..<length]), as: UTF8.self)
        }
        guard let string else { throw .invalidUTF8 }
        buffer.moveReaderIndex(forwardBy: length)
        return string
    }

    /// Reads a non-nullable `string` (int16 length + UTF-8).
    public mutating func readString() throws(KafkaProtocolError) -> String {
        guard let string = try readNullableString() else { throw .unexpectedNull }
        return string
    }

    /// Reads a nullable `string` (int16 length, -1 = null).
    public mutating func readNullableString() throws(KafkaProtocolError) -> String? {
        let length = try readInt16()
        if length == -1 { return nil }
        guard length >= 0 else { throw .invalidLength(Int(length)) }
        return try readUTF8(length: Int(length))
    }

    /// Reads `length` bytes as a slice sharing storage with the frame (no copy).
    mutating func readSlice(length: Int) throws(KafkaProtocolError) -> ByteBuffer {
        try need(length)
        guard let slice = buffer.readSlice(length: length) else {
            throw .truncated(needed: length, remaining: remaining)
        }
        return slice
    }

    /// Reads non-nullable `bytes` (int32 length), as a slice of the frame.
    public mutating func readBytes() throws(KafkaProtocolError) -> ByteBuffer {
        guard let bytes = try readNullableBytes() else { throw .unexpectedNull }
        return bytes
    }

    /// Reads a `string` the schema says is never null, taking a null as "": for the few response
    /// fields librdkafka's mock cluster writes as null in its error answers (librdkafka reads them).
    public mutating func readStringNullAsEmpty() throws(KafkaProtocolError) -> String {
        try readNullableString() ?? ""
    }

    /// Reads `bytes` the schema says are never null, taking a null as empty (see `readStringNullAsEmpty`).
    public mutating func readBytesNullAsEmpty() throws(KafkaProtocolError) -> ByteBuffer {
        try readNullableBytes() ?? ByteBuffer()
    }

    /// Reads nullable `bytes` (int32 length, -1 = null), as a slice of the frame.
    public mutating func readNullableBytes() throws(KafkaProtocolError) -> ByteBuffer? {
        let length = try readInt32()
        if length == -1 { return nil }
        guard length >= 0 else { throw .invalidLength(Int(length)) }
        return try readSlice(length: Int(length))
    }

    /// Reads nullable `records` (int32 length), as an undecoded slice of the frame (no copy).
    public mutating func readRecords() throws(KafkaProtocolError) -> ByteBuffer? {
        try readNullableBytes()
    }

    // MARK: Arrays

    /// Throws unless `count` elements of at least `minElementBytes` each fit in what remains.
    mutating func checkCount(_ count: Int, minElementBytes: Int) throws(KafkaProtocolError) {
        precondition(minElementBytes >= 1, "every element occupies at least one byte")
        let fitting = remaining / minElementBytes
        let max = Swift.min(fitting, limits.arrayCountMax)
        if count > max { throw .tooManyElements(count: count, max: max) }
    }

    mutating func readElements<T>(
        count: Int,
        minElementBytes: Int,
        _ element: (inout KafkaReader) throws(KafkaProtocolError) -> T
    ) throws(KafkaProtocolError) -> [T] {
        try checkCount(count, minElementBytes: minElementBytes)
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            result.append(try element(&self))
        }
        return result
    }

    /// Reads a non-nullable `array` (int32 count); `minElementBytes` is the smallest encoding of one element.
    public mutating func readArray<T>(
        minElementBytes: Int,
        _ element: (inout KafkaReader) throws(KafkaProtocolError) -> T
    ) throws(KafkaProtocolError) -> [T] {
        guard let array = try readNullableArray(minElementBytes: minElementBytes, element) else {
            throw .unexpectedNull
        }
        return array
    }

    /// Reads a nullable `array` (int32 count, -1 = null).
    public mutating func readNullableArray<T>(
        minElementBytes: Int,
        _ element: (inout KafkaReader) throws(KafkaProtocolError) -> T
    ) throws(KafkaProtocolError) -> [T]? {
        let count = try readInt32()
        if count == -1 { return nil }
        guard count >= 0 else { throw .invalidLength(Int(count)) }
        return try readElements(count: Int(count), minElementBytes: minElementBytes, element)
    }

    /// Reads an `array` of `int32`.
    public mutating func readInt32Array() throws(KafkaProtocolError) -> [Int32] {
        try readArray(minElementBytes: 4) { (reader: inout KafkaReader) throws(KafkaProtocolError) in
            try reader.readInt32()
        }
    }

    /// Reads an `array` of non-nullable `string`.
    public mutating func readStringArray() throws(KafkaProtocolError) -> [String] {
        try readArray(minElementBytes: 2) { (reader: inout KafkaReader) throws(KafkaProtocolError) in
            try reader.readString()
        }
    }

    /// Reads a nullable `array` of non-nullable `string`.
    public mutating func readNullableStringArray() throws(KafkaProtocolError) -> [String]? {
        try readNullableArray(minElementBytes: 2) { (reader: inout KafkaReader) throws(KafkaProtocolError) in
            try reader.readString()
        }
    }

    // MARK: Flexible (compact) forms

    /// Reads an unsigned varint of at most 32 bits (7 bits a byte, low groups first).
    public mutating func readUnsignedVarint() throws(KafkaProtocolError) -> UInt32 {
        var value: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            let byte = try readFixed(UInt8.self)
            if shift == 28 && byte > 0x0F { throw .malformedVarint }
            value |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// Reads a compact length (uvarint n; n = 0 is null, else length n - 1).
    mutating func readCompactLength() throws(KafkaProtocolError) -> Int? {
        let encoded = try readUnsignedVarint()
        if encoded == 0 { return nil }
        return Int(encoded) - 1
    }

    /// Reads a non-nullable `compact_string`.
    public mutating func readCompactString() throws(KafkaProtocolError) -> String {
        guard let string = try readCompactNullableString() else { throw .unexpectedNull }
        return string
    }

    /// Reads a nullable `compact_string` (uvarint length + 1, 0 = null).
    public mutating func readCompactNullableString() throws(KafkaProtocolError) -> String? {
        guard let length = try readCompactLength() else { return nil }
        guard length <= Int(Int16.max) else { throw .invalidLength(length) }
        return try readUTF8(length: length)
    }

    /// Reads nullable `compact_bytes` (uvarint length + 1, 0 = null), as a slice of the frame.
    public mutating func readCompactNullableBytes() throws(KafkaProtocolError) -> ByteBuffer? {
        guard let length = try readCompactLength() else { return nil }
        return try readSlice(length: length)
    }

    /// Reads non-nullable `compact_bytes`, as a slice of the frame.
    public mutating func readCompactBytes() throws(KafkaProtocolError) -> ByteBuffer {
        guard let bytes = try readCompactNullableBytes() else { throw .unexpectedNull }
        return bytes
    }

    /// Reads a nullable `compact_array` (uvarint count + 1, 0 = null).
    public mutating func readCompactNullableArray<T>(
        minElementBytes: Int,
        _ element: (inout KafkaReader) throws(KafkaProtocolError) -> T
    ) throws(KafkaProtocolError) -> [T]? {
        guard let count = try readCompactLength() else { return nil }
        return try readElements(count: count, minElementBytes: minElementBytes, element)
    }

    /// Reads a non-nullable `compact_array`.
    public mutating func readCompactArray<T>(
        minElementBytes: Int,
        _ element: (inout KafkaReader) throws(KafkaProtocolError) -> T
    ) throws(KafkaProtocolError) -> [T] {
        guard let array = try readCompactNullableArray(minElementBytes: minElementBytes, element) else {
            throw .unexpectedNull
        }
        return array
    }

    /// Skips a tagged-field section: `uvarint n`, then n × (`uvarint tag`, `uvarint size`, size bytes).
    ///
    /// Keel implements no tagged fields, so all of them are unknown to it and skipped, as Kafka does.
    public mutating func skipTaggedFields() throws(KafkaProtocolError) {
        let count = Int(try readUnsignedVarint())
        try checkCount(count, minElementBytes: 2)
        for _ in 0..<count {
            _ = try readUnsignedVarint()
            let size = Int(try readUnsignedVarint())
            try need(size)
            buffer.moveReaderIndex(forwardBy: size)
        }
    }
}
