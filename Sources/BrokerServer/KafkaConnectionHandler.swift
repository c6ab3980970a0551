import Broker
import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import Synchronization

/// One client connection: decodes request frames, hands them to the broker, and writes the
/// answers in request order, even when a later request (Metadata) is answered before an
/// earlier one (a long-polling Fetch). Fetch records go out as file regions (sendfile).
///
/// Bad input (an undecodable frame, an unknown API key, an unsupported version of an API
/// other than ApiVersions, a truncated body) closes this connection with one log line.
/// At most `pipelinedRequestsMax` requests, or `pipelinedBytesMax` bytes of them, wait
/// for their answers; beyond that the connection stops reading until answers go out.
final class KafkaConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = IOData

    static let pipelinedRequestsMax = 128
    static let pipelinedBytesMax = 64 * 1024 * 1024

    private let broker: Broker
    private let inFlight: InFlightRequests
    private var logger: Logger
    /// Answers in request order; nil until the broker has answered.
    private var pending = CircularBuffer<BrokerResponse?>()
    /// The request bytes of each pending answer, in the same order.
    private var pendingBytes = CircularBuffer<Int>()
    private var pendingBytesTotal = 0
    /// The sequence number of `pending.first`.
    private var headSequence = 0
    private var closing = false
    private var readingPaused = false
    /// The client's address as Kafka reports it in DescribeGroups (`/127.0.0.1`).
    private var clientHost = ""

    init(broker: Broker, inFlight: InFlightRequests, logger: Logger) {
        self.broker = broker
        self.inFlight = inFlight
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        clientHost = context.remoteAddress?.ipAddress.map { "/" + $0 } ?? ""
        logger[metadataKey: "client"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        logger.debug("connection opened")
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        logger.debug("connection closed")
        closing = true
        dropPending()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let frame = unwrapInboundIn(data)
        let decoded: DecodedRequest
        do throws(RequestDecodeFailure) {
            decoded = try KafkaRequestDecoder.decode(frame: frame)
        } catch {
            switch error {
            case .answerUnsupportedVersion(let header):
                let answer = KafkaResponseEncoder.unsupportedApiVersionsFrame(correlationId: header.correlationId)
                let sequence = enqueue(bytes: frame.readableBytes)
                complete(sequence, with: .frame(answer), context: context)
            case .closeConnection(let header, let reason):
                let what = header.map { "\($0.apiKey) v\($0.apiVersion) correlation \($0.correlationId): " } ?? ""
                close(context: context, reason: "bad request: \(what)\(reason)")
            }
            return
        }
        let sequence = enqueue(bytes: frame.readableBytes)
        if pending.count >= Self.pipelinedRequestsMax || pendingBytesTotal >= Self.pipelinedBytesMax, !readingPaused {
            readingPaused = true
            _ = try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        }
        inFlight.begin()
        broker.handle(decoded, clientHost: clientHost, on: context.eventLoop).assumeIsolated().whenComplete { result in
            self.inFlight.end()
            switch result {
            case .success(let response): self.complete(sequence, with: response, context: context)
            case .failure(let error): self.complete(sequence, with: .close(reason: "\(error)"), context: context)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is KafkaProtocolError {
            // The frame decoder refuses negative and oversize frames here.
            close(context: context, reason: "\(error)")
        } else {
            // The peer went away (reset, broken pipe): not the client's fault worth a warning.
            logger.debug("connection error: \(error)")
            closing = true
            dropPending()
            context.close(promise: nil)
        }
    }

    private func dropPending() {
        pending.removeAll()
        pendingBytes.removeAll()
        pendingBytesTotal = 0
    }

    private func enqueue(bytes: Int) -> Int {
        pending.append(nil)
        pendingBytes.append(bytes)
        pendingBytesTotal += bytes
        return headSequence + pending.count - 1
    }

    private func complete(_ sequence: Int, with response: BrokerResponse, context: ChannelHandlerContext) {
        guard !closing else { return }
        let index = sequence - headSequence
        guard index >= 0, index < pending.count else { return }
        pending[pending.index(pending.startIndex, offsetBy: index)] = response
        var wrote = false
        while let first = pending.first, let response = first {
            pending.removeFirst()
            pendingBytesTotal -= pendingBytes.removeFirst()
            headSequence += 1
            switch response {
            case .frame(let buffer):
                context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
                wrote = true
            case .none:
                break
            case .fetch(let parts, let records):
                guard write(parts, records: records, context: context) else { return }
                wrote = true
            case .close(let reason):
                if wrote { context.flush() }
                close(context: context, reason: reason)
                return
            }
        }
        if wrote { context.flush() }
        if readingPaused, pending.count < Self.pipelinedRequestsMax / 2,
            pendingBytesTotal < Self.pipelinedBytesMax / 2
        {
            readingPaused = false
            _ = try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    /// Writes a Fetch response: header bytes, then each partition's records as file regions
    /// opened by path (an open descriptor keeps the bytes even if retention deletes the segment).
    private func write(_ parts: [FetchResponsePart], records: [Int: [LogSlice]], context: ChannelHandlerContext)
        -> Bool
    {
        for part in parts {
            switch part {
            case .bytes(let buffer):
                context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
            case .records(let length, let token):
                var sent = 0
                for slice in records[token] ?? [] {
                    let file: NIOFileHandle
                    do {
                        file = try NIOFileHandle(_deprecatedPath: slice.file.path)
                    } catch {
                        close(context: context, reason: "fetch: cannot open \(slice.file.path): \(error)")
                        return false
                    }
                    let start = slice.position.value
                    let region = FileRegion(fileHandle: file, readerIndex: start, endIndex: start + slice.length.value)
                    let written = context.eventLoop.makePromise(of: Void.self)
                    written.futureResult.whenComplete { _ in try? file.close() }
                    context.write(wrapOutboundOut(.fileRegion(region)), promise: written)
                    sent += slice.length.value
                }
                guard sent == length else {
                    close(context: context, reason: "fetch: \(sent) record bytes found where \(length) were promised")
                    return false
                }
            }
        }
        return true
    }

    private func close(context: ChannelHandlerContext, reason: String) {
        guard !closing else { return }
        closing = true
        logger.warning("closing connection: \(reason)")
        dropPending()
        context.close(promise: nil)
    }
}

/// How many requests, on every connection (open or already closed), the broker has been
/// handed and has not answered yet. Shutdown waits for none before stopping the event loops:
/// an answer still travelling between loops when they stop leaks its promise.
final class InFlightRequests: Sendable {
    private let count = Atomic<Int>(0)

    func begin() { count.wrappingAdd(1, ordering: .relaxed) }

    func end() { count.wrappingSubtract(1, ordering: .releasing) }

    var current: Int { count.load(ordering: .acquiring) }
}
