import KafkaProtocol
import NIOCore
import Records

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How many acknowledgements a produce waits for.
public enum Acks: Int16, Sendable, CustomStringConvertible {
    /// No answer at all (offsets unknown: `send` returns offset -1).
    case none = 0
    /// The leader appended the batch.
    case leader = 1
    /// The batch is committed (Raft majority); required for idempotence.
    case all = -1

    /// `0`, `1` or `all`.
    public var description: String {
        switch self {
        case .none: "0"
        case .leader: "1"
        case .all: "all"
        }
    }
}

/// Settings of a `KeelProducer`; every limit names its unit.
public struct ProducerConfiguration: Sendable {
    /// Acknowledgements to wait for.
    public var acks: Acks = .all
    /// A batch closes once it holds this many (uncompressed) bytes.
    public var batchBytesMax: Int = 64 * 1024
    /// How long a batch waits for more records before it is sent, in milliseconds.
    public var lingerMs: Int64 = 5
    /// The batch compression: `.lz4` (default) or `.none`.
    public var compression: CompressionCodec = .lz4
    /// Idempotence (producer id, per-partition sequences); only with `acks == .all`.
    public var idempotent: Bool = true
    /// How many times a batch is retried after retriable errors.
    public var retriesMax: Int = 10
    /// The pause before a retry, in milliseconds (doubled each time, up to 1 s).
    public var retryBackoffMs: Int64 = 100
    /// How long the broker may take to reach `acks`, in milliseconds.
    public var produceTimeoutMs: Int32 = 30_000
    /// Produce requests in flight per partition (Kafka allows at most 5 with idempotence).
    public var inFlightPerPartitionMax: Int = 5
    /// Bytes of unsent records the producer holds before `send` waits.
    public var bufferBytesMax: Int = 32 * 1024 * 1024

    /// The defaults: acks=all, idempotent, LZ4, 64 KiB batches, 5 ms linger.
    public init() {}
}

