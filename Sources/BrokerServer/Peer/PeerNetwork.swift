// PeerNetwork: the TCP links between the nodes of a cluster, over which every Raft group replicates
// (DESIGN.md, "Replication": all groups between two nodes share one TCP connection).
//
// What it owns: the listener on the cluster port (`--cluster-listen`), one connection per node pair, the
// handshake that refuses a peer of another cluster or an unknown node, reconnection with capped backoff, the
// frame-size limit on what peers send, and the send path (frames queued per peer, written and flushed once per
// turn of the connection's event loop).
//
// Who dials: the node with the lower id dials the node with the higher id; the higher one only accepts. So
// exactly one connection exists per pair and no tie-break is needed. An accepted connection from a peer that
// already has one replaces it (the old one is half-dead: its dialer restarted).
//
// Wire: the first frame each way is a hello, then `ReplicationCodec` frames:
//
// ```
// hello := u32 length (bytes after it) | u32 magic 0x4B45454C ("KEEL") | u16 version (1) | u64 node id
//          | u16 cluster id length | cluster id UTF-8 (at most 255 bytes)
// ```
//
// The dialer sends its hello at once; the acceptor checks it (magic, version, cluster id, a known voter with a
// lower id) and answers with its own; the dialer checks that the answer comes from the node it dialed. Only then
// does the link carry frames. Garbage (a bad hello, a frame over the limit, a frame the codec refuses, a frame
// whose sender or receiver is wrong) closes that connection with one log line; the node goes on.
//
// What it must never do: block an event loop, interpret Raft messages (that is `ReplicaHost`'s), or hold more
// than `peerQueueBytesMax` of unsent frames for one peer (frames beyond it are dropped: Raft tolerates loss).
//
// Main types: `PeerNetwork`, `PeerNetworkConfig`, `VoterList`, `PeerAddress`, `PeerHello`.

import Logging
import NIOCore
import NIOPosix
import Raft
import Replication
import Synchronization

/// How the cluster links behave. Limits carry their unit in their names.
public struct PeerNetworkConfig: Sendable {
    /// This node.
    public var nodeID: NodeID
    /// The cluster's name; peers with another one are refused.
    public var clusterID: String
    /// Every voter, this node included.
    public var voters: VoterList
    /// Where to listen (`--cluster-listen`); port 0 picks a free one.
    public var listen: PeerAddress
    /// The largest frame accepted from a peer, in bytes.
    public var frameBytesMax: Int
    /// Unsent bytes queued for one peer, at most; further frames are dropped until it drains.
    public var peerQueueBytesMax: Int
    /// First delay before redialing a peer, in milliseconds; doubles on each failure.
    public var reconnectBackoffMsMin: Int64
    /// Longest delay between two dials, in milliseconds.
    public var reconnectBackoffMsMax: Int64
    /// Time a new connection has to complete the handshake, in milliseconds.
    public var handshakeTimeoutMsMax: Int64
    /// Time a dial may take, in milliseconds.
    public var connectTimeoutMsMax: Int64
    /// How often each side of a link sends a keepalive (an empty heartbeat frame), in milliseconds.
    public var keepaliveIntervalMs: Int64
    /// A link on which nothing arrived for this long is closed and dialed again, in milliseconds: when packets
    /// are dropped (a partition, a dead host) TCP keeps the connection up and backs its retransmissions off, so
    /// that after the network heals frames could wait many seconds for the next retransmission; a new
    /// connection gets through at once.
    public var linkSilenceMsMax: Int64

    /// The longest cluster id, in bytes of UTF-8.
    public static let clusterIDBytesMax = 255

