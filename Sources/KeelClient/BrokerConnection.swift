import KafkaProtocol
import NIOCore
import NIOPosix
import Synchronization

/// A broker's client address, `host:port`.
public struct BrokerAddress: Hashable, Sendable, CustomStringConvertible {
    /// The host name or IP address.
    public var host: String
    /// The TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (IPv6 as `[::1]:9092`).
    public init(parsing text: String) throws(KeelClientError) {
        let trimmed = text.trimmingSpaces
        guard let colon = trimmed.lastIndex(of: ":"), colon != trimmed.startIndex,
            let port = Int(trimmed[trimmed.index(after: colon)...]), (1...65535).contains(port)
        else { throw .invalidAddress(text) }
        var host = String(trimmed[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw .invalidAddress(text) }
        self.init(host: host, port: port)
    }

    /// Parses a comma-separated list such as `10.0.0.1:9092,10.0.0.2:9092`.
    public static func parseList(_ text: String) throws(KeelClientError) -> [BrokerAddress] {
        var result: [BrokerAddress] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            result.append(try BrokerAddress(parsing: String(part)))
        }
        guard !result.isEmpty else { throw .invalidAddress(text) }
        return result
    }

    /// `host:port`.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension String {
    var trimmingSpaces: Substring {
        var slice = Substring(self)
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return slice
    }
}

/// A request on its way to the handler: the encoded frame, its correlation id, and the
/// promise for its response frame (nil when the broker sends none, e.g. acks=0).
struct OutgoingRequest: Sendable {
    var frame: ByteBuffer
    var correlationId: Int32
    var response: EventLoopPromise<ByteBuffer>?
}

/// Fired into the pipeline when a request's timer expires.
struct RequestTimeoutEvent: Sendable {
    var correlationId: Int32
    var api: ApiKey
    var timeoutMs: Int64
}

