import KafkaProtocol
import NIOCore
import NIOPosix
import Synchronization

/// One thing the scripted broker sends back.
enum ScriptedReply: Sendable {
    /// A response body at `version` with `correlationId`.
    case message(any KafkaMessage, version: Int16, correlationId: Int32)
    /// Close the connection.
    case close
    /// `reply`, written `ms` milliseconds later; replies after it on the connection wait for it,
    /// since a Kafka broker answers a connection's requests in order.
    indirect case delayed(ms: Int64, ScriptedReply)

    /// The answer to `request` with `body`, at the request's version and correlation id.
    static func answer(_ request: DecodedRequest, _ body: any KafkaMessage) -> ScriptedReply {
        .message(body, version: request.header.apiVersion, correlationId: request.header.correlationId)
    }
}

/// An in-process Kafka broker on loopback whose answers a test scripts: it decodes requests
/// with Keel's own server-side codec, records them, and writes back whatever the script returns.
/// ApiVersions, Metadata (itself as node 1, `partitions` partitions per topic) and
/// InitProducerId get standard answers unless the script handles them.
final class ScriptedBroker: Sendable {
    typealias Script = @Sendable (DecodedRequest) -> [ScriptedReply]?

    let port: Int
    let partitions: Int32
    private let channel: any Channel
    private let log = LockedBox<[DecodedRequest]>([])

    /// Listens on 127.0.0.1 (an ephemeral port); `script` returns nil to get the standard answer.
    init(partitions: Int32 = 1, script: @escaping Script) async throws {
        self.partitions = partitions
        let log = self.log
        let portBox = LockedBox<Int>(0)
        let standard: @Sendable (DecodedRequest) -> [ScriptedReply] = { request in
            ScriptedBroker.standardReply(request, port: portBox.withLock { $0 }, partitions: partitions)
        }
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        ScriptedBrokerHandler(log: log, script: script, standard: standard))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        port = channel.localAddress?.port ?? 0
        portBox.withLock { $0 = port }
    }

    /// `127.0.0.1:port`.
    var bootstrap: String { "127.0.0.1:\(port)" }

    /// Every request received so far, in arrival order.
    var requests: [DecodedRequest] { log.withLock { $0 } }

    /// Stops listening (open connections close with the event loop's next turn).
    func stop() async {
        try? await channel.close()
    }

    static func standardReply(_ request: DecodedRequest, port: Int, partitions: Int32) -> [ScriptedReply] {
        switch request.request {
        case .apiVersions:
            return [.answer(request, ApiVersionsResponse.keel)]
        case .metadata(let body):
            let topics = (body.topics ?? []).map { topic in
                MetadataResponse.Topic(
                    name: topic.name, isInternal: false,
                    partitions: (0..<partitions).map {
                        .init(partitionIndex: $0, leaderId: 1, replicaNodes: [1], isrNodes: [1])
                    })
            }
            return [
                .answer(
                    request,
                    MetadataResponse(
                        brokers: [.init(nodeId: 1, host: "127.0.0.1", port: Int32(port), rack: nil)],
                        clusterId: "scripted", controllerId: 1, topics: topics))
            ]
        case .initProducerId:
            return [.answer(request, InitProducerIdResponse(producerId: 4242, producerEpoch: 0))]
        default:
            return [.close]
        }
    }
}

private final class ScriptedBrokerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let log: LockedBox<[DecodedRequest]>
    let script: ScriptedBroker.Script
    let standard: @Sendable (DecodedRequest) -> [ScriptedReply]

    init(
        log: LockedBox<[DecodedRequest]>,
        script: @escaping ScriptedBroker.Script,
        standard: @escaping @Sendable (DecodedRequest) -> [ScriptedReply]
    ) {
        self.log = log
        self.script = script
        self.standard = standard
    }

    /// Completes when every reply so far is written: replies go out in request order.
    private var tail: EventLoopFuture<Void>?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let request = try? KafkaRequestDecoder.decode(frame: frame) else {
            context.close(promise: nil)
            return
        }
        log.withLock { $0.append(request) }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        for reply in script(request) ?? standard(request) {
            var delayMs: Int64 = 0
            var reply = reply
            while case .delayed(let ms, let inner) = reply {
                delayMs += ms
                reply = inner
            }
            let previous = tail ?? context.eventLoop.makeSucceededVoidFuture()
            let eventLoop = context.eventLoop
            let final = reply
            let delay = delayMs
            tail = previous.flatMap {
                let written: EventLoopFuture<Void> =
                    delay > 0
                    ? eventLoop.scheduleTask(in: .milliseconds(delay)) {}.futureResult
                    : eventLoop.makeSucceededVoidFuture()
                return written.map { Self.write(final, to: bound.value) }
            }
        }
    }

    private static func write(_ reply: ScriptedReply, to context: ChannelHandlerContext) {
        switch reply {
        case .message(let body, let version, let correlationId):
            let bytes = KafkaResponseEncoder.encodeFrame(body, version: version, correlationId: correlationId)
            context.writeAndFlush(NIOAny(bytes), promise: nil)
        case .close:
            context.close(promise: nil)
        case .delayed(_, let inner):
            write(inner, to: context)
        }
    }
}

/// A value behind a lock, shareable between tasks and event loops.
final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }

    var value: Value { mutex.withLock { $0 } }
}