/// Publishes records: batches them per partition, compresses, sends and retries.
///
/// `send` returns when the record's batch is acknowledged, with its offset; `enqueue` returns
/// as soon as the record is in a batch, and `flush` reports delivery failures of enqueued records.
/// Idempotence (the default) lets retries reach the broker twice without duplicating records:
/// each batch keeps the sequence number it was first sent with.
public actor KeelProducer {
    typealias Waiter = CheckedContinuation<Result<Offset, KeelClientError>, Never>

    /// A closed batch on its way: built into bytes when first sent.
    struct PendingBatch {
        var topicPartition: TopicPartition
        var builder: RecordBatchBuilder?
        var bytes: ByteBuffer?
        var recordCount: Int32
        var waiters: [(offsetDelta: Int32, waiter: Waiter)]
        var baseSequence: Int32 = -1
        var attempts = 0
        var accountedBytes: Int
    }

    /// A batch sent and not answered yet.
    struct InFlight {
        var batch: PendingBatch
        var future: EventLoopFuture<ByteBuffer>
        var version: Int16
    }

    /// One partition's send state: batches waiting, batches in flight (oldest first), and
    /// the connection to its leader.
    struct PartitionQueue {
        var ready: [PendingBatch] = []
        var inFlight: [InFlight] = []
        /// The completion loop (`runPartition`) is running.
        var isRunning = false
        /// A failure is being handled: nothing new is sent until the resend order is settled.
        var isRecovering = false
        var connection: BrokerConnection?
        var produceVersion: Int16 = 0
    }

    /// The client this producer sends through.
    public let client: KeelClient
    /// The settings of this producer.
    public let configuration: ProducerConfiguration
    /// The idempotent producer id, -1 when not idempotent.
    public private(set) var producerId: Int64 = -1
    /// The producer epoch, -1 when not idempotent.
    public private(set) var producerEpoch: Int16 = -1

    private var accumulator: RecordAccumulator<Waiter>
    private var sequences = SequenceNumbers()
    private var queues: [TopicPartition: PartitionQueue] = [:]
    private var partitionCounts: [String: Int32] = [:]
    private var sticky: [String: Int32] = [:]
    private var stickyNext: Int32 = 0
    private var pendingBatches = 0
    private var pendingBytes = 0
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    private var deliveryFailures = 0
    private var firstDeliveryError: KeelClientError?
    private var isClosed = false
    private let clock = ContinuousClock()
    private let epoch: ContinuousClock.Instant

    /// Creates a producer; with idempotence it first asks the cluster for a producer id.
    public init(client: KeelClient, configuration: ProducerConfiguration = ProducerConfiguration())
        async throws(KeelClientError)
    {
        guard configuration.batchBytesMax > RecordBatchHeader.size + 64 else {
            throw .invalidArgument("batchBytesMax must be at least \(RecordBatchHeader.size + 65) bytes")
        }
        guard configuration.compression == .none || configuration.compression == .lz4 else {
            throw .invalidArgument("KeelProducer compresses with lz4 or not at all, not \(configuration.compression)")
        }
        guard (1...5).contains(configuration.inFlightPerPartitionMax) || !configuration.idempotent else {
            throw .invalidArgument("an idempotent producer allows 1 to 5 requests in flight per partition")
        }
        self.client = client
        self.configuration = configuration
        self.accumulator = RecordAccumulator(batchBytesMax: configuration.batchBytesMax)
        self.epoch = clock.now
        if configuration.idempotent && configuration.acks == .all {
            let request = InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 60_000)
            let response = try await client.withRetries { () async throws(KeelClientError) -> InitProducerIdResponse in
                let connection = try await client.anyConnection()
                let answer = try await connection.send(request, timeoutMs: client.configuration.requestTimeoutMs)
                guard answer.errorCode == .none else { throw .broker(answer.errorCode, context: "InitProducerId") }
                return answer
            }
            producerId = response.producerId
            producerEpoch = response.producerEpoch
        }
    }

    private var isIdempotent: Bool { producerId >= 0 }

    private var nowMs: Int64 {
        let elapsed = clock.now - epoch
        return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }

    // MARK: Public API

    /// Sends one record and returns its offset once acknowledged (offset -1 with acks=0).
    ///
    /// - Parameters:
    ///   - partition: the partition; nil picks one: murmur2 of the key, or a sticky partition for a null key.
    ///   - timestamp: milliseconds since the epoch; nil for now.
    public func send(
        topic: String,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader] = [],
        partition: Int32? = nil,
        timestamp: Int64? = nil
    ) async throws(KeelClientError) -> Offset {
        let target = try await prepare(topic: topic, key: key, value: value, headers: headers, partition: partition)
        let result = await withCheckedContinuation { (continuation: Waiter) in
            append(target, key: key, value: value, headers: headers, timestamp: timestamp, waiter: continuation)
        }
        return try result.get()
    }

    /// Adds one record to its batch and returns; delivery failures are reported by `flush`.
    public func enqueue(
        topic: String,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader] = [],
        partition: Int32? = nil,
        timestamp: Int64? = nil
    ) async throws(KeelClientError) {
        let target = try await prepare(topic: topic, key: key, value: value, headers: headers, partition: partition)
        append(target, key: key, value: value, headers: headers, timestamp: timestamp, waiter: nil)
    }

    /// Sends every batch now and waits until all records handed over so far are acknowledged
    /// or failed. Throws `.deliveryFailed` if records given to `enqueue` failed since the last flush.
    public func flush() async throws(KeelClientError) {
        for batch in accumulator.closeAll() { submit(batch) }
        while pendingBatches > 0 {
            await withCheckedContinuation { idleWaiters.append($0) }
        }
        if let first = firstDeliveryError {
            let count = deliveryFailures
            firstDeliveryError = nil
            deliveryFailures = 0
            throw .deliveryFailed(count: count, first: first)
        }
    }

    /// Flushes, then refuses further records.
    public func close() async throws(KeelClientError) {
        defer { isClosed = true }
        try await flush()
    }

    // MARK: Appending

    /// Checks the producer is open, picks the partition, and waits for buffer space.
    private func prepare(
        topic: String,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader],
        partition: Int32?
    ) async throws(KeelClientError) -> TopicPartition {
        guard !isClosed else { throw .closed }
        let count = try await partitionCount(of: topic)
        let chosen: Int32
        if let partition {
            guard partition >= 0 && partition < count else {
                throw .unknownPartition(topic: topic, partition: partition)
            }
            chosen = partition
        } else if let key {
            chosen = Partitioner.partition(forKey: key, partitionCount: count)
        } else {
            chosen = stickyPartition(of: topic, count: count)
        }
        var rounds = 0
        while pendingBytes >= configuration.bufferBytesMax && rounds < 1_000_000 {
            rounds += 1
            for batch in accumulator.closeAll() { submit(batch) }
            await withCheckedContinuation { spaceWaiters.append($0) }
        }
        guard !isClosed else { throw .closed }
        return TopicPartition(topic: topic, partition: chosen)
    }

    private func partitionCount(of topic: String) async throws(KeelClientError) -> Int32 {
        if let known = partitionCounts[topic] { return known }
        guard !topic.isEmpty else { throw .invalidArgument("a topic name must not be empty") }
        let info = try await client.topicInfo(topic)
        let count = Int32(info.partitions.count)
        guard count > 0 else { throw .unknownTopic(topic) }
        partitionCounts[topic] = count
        return count
    }

    /// The sticky partition for null keys: kept until its batch closes, then the next one.
    private func stickyPartition(of topic: String, count: Int32) -> Int32 {
        if let current = sticky[topic], current < count { return current }
        stickyNext = (stickyNext &+ 1) & Int32.max
        let chosen = stickyNext % count
        sticky[topic] = chosen
        return chosen
    }

    private func append(
        _ target: TopicPartition,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader],
        timestamp: Int64?,
        waiter: Waiter?
    ) {
        let now = nowMs
        let wallMs = timestamp ?? Self.wallClockMs()
        let outcome = accumulator.append(
            to: target, timestamp: wallMs, key: key, value: value, headers: headers, waiter: waiter, nowMs: now)
        pendingBytes += outcome.addedBytes
        for batch in outcome.closed { submit(batch) }
        if let generation = outcome.startedGeneration {
            pendingBatches += 1
            let linger = configuration.lingerMs
            Task { [weak self] in
                if linger > 0 { try? await Task.sleep(for: .milliseconds(linger)) }
                await self?.lingerExpired(target, generation: generation)
            }
        }
    }

    private func lingerExpired(_ target: TopicPartition, generation: Int) {
        if let batch = accumulator.close(target, generation: generation) { submit(batch) }
    }

    /// Moves a closed batch to its partition's queue and starts the partition's sender.
    private func submit(_ batch: ClosedBatch<Waiter>) {
        let target = batch.topicPartition
        if sticky[target.topic] == target.partition { sticky[target.topic] = nil }
        queues[target, default: PartitionQueue()].ready.append(
            PendingBatch(
                topicPartition: target, builder: batch.builder, recordCount: batch.recordCount, waiters: batch.waiters,
                accountedBytes: batch.bytes))
        pump(target)
        startLoop(target)
    }

    /// Starts the partition's completion loop unless it runs or there is nothing to do.
    private func startLoop(_ target: TopicPartition) {
        guard let queue = queues[target], !queue.isRunning, !(queue.ready.isEmpty && queue.inFlight.isEmpty) else {
            return
        }
        queues[target]?.isRunning = true
        Task { await self.runPartition(target) }
    }

    static func wallClockMs() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    // MARK: Sending

    /// The outcome of one produce request for one batch.
    enum BatchOutcome {
        case acknowledged(baseOffset: Offset)
        case failed(KeelClientError)
    }

    /// Sends ready batches of `target` while the window has room: at most
    /// `inFlightPerPartitionMax` requests, all on the leader's one connection, so that the
    /// broker sees the batches in sequence order. Never suspends: a batch leaves as soon as
    /// it is ready, even while older ones await their answers.
    private func pump(_ target: TopicPartition) {
        guard var queue = queues[target], !queue.isRecovering, let connection = queue.connection, connection.isActive
        else { return }
        while queue.inFlight.count < configuration.inFlightPerPartitionMax, !queue.ready.isEmpty {
            var batch = queue.ready.removeFirst()
            build(&batch)
            guard let bytes = batch.bytes else { continue }  // could not be built: already failed
            let request = ProduceRequest(
                transactionalId: nil, acks: configuration.acks.rawValue, timeoutMs: configuration.produceTimeoutMs,
                topicData: [.init(name: target.topic, partitionData: [.init(index: target.partition, records: bytes)])])
            let future = connection.sendFrame(
                request, version: queue.produceVersion,
                timeoutMs: client.configuration.requestTimeoutMs + Int64(configuration.produceTimeoutMs),
                expectsResponse: configuration.acks != .none)
            queue.inFlight.append(InFlight(batch: batch, future: future, version: queue.produceVersion))
        }
        queues[target] = queue
    }

    /// Completes one partition's batches in order. Finds the leader's connection when there is
    /// none, then awaits the oldest request in flight (newer batches keep leaving meanwhile,
    /// through `pump`). When the oldest fails, `recover` settles what to send again.
    private func runPartition(_ target: TopicPartition) async {
        while let queue = queues[target], !(queue.ready.isEmpty && queue.inFlight.isEmpty) {
            guard let head = queue.inFlight.first else {
                if queue.connection?.isActive != true { await connect(target) }
                pump(target)
                if queues[target]?.inFlight.isEmpty == true, let oldest = queues[target]?.ready.first {
                    // No connection to the leader: a failed attempt of the oldest batch.
                    queues[target]?.ready.removeFirst()
                    let error =
                        lastConnectError ?? .leaderNotAvailable(topic: target.topic, partition: target.partition)
                    await recover(target, head: oldest, error: error)
                }
                continue
            }
            let outcome = await self.outcome(of: head, target: target)
            queues[target]?.inFlight.removeFirst()
            switch outcome {
            case .acknowledged(let offset):
                complete(head.batch, with: .success(offset))
                pump(target)
            case .failed(let error):
                await recover(target, head: head.batch, error: error)
            }
        }
        queues[target]?.isRunning = false
        startLoop(target)
    }

    /// Why the last leader lookup failed, if it did.
    private var lastConnectError: KeelClientError?

    /// Looks up the partition leader's connection and the Produce version it accepts.
    private func connect(_ target: TopicPartition) async {
        do {
            let connection = try await client.leaderConnection(topic: target.topic, partition: target.partition)
            let version = try connection.version(for: .produce)
            queues[target]?.connection = connection
            queues[target]?.produceVersion = version
            lastConnectError = nil
        } catch {
            queues[target]?.connection = nil
            lastConnectError = error
        }
    }

    /// Handles the failure of the oldest unacknowledged batch, `head` (already out of the
    /// window): nothing new is sent meanwhile; the rest in flight are drained; every batch
    /// still to deliver goes back to the front of the queue in order, renumbered if a batch
    /// before them was dropped; then a backoff before they are sent again.
    private func recover(_ target: TopicPartition, head: PendingBatch, error: KeelClientError) async {
        queues[target]?.isRecovering = true
        var resend: [PendingBatch] = []
        var retried = head
        if error.isRetriable && retried.attempts < configuration.retriesMax && !isClosed {
            retried.attempts += 1
            resend.append(retried)
        } else {
            complete(head, with: .failure(error))
        }
        // With idempotence nothing after the failed batch can have been appended (the broker
        // refuses a sequence gap); without it some may have been: keep those answers.
        while let entry = queues[target]?.inFlight.first {
            let later = await self.outcome(of: entry, target: target)
            queues[target]?.inFlight.removeFirst()
            switch later {
            case .acknowledged(let offset):
                complete(entry.batch, with: .success(offset))
            case .failed(let laterError):
                if laterError.isRetriable || laterError == .broker(.outOfOrderSequenceNumber, context: "produce") {
                    resend.append(entry.batch)
                } else {
                    complete(entry.batch, with: .failure(laterError))
                }
            }
        }
        if error.isRetriable { queues[target]?.connection = nil }
        if error.invalidatesMetadata { await client.invalidate(topic: target.topic) }
        // The head was the oldest unacknowledged batch: the broker expects its sequence next.
        renumber(&resend, from: head.bytes != nil ? head.baseSequence : nil, target: target)
        queues[target]?.ready.insert(contentsOf: resend, at: 0)
        if let attempts = resend.first?.attempts, attempts > 0 {
            try? await client.backoffProducer(attempt: attempts, baseMs: configuration.retryBackoffMs)
        }
        queues[target]?.isRecovering = false
    }

    /// Builds the batch bytes on first send, taking its sequence numbers.
    private func build(_ batch: inout PendingBatch) {
        guard batch.bytes == nil, let builder = batch.builder else { return }
        batch.builder = nil
        if isIdempotent {
            batch.baseSequence = sequences.assign(batch.topicPartition, count: batch.recordCount)
        }
        do {
            batch.bytes = try builder.build(
                codec: configuration.compression, producerId: producerId, producerEpoch: producerEpoch,
                baseSequence: batch.baseSequence)
        } catch {
            complete(batch, with: .failure(.batchBuild(error)))
            batch.waiters = []
        }
    }

    /// Gives the built batches to resend consecutive sequences from `start` (the sequence the
    /// broker expects next), patching `baseSequence` and the CRC of a batch whose number
    /// changed because a batch before it was dropped; unbuilt batches number on from there.
    private func renumber(_ batches: inout [PendingBatch], from start: Int32?, target: TopicPartition) {
        guard isIdempotent, let start = start ?? batches.first(where: { $0.bytes != nil })?.baseSequence else {
            return
        }
        var next = start
        for index in batches.indices {
            guard var bytes = batches[index].bytes else { continue }
            if batches[index].baseSequence != next {
                bytes.setInteger(next, at: bytes.readerIndex + Self.baseSequenceOffset)
                RecordBatch.updateCRC(in: &bytes, at: bytes.readerIndex)
                batches[index].bytes = bytes
                batches[index].baseSequence = next
            }
            next = SequenceNumbers.increment(next, by: batches[index].recordCount)
        }
        sequences.reset(target, to: next)
    }

    /// Where `baseSequence` sits in a batch header (Kafka's `DefaultRecordBatch.BASE_SEQUENCE_OFFSET`).
    static let baseSequenceOffset = 53

    /// Waits for one produce answer and reads this partition's result from it.
    private func outcome(of entry: InFlight, target: TopicPartition) async -> BatchOutcome {
        let future = entry.future
        let version = entry.version
        let frame: ByteBuffer
        do {
            frame = try await BrokerConnection.await(future)
        } catch {
            return .failed(error)
        }
        if configuration.acks == .none { return .acknowledged(baseOffset: Offset(-1)) }
        let response: ProduceResponse
        do {
            response = try BrokerConnection.decode(ProduceResponse.self, frame: frame, version: version)
        } catch {
            return .failed(error)
        }
        guard
            let answer = response.responses.first(where: { $0.name == target.topic })?.partitionResponses.first(where: {
                $0.index == target.partition
            })
        else { return .failed(.protocolViolation("Produce answer does not mention \(target)")) }
        switch answer.errorCode {
        case .none: return .acknowledged(baseOffset: Offset(answer.baseOffset))
        case .duplicateSequenceNumber: return .acknowledged(baseOffset: Offset(-1))
        default: return .failed(.broker(answer.errorCode, context: "produce"))
        }
    }

    /// Resolves every waiter of `batch` and releases its buffer space.
    private func complete(_ batch: PendingBatch, with result: Result<Offset, KeelClientError>) {
        switch result {
        case .success(let base):
            for (delta, waiter) in batch.waiters {
                waiter.resume(returning: .success(base.value < 0 ? base : base.advanced(by: Int64(delta))))
            }
        case .failure(let error):
            for (_, waiter) in batch.waiters { waiter.resume(returning: .failure(error)) }
            let unawaited = Int(batch.recordCount) - batch.waiters.count
            if unawaited > 0 {
                deliveryFailures += unawaited
                if firstDeliveryError == nil { firstDeliveryError = error }
            }
        }
        pendingBatches -= 1
        pendingBytes = max(0, pendingBytes - batch.accountedBytes)
        let space = spaceWaiters
        spaceWaiters = []
        for waiter in space { waiter.resume() }
        if pendingBatches == 0 {
            let idle = idleWaiters
            idleWaiters = []
            for waiter in idle { waiter.resume() }
        }
    }
}

extension KeelClient {
    /// Sleeps before a producer retry: `baseMs × 2^(attempt-1)`, at most 1 s.
    func backoffProducer(attempt: Int, baseMs: Int64) async throws {
        let shift = min(max(attempt - 1, 0), 10)
        try await Task.sleep(for: .milliseconds(min(baseMs << Int64(shift), 1_000)))
    }
}
