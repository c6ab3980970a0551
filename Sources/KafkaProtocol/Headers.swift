/// A request header (PROTOCOL.md §1).
///
/// v1: `api_key int16, api_version int16, correlation_id int32, client_id nullable string`
/// (int16 length, -1 = null). v2 (flexible API versions) = v1 + a tagged-field section;
/// `client_id` keeps its int16 length even in v2, so any broker can read the header of any
/// ApiVersions request.
public struct RequestHeader: Sendable, Equatable {
    /// Which API the body belongs to.
    public var apiKey: ApiKey
    /// The version of the body.
    public var apiVersion: Int16
    /// Echoed in the response so a pipelining client can match it.
    public var correlationId: Int32
    /// The client's self-chosen name, if any.
    public var clientId: String?

    /// Creates a header.
    public init(apiKey: ApiKey, apiVersion: Int16, correlationId: Int32, clientId: String?) {
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.correlationId = correlationId
        self.clientId = clientId
    }

    /// 2 if the API version is flexible, else 1.
    public var headerVersion: Int16 { apiKey.requestHeaderVersion(apiVersion) }

    /// Writes the header in version `headerVersion` (an empty tagged-field section for v2).
    public func encode(into writer: inout KafkaWriter) {
        writer.writeInt16(apiKey.rawValue)
        writer.writeInt16(apiVersion)
        writer.writeInt32(correlationId)
        writer.writeNullableString(clientId)
        if headerVersion >= 2 { writer.writeEmptyTaggedFields() }
    }

    /// Reads a header, including the v2 tagged fields when the API version is flexible.
    public static func decode(from reader: inout KafkaReader) throws(KafkaProtocolError) -> RequestHeader {
        let rawKey = try reader.readInt16()
        let version = try reader.readInt16()
        let correlationId = try reader.readInt32()
        guard let apiKey = ApiKey(rawValue: rawKey) else { throw .unknownApiKey(rawKey) }
        let clientId = try reader.readNullableString()
        let header = RequestHeader(
            apiKey: apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId)
        if header.headerVersion >= 2 { try reader.skipTaggedFields() }
        return header
    }
}

/// A response header: v0 = `correlation_id int32`; v1 = v0 + a tagged-field section.
///
/// ApiVersions responses always use v0 (see `ApiKey.responseHeaderVersion`).
public struct ResponseHeader: Sendable, Equatable {
    /// The correlation id of the request answered.
    public var correlationId: Int32

    /// Creates a header.
    public init(correlationId: Int32) { self.correlationId = correlationId }

    /// Writes the header in `version` (0 or 1).
    public func encode(into writer: inout KafkaWriter, version: Int16) {
        writer.writeInt32(correlationId)
        if version >= 1 { writer.writeEmptyTaggedFields() }
    }

    /// Reads a header of `version` (0 or 1).
    public static func decode(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) -> Self {
        let correlationId = try reader.readInt32()
        if version >= 1 { try reader.skipTaggedFields() }
        return ResponseHeader(correlationId: correlationId)
    }
}
