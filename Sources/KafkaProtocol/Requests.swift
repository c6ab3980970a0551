import NIOCore

/// A decoded request body of any API Keel implements.
public enum KafkaRequest: Sendable, Equatable {
    /// Produce v7.
    case produce(ProduceRequest)
    /// Fetch v11.
    case fetch(FetchRequest)
    /// ListOffsets v2.
    case listOffsets(ListOffsetsRequest)
    /// Metadata v4.
    case metadata(MetadataRequest)
    /// OffsetCommit v3.
    case offsetCommit(OffsetCommitRequest)
    /// OffsetFetch v3.
    case offsetFetch(OffsetFetchRequest)
    /// FindCoordinator v1.
    case findCoordinator(FindCoordinatorRequest)
    /// JoinGroup v5.
    case joinGroup(JoinGroupRequest)
    /// Heartbeat v1.
    case heartbeat(HeartbeatRequest)
    /// LeaveGroup v1.
    case leaveGroup(LeaveGroupRequest)
    /// SyncGroup v3.
    case syncGroup(SyncGroupRequest)
    /// DescribeGroups v3.
    case describeGroups(DescribeGroupsRequest)
    /// ListGroups v2.
    case listGroups(ListGroupsRequest)
    /// ApiVersions v0–v3.
    case apiVersions(ApiVersionsRequest)
    /// CreateTopics v3.
    case createTopics(CreateTopicsRequest)
    /// DeleteTopics v1.
    case deleteTopics(DeleteTopicsRequest)
    /// InitProducerId v0/v1.
    case initProducerId(InitProducerIdRequest)
    /// DescribeConfigs v1.
    case describeConfigs(DescribeConfigsRequest)
    /// DeleteGroups v0/v1.
    case deleteGroups(DeleteGroupsRequest)

    /// The body as its message type.
    public var body: any KafkaMessage {
        switch self {
        case .produce(let body): body
        case .fetch(let body): body
        case .listOffsets(let body): body
        case .metadata(let body): body
        case .offsetCommit(let body): body
        case .offsetFetch(let body): body
        case .findCoordinator(let body): body
        case .joinGroup(let body): body
        case .heartbeat(let body): body
        case .leaveGroup(let body): body
        case .syncGroup(let body): body
        case .describeGroups(let body): body
        case .listGroups(let body): body
        case .apiVersions(let body): body
        case .createTopics(let body): body
        case .deleteTopics(let body): body
        case .initProducerId(let body): body
        case .describeConfigs(let body): body
        case .deleteGroups(let body): body
        }
    }

    /// The API of the body.
    public var apiKey: ApiKey { type(of: body).apiKey }

    /// Writes the body at `version`.
    public func encode(into writer: inout KafkaWriter, version: Int16) {
        body.encode(into: &writer, version: version)
    }

    /// Reads a body of `apiKey` at an implemented `version`.
    public static func decodeBody(
        apiKey: ApiKey,
        version: Int16,
        from reader: inout KafkaReader
    ) throws(KafkaProtocolError) -> KafkaRequest {
        switch apiKey {
        case .produce: .produce(try .decode(from: &reader, version: version))
        case .fetch: .fetch(try .decode(from: &reader, version: version))
        case .listOffsets: .listOffsets(try .decode(from: &reader, version: version))
        case .metadata: .metadata(try .decode(from: &reader, version: version))
        case .offsetCommit: .offsetCommit(try .decode(from: &reader, version: version))
        case .offsetFetch: .offsetFetch(try .decode(from: &reader, version: version))
        case .findCoordinator: .findCoordinator(try .decode(from: &reader, version: version))
        case .joinGroup: .joinGroup(try .decode(from: &reader, version: version))
        case .heartbeat: .heartbeat(try .decode(from: &reader, version: version))
        case .leaveGroup: .leaveGroup(try .decode(from: &reader, version: version))
        case .syncGroup: .syncGroup(try .decode(from: &reader, version: version))
        case .describeGroups: .describeGroups(try .decode(from: &reader, version: version))
        case .listGroups: .listGroups(try .decode(from: &reader, version: version))
        case .apiVersions: .apiVersions(try .decode(from: &reader, version: version))
        case .createTopics: .createTopics(try .decode(from: &reader, version: version))
        case .deleteTopics: .deleteTopics(try .decode(from: &reader, version: version))
        case .initProducerId: .initProducerId(try .decode(from: &reader, version: version))
        case .describeConfigs: .describeConfigs(try .decode(from: &reader, version: version))
        case .deleteGroups: .deleteGroups(try .decode(from: &reader, version: version))
        }
    }
}

/// A request frame decoded by `KafkaRequestDecoder`: its header and typed body.
public struct DecodedRequest: Sendable, Equatable {
    /// The request header.
    public var header: RequestHeader
    /// The request body.
    public var request: KafkaRequest

    /// Pairs a header with its body.
    public init(header: RequestHeader, request: KafkaRequest) {
        self.header = header
        self.request = request
    }
}

/// Why a request frame was not decoded, and what the server must do about it.
public enum RequestDecodeFailure: Error, Equatable, Sendable {
    /// An ApiVersions request of a version Keel does not implement (its body was not parsed):
    /// answer with `KafkaResponseEncoder.unsupportedApiVersionsFrame(correlationId:)`, i.e. the
    /// v0 body with UNSUPPORTED_VERSION and the full table, and keep the connection.
    case answerUnsupportedVersion(RequestHeader)
    /// Anything else: log one line and close the connection. `header` is set if it was read.
    case closeConnection(header: RequestHeader?, reason: KafkaProtocolError)
}