    /// A configuration with Keel's defaults.
    public init(
        nodeID: NodeID, clusterID: String, voters: VoterList, listen: PeerAddress,
        frameBytesMax: Int = 16 << 20, peerQueueBytesMax: Int = 64 << 20,
        reconnectBackoffMsMin: Int64 = 50, reconnectBackoffMsMax: Int64 = 2000,
        handshakeTimeoutMsMax: Int64 = 5000, connectTimeoutMsMax: Int64 = 2000,
        keepaliveIntervalMs: Int64 = 250, linkSilenceMsMax: Int64 = 2000
    ) {
        self.nodeID = nodeID
        self.clusterID = clusterID
        self.voters = voters
        self.listen = listen
        self.frameBytesMax = frameBytesMax
        self.peerQueueBytesMax = peerQueueBytesMax
        self.reconnectBackoffMsMin = reconnectBackoffMsMin
        self.reconnectBackoffMsMax = reconnectBackoffMsMax
        self.handshakeTimeoutMsMax = handshakeTimeoutMsMax
        self.connectTimeoutMsMax = connectTimeoutMsMax
        self.keepaliveIntervalMs = keepaliveIntervalMs
        self.linkSilenceMsMax = linkSilenceMsMax
    }

    /// Checks the configuration at start-up.
    public func validate() throws(PeerConfigError) {
        guard voters.addresses[nodeID] != nil else { throw .invalid(VotersError.missingSelf(nodeID).description) }
        guard !clusterID.isEmpty, clusterID.utf8.count <= Self.clusterIDBytesMax else {
            throw .invalid("cluster id must be 1 to \(Self.clusterIDBytesMax) bytes")
        }
        guard frameBytesMax >= 1024, frameBytesMax <= ReplicationCodec.frameBytesMax else {
            throw .invalid("frameBytesMax must be 1024 ... \(ReplicationCodec.frameBytesMax)")
        }
        guard peerQueueBytesMax >= frameBytesMax else { throw .invalid("peerQueueBytesMax must be >= frameBytesMax") }
        guard reconnectBackoffMsMin > 0, reconnectBackoffMsMax >= reconnectBackoffMsMin else {
            throw .invalid("reconnect backoff must satisfy 0 < min <= max")
        }
        guard handshakeTimeoutMsMax > 0, connectTimeoutMsMax > 0 else { throw .invalid("timeouts must be positive") }
        guard keepaliveIntervalMs > 0, linkSilenceMsMax > 2 * keepaliveIntervalMs else {
            throw .invalid("the link silence limit must be over twice the keepalive interval")
        }
    }
}

/// A configuration that cannot run.
public enum PeerConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Why, in one line.
    case invalid(String)

    /// One line.
    public var description: String {
        switch self {
        case .invalid(let why): return "cluster configuration: \(why)"
        }
    }
}

/// The first frame each way on a peer connection.
public struct PeerHello: Equatable, Sendable {
    /// "KEEL".
    public static let magic: UInt32 = 0x4B45_454C
    /// The only version so far.
    public static let version: UInt16 = 1

    /// The sender.
    public var nodeID: NodeID
    /// The sender's cluster.
    public var clusterID: String

    /// Builds a hello.
    public init(nodeID: NodeID, clusterID: String) {
        self.nodeID = nodeID
        self.clusterID = clusterID
    }

    /// Appends the length-prefixed hello (layout in the file's overview).
    public func encode(into buffer: inout ByteBuffer) {
        let cluster = Array(clusterID.utf8.prefix(PeerNetworkConfig.clusterIDBytesMax))
        buffer.writeInteger(UInt32(4 + 2 + 8 + 2 + cluster.count))
        buffer.writeInteger(Self.magic)
        buffer.writeInteger(Self.version)
        buffer.writeInteger(nodeID.value)
        buffer.writeInteger(UInt16(cluster.count))
        buffer.writeBytes(cluster)
    }

