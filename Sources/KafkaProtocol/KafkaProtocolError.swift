/// Why bytes from the network could not be decoded. Thrown, never trapped on.
public enum KafkaProtocolError: Error, Equatable, Sendable {
    /// The input ended early: `needed` more bytes were required but only `remaining` were left.
    case truncated(needed: Int, remaining: Int)
    /// A length prefix was negative (other than -1 for a nullable field) or otherwise impossible.
    case invalidLength(Int)
    /// A non-nullable field carried the null marker.
    case unexpectedNull
    /// An array announced more elements than the remaining bytes could hold, or more than the limit.
    case tooManyElements(count: Int, max: Int)
    /// A string was not valid UTF-8.
    case invalidUTF8
    /// An unsigned varint ran over its maximum width.
    case malformedVarint
    /// A frame announced a negative size.
    case negativeFrameSize(Int32)
    /// A frame announced a size above the configured maximum (socket.request.max.bytes).
    case frameTooLarge(size: Int, max: Int)
    /// The request header named an API key Keel does not know.
    case unknownApiKey(Int16)
    /// The API is known but Keel does not implement this version.
    case unsupportedVersion(apiKey: ApiKey, version: Int16)
    /// A body was decoded but bytes were left over in the frame.
    case trailingBytes(Int)
    /// A response carried a different correlation id from the one expected.
    case correlationIdMismatch(expected: Int32, actual: Int32)
}