/// The NIO side of a connection: writes request frames, matches response frames to them
/// in order, and fails every pending request when the connection breaks.
final class KafkaClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutgoingRequest
    typealias OutboundOut = ByteBuffer

    private var matcher = ResponseMatcher<EventLoopPromise<ByteBuffer>>()
    private let address: String
    private var failure: KeelClientError?

    init(address: String) { self.address = address }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.response?.fail(failure)
            promise?.fail(failure)
            return
        }
        if let response = request.response { matcher.expect(request.correlationId, response) }
        context.write(wrapOutboundOut(request.frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let id = try? KafkaResponseDecoder.correlationId(of: frame) else {
            fail(context: context, error: .protocolViolation("a response frame shorter than its header"))
            return
        }
        switch matcher.match(id) {
        case .matched(let promise):
            promise.succeed(frame)
        case .mismatch(let expected, let actual):
            let wanted = expected.map { "\($0)" } ?? "none"
            fail(context: context, error: .protocolViolation("response correlation id \(actual), expected \(wanted)"))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The timer has already failed the request's own promise with `requestTimedOut`;
        // the others on this connection cannot be matched any more once it is skipped.
        if let timeout = event as? RequestTimeoutEvent {
            if matcher.contains(timeout.correlationId) {
                fail(context: context, error: .connectionClosed(address: address))
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? KafkaProtocolError {
            fail(context: context, error: .protocolViolation("\(error)"))
        } else {
            fail(context: context, error: .connectionClosed(address: address))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failPending(.connectionClosed(address: address))
        context.fireChannelInactive()
    }

    private func fail(context: ChannelHandlerContext, error: KeelClientError) {
        failPending(error)
        context.close(promise: nil)
    }

    /// Fails every pending request; a promise already completed (e.g. by its timer) ignores it.
    private func failPending(_ error: KeelClientError) {
        if failure == nil { failure = error }
        for promise in matcher.removeAll() { promise.fail(error) }
    }
}

/// One TCP connection to one broker, after ApiVersions negotiation.
///
/// Requests may be issued from any task; they are written in call order per writer and
/// answered in write order. A request timeout closes the connection (the only way to keep
/// in-order matching sound), failing every other pending request with `connectionClosed`.
final class BrokerConnection: Sendable {
    /// Where this connection goes.
    let address: BrokerAddress
    /// The broker's advertised version range per API key (empty before negotiation).
    let brokerVersions: [Int16: ClosedRange<Int16>]
    private let channel: any Channel
    private let clientId: String
    private let nextCorrelationId: Atomic<Int32>

    private init(
        address: BrokerAddress,
        channel: any Channel,
        clientId: String,
        brokerVersions: [Int16: ClosedRange<Int16>],
        firstCorrelationId: Int32
    ) {
        self.address = address
        self.channel = channel
        self.clientId = clientId
        self.brokerVersions = brokerVersions
        self.nextCorrelationId = Atomic(firstCorrelationId)
    }

    /// Whether the TCP connection is still open.
    var isActive: Bool { channel.isActive }

    /// Connects and negotiates API versions (ApiVersions v3, falling back to the version the
    /// broker names after UNSUPPORTED_VERSION).
    static func connect(
        to address: BrokerAddress,
        clientId: String,
        connectTimeoutMs: Int64,
        requestTimeoutMs: Int64,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(KeelClientError) -> BrokerConnection {
        let label = address.description
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(connectTimeoutMs))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(KafkaClientHandler(address: label))
                    }
                }
                .connect(host: address.host, port: address.port)
                .get()
        } catch {
            throw .connectFailed(address: label, reason: "\(error)")
        }
        let bare = BrokerConnection(
            address: address, channel: channel, clientId: clientId, brokerVersions: [:], firstCorrelationId: 0)
        do throws(KeelClientError) {
            let first = try await Self.await(
                bare.sendFrame(
                    ApiVersionsRequest(clientSoftwareName: "keel-swift", clientSoftwareVersion: "0.1.0"),
                    version: 3, timeoutMs: requestTimeoutMs, expectsResponse: true))
            var answer: ApiVersionsResponse
            // UNSUPPORTED_VERSION: Kafka answers in the v0 layout and names its highest version;
            // some peers (librdkafka's mock cluster) use another layout, so fall back to v0 then.
            let errorCode = first.getInteger(at: first.readerIndex + 4, endianness: .big, as: Int16.self)
            if errorCode == ErrorCode.unsupportedVersion.rawValue {
                let named = try? Self.decode(ApiVersionsResponse.self, frame: first, version: 3)
                let brokerMax = named?.apiKeys.first { $0.apiKey == ApiKey.apiVersions.rawValue }?.maxVersion ?? 0
                answer = try await bare.send(
                    ApiVersionsRequest(), version: max(0, min(brokerMax, 2)), timeoutMs: requestTimeoutMs)
            } else {
                answer = try Self.decode(ApiVersionsResponse.self, frame: first, version: 3)
            }
            guard answer.errorCode == .none else { throw .broker(answer.errorCode, context: "ApiVersions") }
            var versions: [Int16: ClosedRange<Int16>] = [:]
            for entry in answer.apiKeys where entry.minVersion <= entry.maxVersion {
                versions[entry.apiKey] = entry.minVersion...entry.maxVersion
            }
            return BrokerConnection(
                address: address, channel: channel, clientId: clientId, brokerVersions: versions,
                firstCorrelationId: bare.nextCorrelationId.load(ordering: .relaxed))
        } catch {
            bare.close()
            throw error
        }
    }

    /// The version of `api` to send: the highest one Keel implements that the broker accepts.
    func version(for api: ApiKey) throws(KeelClientError) -> Int16 {
        let ours = ApiVersionsTable.implementedVersions(of: api)
        guard let theirs = brokerVersions[api.rawValue] else {
            throw .unsupportedVersion(api: api, version: ours.upperBound, brokerRange: nil)
        }
        let top = min(ours.upperBound, theirs.upperBound)
        guard top >= max(ours.lowerBound, theirs.lowerBound) else {
            throw .unsupportedVersion(api: api, version: ours.upperBound, brokerRange: theirs)
        }
        return top
    }

    /// Sends `request` and returns its decoded response.
    func send<R: KafkaRequestMessage>(
        _ request: R,
        version: Int16? = nil,
        timeoutMs: Int64
    ) async throws(KeelClientError) -> R.Response {
        let chosen: Int16
        if let version { chosen = version } else { chosen = try self.version(for: R.apiKey) }
        let frame = try await Self.await(
            sendFrame(request, version: chosen, timeoutMs: timeoutMs, expectsResponse: true))
        return try Self.decode(R.Response.self, frame: frame, version: chosen)
    }

    /// Sends `request` expecting no response (Produce with acks=0); returns once written.
    func sendWithoutResponse<R: KafkaRequestMessage>(_ request: R, timeoutMs: Int64) async throws(KeelClientError) {
        let chosen = try version(for: R.apiKey)
        _ = try await Self.await(sendFrame(request, version: chosen, timeoutMs: timeoutMs, expectsResponse: false))
    }

    /// Writes `request` now and returns a future of its response frame (or of the write, when
    /// no response is expected). Calls made one after another are written in that order.
    func sendFrame<R: KafkaRequestMessage>(
        _ request: R,
        version: Int16,
        timeoutMs: Int64,
        expectsResponse: Bool
    ) -> EventLoopFuture<ByteBuffer> {
        let id = nextCorrelationId.wrappingAdd(1, ordering: .relaxed).oldValue & Int32.max
        let frame = KafkaRequestEncoder.encodeFrame(request, version: version, correlationId: id, clientId: clientId)
        let eventLoop = channel.eventLoop
        let written = eventLoop.makePromise(of: Void.self)
        let address = self.address.description
        guard expectsResponse else {
            channel.writeAndFlush(OutgoingRequest(frame: frame, correlationId: id, response: nil), promise: written)
            return written.futureResult.map { ByteBuffer() }.flatMapErrorThrowing { _ in
                throw KeelClientError.connectionClosed(address: address)
            }
        }
        let response = eventLoop.makePromise(of: ByteBuffer.self)
        let api = R.apiKey
        let channel = self.channel
        let timer = eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) {
            response.fail(KeelClientError.requestTimedOut(api: api, timeoutMs: timeoutMs))
            channel.pipeline.fireUserInboundEventTriggered(
                RequestTimeoutEvent(correlationId: id, api: api, timeoutMs: timeoutMs))
        }
        response.futureResult.whenComplete { _ in timer.cancel() }
        written.futureResult.whenFailure { _ in response.fail(KeelClientError.connectionClosed(address: address)) }
        channel.writeAndFlush(OutgoingRequest(frame: frame, correlationId: id, response: response), promise: written)
        return response.futureResult
    }

    /// Decodes a response frame of `version`.
    static func decode<M: KafkaMessage>(_ type: M.Type, frame: ByteBuffer, version: Int16) throws(KeelClientError) -> M
    {
        do {
            return try KafkaResponseDecoder.decode(type, frame: frame, version: version).body
        } catch {
            throw .protocolViolation("\(M.apiKey) v\(version) response: \(error)")
        }
    }

    /// Awaits a future whose failures are `KeelClientError`s.
    static func await<T: Sendable>(_ future: EventLoopFuture<T>) async throws(KeelClientError) -> T {
        do {
            return try await future.get()
        } catch let error as KeelClientError {
            throw error
        } catch {
            throw .protocolViolation("unexpected failure: \(error)")
        }
    }

    /// Closes the connection; pending requests fail with `connectionClosed`.
    func close() {
        channel.close(promise: nil)
    }
}