    /// Decodes a hello from the front of `buffer`; nil (nothing consumed) until it is complete.
    public static func decode(from buffer: inout ByteBuffer) throws(PeerProtocolError) -> PeerHello? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let lengthMax = 4 + 2 + 8 + 2 + PeerNetworkConfig.clusterIDBytesMax
        guard length >= 16, length <= lengthMax else { throw .badHello("length \(length)") }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        var body = buffer.getSlice(at: buffer.readerIndex + 4, length: Int(length)) ?? ByteBuffer()
        guard let magic = body.readInteger(as: UInt32.self), magic == Self.magic else {
            throw .badHello("not a Keel peer (bad magic)")
        }
        guard let version = body.readInteger(as: UInt16.self), version == Self.version else {
            throw .badHello("unsupported version")
        }
        guard let id = body.readInteger(as: UInt64.self), let count = body.readInteger(as: UInt16.self),
            Int(count) == body.readableBytes, let bytes = body.readBytes(length: Int(count)),
            let cluster = String(validating: bytes, as: UTF8.self)
        else { throw .badHello("malformed") }
        buffer.moveReaderIndex(forwardBy: 4 + Int(length))
        return PeerHello(nodeID: NodeID(id), clusterID: cluster)
    }
}

/// What a peer did wrong; the connection is closed and this is logged in one line.
public enum PeerProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The hello is not one.
    case badHello(String)
    /// The hello names another cluster.
    case wrongCluster(String)
    /// The hello names a node that must not connect here.
    case refusedNode(NodeID, String)
    /// A frame is larger than the limit.
    case frameTooLarge(Int)
    /// The codec refused a frame.
    case badFrame(ReplicationCodecError)
    /// A frame's sender or receiver is not this link's.
    case misaddressed(from: NodeID, to: NodeID)
    /// No hello in time.
    case handshakeTimeout
    /// Nothing arrived on an established link for this many milliseconds.
    case silent(Int64)

    /// One line.
    public var description: String {
        switch self {
        case .badHello(let why): return "bad hello: \(why)"
        case .wrongCluster(let cluster): return "peer belongs to cluster '\(cluster)'"
        case .refusedNode(let id, let why): return "node \(id) refused: \(why)"
        case .frameTooLarge(let size): return "frame of \(size) bytes is over the limit"
        case .badFrame(let error): return "bad frame: \(error)"
        case .misaddressed(let from, let to): return "frame from node \(from) to node \(to) on the wrong link"
        case .handshakeTimeout: return "no hello in time"
        case .silent(let ms): return "nothing arrived for \(ms) ms; dialing again"
        }
    }
}

/// The cluster links of one node. Thread-safe: `send` may be called from any event loop.
public final class PeerNetwork: Sendable {
    /// The configuration.
    public let config: PeerNetworkConfig
    let group: any EventLoopGroup
    let logger: Logger
    /// One link per other voter, fixed at start.
    let links: [NodeID: PeerLink]
    let state = Mutex<NetworkState>(NetworkState())
    let limiter = LogRateLimiter(intervalMs: 10_000)

    struct NetworkState {
        var inbound: (@Sendable ([PeerFrame], NodeID) -> Void)?
        var linkLost: (@Sendable (NodeID) -> Void)?
        var listener: (any Channel)?
        var accepted: [ObjectIdentifier: any Channel] = [:]
        var stopped = false
    }

    /// Links to every other voter of `config`, on `group`'s event loops.
    public init(config: PeerNetworkConfig, group: any EventLoopGroup, logger: Logger) {
        self.config = config
        self.group = group
        self.logger = logger
        var links: [NodeID: PeerLink] = [:]
        for (id, address) in config.voters.addresses where id != config.nodeID {
            links[id] = PeerLink(peer: id, address: address, backoffMs: config.reconnectBackoffMsMin)
        }
        self.links = links
    }

    /// The port the listener is bound to (after `start`).
    public var boundPort: Int? { state.withLock { $0.listener?.localAddress?.port } }

    /// True while the link to `peer` is established.
    public func isConnected(to peer: NodeID) -> Bool {
        links[peer]?.state.withLock { $0.channel != nil } ?? false
    }