/// The broker's single entry point from a frame to a typed request.
public enum KafkaRequestDecoder {
    /// Decodes one frame (header + body, as `KafkaFrameDecoder` emits it).
    ///
    /// Order of checks: the fixed header fields; the API key (unknown ⇒ close); the client id;
    /// the version (ApiVersions at an unimplemented version ⇒ answer UNSUPPORTED_VERSION without
    /// reading further; any other API ⇒ close, as Kafka 4.0 does for advertised-but-removed
    /// versions); the v2 header tags; the body, which must use up the frame exactly.
    public static func decode(
        frame: ByteBuffer,
        limits: KafkaReader.Limits = .default
    ) throws(RequestDecodeFailure) -> DecodedRequest {
        var reader = KafkaReader(frame, limits: limits)
        var header: RequestHeader?
        let outcome: Outcome
        do {
            outcome = try decode(&reader, header: &header)
        } catch {
            throw .closeConnection(header: header, reason: error)
        }
        switch outcome {
        case .decoded(let request): return request
        case .unsupportedApiVersions(let header): throw .answerUnsupportedVersion(header)
        }
    }

    private enum Outcome {
        case decoded(DecodedRequest)
        case unsupportedApiVersions(RequestHeader)
    }

    /// The steps of `decode(frame:limits:)`; `header` is set as soon as it has been read.
    private static func decode(
        _ reader: inout KafkaReader,
        header: inout RequestHeader?
    ) throws(KafkaProtocolError) -> Outcome {
        let rawKey = try reader.readInt16()
        let version = try reader.readInt16()
        let correlationId = try reader.readInt32()
        guard let apiKey = ApiKey(rawValue: rawKey) else { throw .unknownApiKey(rawKey) }
        let clientId = try reader.readNullableString()
        let parsed = RequestHeader(
            apiKey: apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId)
        header = parsed
        guard ApiVersionsTable.isImplemented(apiKey, version: version) else {
            if apiKey == .apiVersions { return .unsupportedApiVersions(parsed) }
            throw .unsupportedVersion(apiKey: apiKey, version: version)
        }
        if parsed.headerVersion >= 2 { try reader.skipTaggedFields() }
        let request = try KafkaRequest.decodeBody(apiKey: apiKey, version: version, from: &reader)
        try reader.expectEnd()
        return .decoded(DecodedRequest(header: parsed, request: request))
    }
}

/// Broker side: response frames ready to write to the socket.
public enum KafkaResponseEncoder {
    /// `int32 size`, response header (v0, or v1 for flexible versions other than ApiVersions), body.
    public static func encodeFrame<M: KafkaMessage>(
        _ body: M,
        version: Int16,
        correlationId: Int32,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var writer = KafkaWriter(allocator: allocator, capacity: 128)
        let sizeAt = FrameWriting.begin(&writer)
        ResponseHeader(correlationId: correlationId).encode(
            into: &writer, version: M.apiKey.responseHeaderVersion(version))
        body.encode(into: &writer, version: version)
        FrameWriting.end(&writer, sizeAt: sizeAt)
        return writer.buffer
    }

    /// The answer to `RequestDecodeFailure.answerUnsupportedVersion`: response header v0, and the
    /// ApiVersions v0 body with UNSUPPORTED_VERSION(35) and the full advertised table.
    public static func unsupportedApiVersionsFrame(
        correlationId: Int32,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        encodeFrame(
            ApiVersionsResponse.unsupportedVersion, version: 0, correlationId: correlationId, allocator: allocator)
    }
}

/// Client side: request frames ready to write to the socket.
public enum KafkaRequestEncoder {
    /// `int32 size`, request header (v1, or v2 for flexible versions), body.
    public static func encodeFrame<R: KafkaRequestMessage>(
        _ body: R,
        version: Int16,
        correlationId: Int32,
        clientId: String?,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var writer = KafkaWriter(allocator: allocator, capacity: 128)
        let sizeAt = FrameWriting.begin(&writer)
        RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId)
            .encode(into: &writer)
        body.encode(into: &writer, version: version)
        FrameWriting.end(&writer, sizeAt: sizeAt)
        return writer.buffer
    }
}

/// Client side: response frames (as `KafkaFrameDecoder` emits them) to typed bodies.
public enum KafkaResponseDecoder {
    /// The correlation id at the start of any response frame, to match it to its request.
    public static func correlationId(of frame: ByteBuffer) throws(KafkaProtocolError) -> Int32 {
        guard let id = frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int32.self) else {
            throw .truncated(needed: 4, remaining: frame.readableBytes)
        }
        return id
    }

    /// Decodes a response to a request of `version`; the body must use up the frame exactly.
    public static func decode<M: KafkaMessage>(
        _ type: M.Type,
        frame: ByteBuffer,
        version: Int16,
        limits: KafkaReader.Limits = .default
    ) throws(KafkaProtocolError) -> (header: ResponseHeader, body: M) {
        var reader = KafkaReader(frame, limits: limits)
        let header = try ResponseHeader.decode(from: &reader, version: M.apiKey.responseHeaderVersion(version))
        let body = try M.decode(from: &reader, version: version)
        try reader.expectEnd()
        return (header, body)
    }
}
