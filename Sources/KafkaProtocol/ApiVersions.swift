import NIOCore

/// ApiVersions request (key 18), v0–v3.
///
/// v0–v2: empty body. v3 (flexible, request header v2): `client_software_name compact_string,
/// client_software_version compact_string, tagged fields`.
public struct ApiVersionsRequest: KafkaRequestMessage {
    /// The response type.
    public typealias Response = ApiVersionsResponse
    /// ApiVersions.
    public static let apiKey = ApiKey.apiVersions

    /// The client library's name (v3+), e.g. "librdkafka"; nil below v3.
    public var clientSoftwareName: String?
    /// The client library's version (v3+); nil below v3.
    public var clientSoftwareVersion: String?

    /// Creates a request; the software fields are sent only at v3.
    public init(clientSoftwareName: String? = nil, clientSoftwareVersion: String? = nil) {
        self.clientSoftwareName = clientSoftwareName
        self.clientSoftwareVersion = clientSoftwareVersion
    }

    /// Writes the body (empty below v3).
    public func encode(into writer: inout KafkaWriter, version: Int16) {
        Self.checkEncodable(version)
        guard version >= 3 else { return }
        writer.writeCompactString(clientSoftwareName ?? "")
        writer.writeCompactString(clientSoftwareVersion ?? "")
        writer.writeEmptyTaggedFields()
    }

    /// Reads the body.
    public static func decode(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) -> Self {
        guard version >= 3 else { return ApiVersionsRequest() }
        let name = try reader.readCompactString()
        let softwareVersion = try reader.readCompactString()
        try reader.skipTaggedFields()
        return ApiVersionsRequest(clientSoftwareName: name, clientSoftwareVersion: softwareVersion)
    }
}

/// ApiVersions response, v0–v3. Its response header is always v0.
///
/// v0: `error_code int16, api_keys array[{api_key int16, min_version int16, max_version int16}]`.
/// v1/v2: v0 + `throttle_time_ms int32`.
/// v3: `error_code int16, api_keys compact_array[{api_key, min_version, max_version, tagged}],
/// throttle_time_ms int32, tagged fields` (Keel writes no tags; tags 0–3 are skipped when read).
///
/// An UNSUPPORTED_VERSION answer is always in the v0 layout whatever version was asked, so
/// that the client can read which versions to retry with: `decode` switches to the v0 layout
/// when the leading error code is 35.
public struct ApiVersionsResponse: KafkaMessage {
    /// ApiVersions.
    public static let apiKey = ApiKey.apiVersions

    /// One `api_keys` entry. The key stays a raw `Int16` so that a client can read keys Keel does not know.
    public struct ApiVersion: Sendable, Equatable, Hashable {
        /// The API key.
        public var apiKey: Int16
        /// Lowest supported version.
        public var minVersion: Int16
        /// Highest supported version.
        public var maxVersion: Int16

        /// Creates an entry.
        public init(apiKey: Int16, minVersion: Int16, maxVersion: Int16) {
            self.apiKey = apiKey
            self.minVersion = minVersion
            self.maxVersion = maxVersion
        }
    }

    /// NONE, or UNSUPPORTED_VERSION.
    public var errorCode: ErrorCode
    /// The supported APIs and version ranges.
    public var apiKeys: [ApiVersion]
    /// Throttle time (v1+; 0 when decoded from v0).
    public var throttleTimeMs: Int32

    /// Creates a response.
    public init(errorCode: ErrorCode = .none, apiKeys: [ApiVersion], throttleTimeMs: Int32 = 0) {
        self.errorCode = errorCode
        self.apiKeys = apiKeys
        self.throttleTimeMs = throttleTimeMs
    }

    /// Keel's answer: no error and the `ApiVersionsTable` advertised ranges.
    public static var keel: ApiVersionsResponse { ApiVersionsResponse(apiKeys: ApiVersionsTable.advertised) }

    /// The answer to an ApiVersions request of a version Keel does not implement: error 35 and
    /// the full table; encode it at version 0.
    public static var unsupportedVersion: ApiVersionsResponse {
        ApiVersionsResponse(errorCode: .unsupportedVersion, apiKeys: ApiVersionsTable.advertised)
    }

    /// Writes the body.
    public func encode(into writer: inout KafkaWriter, version: Int16) {
        Self.checkEncodable(version)
        writer.writeInt16(errorCode.rawValue)
        if version >= 3 {
            writer.writeCompactArray(apiKeys) { writer, entry in
                writer.writeInt16(entry.apiKey)
                writer.writeInt16(entry.minVersion)
                writer.writeInt16(entry.maxVersion)
                writer.writeEmptyTaggedFields()
            }
            writer.writeInt32(throttleTimeMs)
            writer.writeEmptyTaggedFields()
        } else {
            writer.writeArray(apiKeys) { writer, entry in
                writer.writeInt16(entry.apiKey)
                writer.writeInt16(entry.minVersion)
                writer.writeInt16(entry.maxVersion)
            }
            if version >= 1 { writer.writeInt32(throttleTimeMs) }
        }
    }

    /// Reads the body; an UNSUPPORTED_VERSION body is read in the v0 layout whatever `version`.
    public static func decode(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) -> Self {
        let errorCode = ErrorCode(try reader.readInt16())
        if version >= 3 && errorCode != .unsupportedVersion {
            let keys = try reader.readCompactArray(minElementBytes: 7) {
                (reader: inout KafkaReader) throws(KafkaProtocolError) in
                let entry = ApiVersion(
                    apiKey: try reader.readInt16(), minVersion: try reader.readInt16(),
                    maxVersion: try reader.readInt16())
                try reader.skipTaggedFields()
                return entry
            }
            let throttle = try reader.readInt32()
            try reader.skipTaggedFields()
            return ApiVersionsResponse(errorCode: errorCode, apiKeys: keys, throttleTimeMs: throttle)
        }
        let keys = try reader.readArray(minElementBytes: 6) { (reader: inout KafkaReader) throws(KafkaProtocolError) in
            ApiVersion(
                apiKey: try reader.readInt16(), minVersion: try reader.readInt16(), maxVersion: try reader.readInt16())
        }
        var throttle: Int32 = 0
        if version >= 1 && errorCode != .unsupportedVersion { throttle = try reader.readInt32() }
        return ApiVersionsResponse(errorCode: errorCode, apiKeys: keys, throttleTimeMs: throttle)
    }
}