    /// Binds the cluster port and starts dialing the voters with higher ids. `inbound` receives the frames a peer
    /// sent, on that connection's event loop, with the peer's id: every frame of one socket read together, in
    /// order (batches that arrive together travel together).
    public func start(
        inbound: @escaping @Sendable ([PeerFrame], NodeID) -> Void,
        linkLost: @escaping @Sendable (NodeID) -> Void = { _ in }
    ) async throws {
        try config.validate()
        state.withLock {
            $0.inbound = inbound
            $0.linkLost = linkLost
        }
        let waterMark = self.waterMark
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: waterMark)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.install(on: channel, role: .acceptor)
                    let id = ObjectIdentifier(channel)
                    let stopped = self.state.withLock { state -> Bool in
                        if !state.stopped { state.accepted[id] = channel }
                        return state.stopped
                    }
                    if stopped { throw ChannelError.ioOnClosedChannel }
                    channel.closeFuture.whenComplete { _ in
                        _ = self.state.withLock { $0.accepted.removeValue(forKey: id) }
                    }
                }
            }
            .bind(host: config.listen.host, port: config.listen.port).get()
        let stopped = state.withLock { state -> Bool in
            if !state.stopped { state.listener = listener }
            return state.stopped
        }
        if stopped {
            try? await listener.close()
            return
        }
        let port = listener.localAddress?.port ?? config.listen.port
        logger.info("cluster port listening on \(config.listen.host):\(port) as node \(config.nodeID)")
        for link in links.values where link.peer > config.nodeID { dial(link) }
    }

    /// Queues `frame` for `peer`; it is written with the other frames queued in the same turn of the
    /// connection's event loop, then flushed once. Dropped when the link is down or its queue is full.
    public func send(_ frame: PeerFrame, to peer: NodeID) {
        guard let link = links[peer] else { return }
        // An append's record batches are not copied into the frame: its pieces go out with one gathering write.
        let parts = ReplicationCodec.encodeParts(frame)
        let size = parts.reduce(0) { $0 + $1.readableBytes }
        let queueMax = config.peerQueueBytesMax
        let drainOn: (any Channel)? = link.state.withLock { state in
            guard let channel = state.channel else { return nil }
            // `isWritable` is thread-safe: false once the socket's unsent bytes pass the high water mark (a
            // stalled peer); dropping is then better than growing without bound.
            guard channel.isWritable, state.pendingBytes + size <= queueMax else {
                state.droppedFrames += 1
                return nil
            }
            state.pending.append(contentsOf: parts)
            state.pendingBytes += size
            guard !state.drainScheduled else { return nil }
            state.drainScheduled = true
            return channel
        }
        guard let channel = drainOn else { return }
        channel.eventLoop.execute { link.drain(channel) }
    }

    /// Closes the listener and every connection, and stops redialing.
    public func shutdown() async {
        let (listener, accepted) = state.withLock { state -> ((any Channel)?, [any Channel]) in
            state.stopped = true
            state.inbound = nil
            state.linkLost = nil
            return (state.listener, Array(state.accepted.values))
        }
        try? await listener?.close()
        var open: [any Channel] = accepted
        for link in links.values {
            if let channel = link.state.withLock({ state -> (any Channel)? in
                state.stopped = true
                return state.dialing ?? state.channel
            }) {
                open.append(channel)
            }
        }
        for channel in open { try? await channel.close() }
    }

    // MARK: Connections

    enum Role {
        case acceptor
        case dialer(PeerLink)
    }

    func install(on channel: any Channel, role: Role) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ByteToMessageHandler(PeerFrameDecoder(frameBytesMax: config.frameBytesMax)))
        try sync.addHandler(PeerConnectionHandler(network: self, role: role))
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Unsent bytes in a socket before it stops accepting frames: the peer queue's limit.
    var waterMark: ChannelOptions.Types.WriteBufferWaterMark {
        .init(low: config.peerQueueBytesMax / 2, high: config.peerQueueBytesMax)
    }

    /// Frames dropped for `peer` because its link was full (for metrics and tests).
    public func droppedFrameCount(to peer: NodeID) -> Int {
        links[peer]?.state.withLock { $0.droppedFrames } ?? 0
    }

    func dial(_ link: PeerLink) {
        guard !isStopped, !link.state.withLock({ $0.stopped }) else { return }
        let address = link.address
        let waterMark = self.waterMark
        let future = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: waterMark)
            .connectTimeout(.milliseconds(config.connectTimeoutMsMax))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.install(on: channel, role: .dialer(link)) }
            }
            .connect(host: address.host, port: address.port)
        future.whenComplete { [self] result in
            switch result {
            case .success(let channel):
                let stopped = link.state.withLock { state -> Bool in
                    if !state.stopped { state.dialing = channel }
                    return state.stopped
                }
                if stopped {
                    channel.close(promise: nil)
                    return
                }
                channel.closeFuture.whenComplete { _ in
                    link.state.withLock { if $0.dialing === channel { $0.dialing = nil } }
                    self.redial(link)
                }
            case .failure(let error):
                if limiter.allow("dial \(link.peer)") {
                    logger.info("cannot reach node \(link.peer) at \(address): \(error); retrying")
                }
                redial(link)
            }
        }
    }

    /// Dials `link` again after its backoff, which doubles up to the maximum (reset by a good handshake).
    func redial(_ link: PeerLink) {
        guard !isStopped else { return }
        let maxMs = config.reconnectBackoffMsMax
        let delay = link.state.withLock { state -> Int64 in
            let delay = state.backoffMs
            state.backoffMs = min(maxMs, state.backoffMs * 2)
            return delay
        }
        group.next().scheduleTask(in: .milliseconds(delay)) { self.dial(link) }
    }

    /// Checks a peer's hello; the acceptor learns who dialed, the dialer checks whom it reached.
    func check(_ hello: PeerHello, role: Role) -> Result<PeerLink, PeerProtocolError> {
        guard hello.clusterID == config.clusterID else { return .failure(.wrongCluster(hello.clusterID)) }
        guard let link = links[hello.nodeID] else {
            return .failure(.refusedNode(hello.nodeID, "not a voter of this node's --voters, or this node itself"))
        }
        switch role {
        case .acceptor:
            guard hello.nodeID < config.nodeID else {
                return .failure(.refusedNode(hello.nodeID, "a higher id must wait for this node to dial"))
            }
        case .dialer(let dialed):
            guard dialed === link else {
                return .failure(.refusedNode(hello.nodeID, "dialed node \(dialed.peer) at \(dialed.address)"))
            }
        }
        return .success(link)
    }

    /// A link completed its handshake on `channel`: it carries frames from now on.
    func established(_ link: PeerLink, channel: any Channel) {
        let replaced = link.state.withLock { state -> (any Channel)? in
            let old = state.channel
            state.channel = channel
            state.pending = []
            state.pendingBytes = 0
            state.drainScheduled = false
            state.backoffMs = config.reconnectBackoffMsMin
            return old
        }
        if let replaced, replaced !== channel { replaced.close(promise: nil) }
        logger.info("linked to node \(link.peer)")
    }

    /// A link's connection closed.
    func lost(_ link: PeerLink, channel: any Channel) {
        let was = link.state.withLock { state -> Bool in
            guard state.channel === channel else { return false }
            state.channel = nil
            state.pending = []
            state.pendingBytes = 0
            return true
        }
        if was, !isStopped {
            logger.info("link to node \(link.peer) lost")
            state.withLock { $0.linkLost }?(link.peer)
        }
    }

    func deliver(_ frames: [PeerFrame], from peer: NodeID) {
        state.withLock { $0.inbound }?(frames, peer)
    }

    /// Logs a peer's misbehaviour in one line, rate-limited per remote host and reason (not per connection: a
    /// misconfigured peer redials from a new port every few seconds).
    func report(_ error: any Error, remote: SocketAddress?) {
        let host = remote?.ipAddress ?? "?"
        guard limiter.allow("\(host) \(error)") else { return }
        if error is IOError || isSilence(error) {
            // The socket failed (the peer died or the network dropped the connection): an event, not misbehaviour.
            logger.info("cluster connection from \(remote.map { "\($0)" } ?? "?") closed: \(error)")
        } else {
            logger.warning("cluster connection from \(remote.map { "\($0)" } ?? "?") closed: \(error)")
        }
    }

    private func isSilence(_ error: any Error) -> Bool {
        if case .silent = error as? PeerProtocolError { return true }
        return false
    }

    /// A dialed peer closed the connection before answering the hello: it refused this node (its log says why).
    func refusedByPeer(_ link: PeerLink) {
        if limiter.allow("refused by \(link.peer)") {
            let line = "node \(link.peer) at \(link.address) closed the connection during the handshake; "
                + "check --voters and the cluster id on both nodes"
            logger.warning("\(line)")
        }
    }
}

/// The link to one other voter: its connection once the handshake is done, and the frames waiting for the
/// connection's event loop.
final class PeerLink: Sendable {
    let peer: NodeID
    let address: PeerAddress
    let state: Mutex<LinkState>

    struct LinkState {
        var channel: (any Channel)?
        /// A dialed connection, before and after its handshake.
        var dialing: (any Channel)?
        var pending: [ByteBuffer] = []
        var pendingBytes = 0
        var drainScheduled = false
        var droppedFrames = 0
        var backoffMs: Int64
        var stopped = false
    }

    init(peer: NodeID, address: PeerAddress, backoffMs: Int64) {
        self.peer = peer
        self.address = address
        self.state = Mutex(LinkState(backoffMs: backoffMs))
    }

    /// Writes everything queued, then flushes once (on the channel's event loop).
    func drain(_ channel: any Channel) {
        let frames = state.withLock { state -> [ByteBuffer] in
            state.drainScheduled = false
            guard state.channel === channel else { return [] }
            let frames = state.pending
            state.pending = []
            state.pendingBytes = 0
            return frames
        }
        guard !frames.isEmpty else { return }
        for frame in frames { channel.write(frame, promise: nil) }
        channel.flush()
    }
}

/// What arrives on a peer connection: a hello first, then frames.
enum PeerInbound {
    case hello(PeerHello)
    case frame(PeerFrame)
}

/// Splits a peer's bytes into a hello and then `ReplicationCodec` frames, refusing a frame over the limit before
/// buffering it.
struct PeerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = PeerInbound

    let frameBytesMax: Int
    var helloSeen = false

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if !helloSeen {
            guard let hello = try PeerHello.decode(from: &buffer) else { return .needMoreData }
            helloSeen = true
            context.fireChannelRead(wrapInboundOut(.hello(hello)))
            return .continue
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= frameBytesMax else { throw PeerProtocolError.frameTooLarge(Int(length)) }
        let frame: PeerFrame?
        do throws(ReplicationCodecError) {
            frame = try ReplicationCodec.decodeFrame(from: &buffer)
        } catch {
            throw PeerProtocolError.badFrame(error)
        }
        guard let frame else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(.frame(frame)))
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// One peer connection's state machine: waiting for the hello, then carrying frames of an established link.
final class PeerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = PeerInbound
    typealias OutboundOut = ByteBuffer

    enum State {
        case awaitingHello
        case established(PeerLink)
        case closed
    }

    let network: PeerNetwork
    let role: PeerNetwork.Role
    var state = State.awaitingHello
    var timeout: Scheduled<Void>?
    /// Sends keepalives and closes the link when the peer has gone silent (established links only).
    var liveness: RepeatedTask?
    /// When the last frame arrived.
    var lastReadAt = NIODeadline.now()
    /// Frames of the current socket read, delivered at its end.
    var received: [PeerFrame] = []

    init(network: PeerNetwork, role: PeerNetwork.Role) {
        self.network = network
        self.role = role
    }

    func channelActive(context: ChannelHandlerContext) {
        if case .dialer = role {
            var hello = context.channel.allocator.buffer(capacity: 64)
            PeerHello(nodeID: network.config.nodeID, clusterID: network.config.clusterID).encode(into: &hello)
            context.writeAndFlush(wrapOutboundOut(hello), promise: nil)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: .milliseconds(network.config.handshakeTimeoutMsMax)) {
            let (handler, context) = bound.value
            guard case .awaitingHello = handler.state else { return }
            handler.fail(PeerProtocolError.handshakeTimeout, context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (state, unwrapInboundIn(data)) {
        case (.awaitingHello, .hello(let hello)):
            switch network.check(hello, role: role) {
            case .failure(let error):
                fail(error, context: context)
            case .success(let link):
                timeout?.cancel()
                if case .acceptor = role {
                    var answer = context.channel.allocator.buffer(capacity: 64)
                    PeerHello(nodeID: network.config.nodeID, clusterID: network.config.clusterID)
                        .encode(into: &answer)
                    context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
                }
                state = .established(link)
                network.established(link, channel: context.channel)
                startLiveness(context: context, peer: link.peer)
            }
        case (.established(let link), .frame(let frame)):
            lastReadAt = .now()
            let (from, to): (NodeID, NodeID)
            switch frame {
            case .message(let envelope): (from, to) = (envelope.message.from, envelope.message.to)
            case .heartbeats(let beats): (from, to) = (beats.from, beats.to)
            case .rpc(let rpc): (from, to) = (rpc.from, rpc.to)
            }
            guard from == link.peer, to == network.config.nodeID else {
                fail(PeerProtocolError.misaddressed(from: from, to: to), context: context)
                return
            }
            // A keepalive (no heartbeat in it) only proves the link works.
            if case .heartbeats(let beats) = frame, beats.items.isEmpty { return }
            received.append(frame)
        case (.closed, _):
            break
        case (.awaitingHello, .frame), (.established, .hello):
            fail(PeerProtocolError.badHello("unexpected"), context: context)
        }
    }

    /// The end of one socket read: its frames go to the replicas together.
    func channelReadComplete(context: ChannelHandlerContext) {
        deliverReceived()
        context.fireChannelReadComplete()
    }

    func deliverReceived() {
        guard !received.isEmpty, case .established(let link) = state else { return }
        let frames = received
        received = []
        network.deliver(frames, from: link.peer)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    /// Every keepalive interval: sends an empty heartbeat frame, and closes the link if nothing arrived for the
    /// silence limit (the peer sends its keepalives as often, so a working link is never that quiet).
    func startLiveness(context: ChannelHandlerContext, peer: NodeID) {
        let config = network.config
        var keepalive = context.channel.allocator.buffer(capacity: 32)
        ReplicationCodec.encode(
            .heartbeats(CoalescedHeartbeats(from: config.nodeID, to: peer, items: [])), into: &keepalive)
        let frame = keepalive
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let interval = TimeAmount.milliseconds(config.keepaliveIntervalMs)
        lastReadAt = .now()
        liveness = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (handler, context) = bound.value
            guard case .established = handler.state else { return }
            let silentMs = (NIODeadline.now() - handler.lastReadAt).nanoseconds / 1_000_000
            if silentMs >= config.linkSilenceMsMax {
                handler.fail(PeerProtocolError.silent(silentMs), context: context)
                return
            }
            context.writeAndFlush(handler.wrapOutboundOut(frame), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        liveness?.cancel()
        if case .established(let link) = state { network.lost(link, channel: context.channel) }
        if case .awaitingHello = state, case .dialer(let link) = role { network.refusedByPeer(link) }
        state = .closed
        context.fireChannelInactive()
    }

    /// Logs one line and closes the connection.
    func fail(_ error: any Error, context: ChannelHandlerContext) {
        if case .closed = state { return }
        liveness?.cancel()
        // Frames that arrived before the garbage are good: Raft may use them.
        deliverReceived()
        if case .established(let link) = state { network.lost(link, channel: context.channel) }
        state = .closed
        network.report(error, remote: context.channel.remoteAddress)
        context.close(promise: nil)
    }
}

/// Lets a log line through at most once per interval per key (a misconfigured peer retries forever).
final class LogRateLimiter: Sendable {
    let intervalMs: Int64
    let last = Mutex<[String: Int64]>([:])

    init(intervalMs: Int64) { self.intervalMs = intervalMs }

    func allow(_ key: String) -> Bool {
        let now = NIODeadline.now().uptimeNanoseconds / 1_000_000
        return last.withLock { last in
            if let at = last[key], Int64(now) - at < intervalMs { return false }
            if last.count > 1024 { last = [:] }
            last[key] = Int64(now)
            return true
        }
    }
}
