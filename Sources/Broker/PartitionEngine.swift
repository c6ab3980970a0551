import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import Records

/// What a produce did to one partition.
public struct AppendOutcome: Sendable, Equatable {
    /// NONE, or why nothing was stored (or why the acknowledgement was not given).
    public var errorCode: ErrorCode
    /// The offset of the batch's first record; -1 on error.
    public var baseOffset: Int64
    /// The partition's log start offset; -1 on error.
    public var logStartOffset: Int64

    /// An error outcome.
    public static func failure(_ code: ErrorCode) -> AppendOutcome {
        AppendOutcome(errorCode: code, baseOffset: -1, logStartOffset: -1)
    }
}

/// What a fetch read from one partition: whole batches below the high watermark, as file slices.
public struct PartitionRead: Sendable {
    /// NONE, OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION or KAFKA_STORAGE_ERROR.
    public var errorCode: ErrorCode
    /// The high watermark when the read was made.
    public var highWatermark: Offset
    /// The log start offset when the read was made.
    public var logStartOffset: Offset
    /// The slices to send, in offset order.
    public var slices: [LogSlice]

    /// Bytes in `slices`.
    public var byteCount: Int { slices.reduce(0) { $0 + $1.length.value } }

    static func failure(_ code: ErrorCode) -> PartitionRead {
        PartitionRead(errorCode: code, highWatermark: Offset(-1), logStartOffset: Offset(-1), slices: [])
    }
}

/// One partition's engine: its log, its high watermark, its idempotent producer state,
/// the produce requests waiting for durability and the fetches waiting for data.
///
/// Confinement: lives on one event loop and every call runs to completion there (the
/// broker reaches it through `NIOLoopBound`). Blocking work — the fsyncs of a flush —
/// goes to the blocking pool through `FlushPlan`, and the log goes on appending meanwhile.
///
/// High watermark: one past the last offset consumers may read and that `acks=all`
/// acknowledges. With a single node it is the durable end of the log under the flush
/// policy (after the fsync that covers it, or right after the write under `none`);
/// replication will make it the Raft commit index, without changing this interface.
final class PartitionEngine {
    let topic: String
    let partition: Int32
    let loop: any EventLoop
    let log: PartitionLog
    let environment: BrokerEnvironment
    let logger: Logger
    private(set) var highWatermark: Offset
    private var producers = ProducerStateTable()
    private var ackWaiters = DurabilityWaiters<AckWaiter>()
    private var highWatermarkWaiters: [UInt64: EventLoopPromise<Void>] = [:]
    private var flushInFlight = false
    private var closePromise: EventLoopPromise<Void>?
    private(set) var isClosed = false
    /// Set when the recovered log could not be fsynced: the partition then refuses writes.
    private var recoveryFailure: String?

    /// A produce request waiting for its batch to become durable.
    final class AckWaiter {
        let promise: EventLoopPromise<AppendOutcome>
        let outcome: AppendOutcome
        var timeout: Scheduled<Void>?
        var done = false

        init(promise: EventLoopPromise<AppendOutcome>, outcome: AppendOutcome) {
            self.promise = promise
            self.outcome = outcome
        }

        func complete(_ outcome: AppendOutcome) {
            guard !done else { return }
            done = true
            timeout?.cancel()
            promise.succeed(outcome)
        }
    }

    /// Opens (and recovers) the log of `topic`-`partition` in `directory`, then rebuilds the
    /// producer state by reading every stored batch header. Must run on `loop`.
    init(
        topic: String, partition: Int32, directory: String, config: LogConfig, loop: any EventLoop,
        environment: BrokerEnvironment, logger: Logger
    ) throws(LogError) {
        loop.preconditionInEventLoop()
        self.topic = topic
        self.partition = partition
        self.loop = loop
        self.environment = environment
        var logger = logger
        logger[metadataKey: "partition"] = "\(topic)-\(partition)"
        self.logger = logger
        let (log, report) = try PartitionLog.open(
            directory: directory, config: config, io: environment.fileIO, now: environment.clock.now())
        self.log = log
        // Nothing is readable until a flush (on the blocking pool, like every other one)
        // has made the opened log durable, e.g. a new segment file and its directory entry.
        self.highWatermark = log.logStartOffset
        try rebuildProducerState()
        if report.wasClean {
            startFlushIfNeeded()
        } else {
            logger.notice("partition recovered: \(report)")
            syncRecoveredTail(after: report.recoveryPoint)
        }
        logger.debug(
            "partition open",
            metadata: [
                "logStart": "\(log.logStartOffset)", "logEnd": "\(log.logEndOffset)",
                "producers": "\(producers.producerCount)",
            ])
    }

    /// How far back producer state is rebuilt: Kafka forgets a producer that wrote nothing
    /// for `producer.id.expiration.ms` (1 day), so segments whose newest batch is older
    /// cannot hold state worth keeping and are not read.
    static let producerStateWindowMs: Int64 = 24 * 3600 * 1000

    /// Reads the batch headers of every segment written to within the window (copying,
    /// CRC-checked) and notes the idempotent ones.
    private func rebuildProducerState() throws(LogError) {
        let cutoff = environment.clock.now().value - Self.producerStateWindowMs
        let recent = log.segmentInfos.first { ($0.maxTimestamp ?? Int64.max) >= cutoff }
        var next = max(recent?.baseOffset ?? log.logEndOffset, log.logStartOffset)
        // Every round moves `next` forward, so the loop ends at the log end.
        while next < log.logEndOffset {
            let read = try log.readVerified(from: next, maxBytes: 8 * 1024 * 1024)
            guard read.nextOffset > next else { break }
            var index = read.bytes.readerIndex
            for _ in 0..<read.batchCount {
                guard let header = try? RecordBatchHeader.read(from: read.bytes, at: index) else { break }
                producers.recover(header)
                index += header.totalSize
            }
            next = read.nextOffset
        }
    }

    /// After a crash, the batches recovery kept above the recovery point may still sit only
    /// in the page cache (the process died, the machine did not). They are fsynced (on the
    /// blocking pool) before they count as durable: before consumers read them, and before a
    /// producer's retry of one of them is acknowledged as a duplicate.
    private func syncRecoveredTail(after recoveryPoint: Offset) {
        let paths = log.segmentInfos.filter { $0.nextOffset > recoveryPoint }.map(\.path)
        let directory = log.directory
        let io = environment.fileIO
        flushInFlight = true
        environment.blocking.run(on: loop) { () throws -> Void in
            for path in paths {
                let file = try io.open(path, mode: .existing)
                defer { io.close(file) }
                try io.sync(file)
            }
            try io.syncDirectory(directory)
        }.assumeIsolated().whenComplete { result in
            self.flushInFlight = false
            switch result {
            case .success:
                self.advanceHighWatermark(to: self.log.durableEndOffset)
            case .failure(let error):
                self.recoveryFailure = "\(error)"
                self.logger.error("fsync of the recovered log failed, refusing writes until restart: \(error)")
                self.failWaiters()
            }
            if let closePromise = self.closePromise {
                self.closePromise = nil
                self.finishClose(closePromise)
            } else {
                self.startFlushIfNeeded()
            }
        }
    }

    // MARK: Produce

    /// Appends one validated client batch and answers per `acks`: 0 and 1 after the write,
    /// -1 once the high watermark covers the batch, or REQUEST_TIMED_OUT after `timeoutMs`.
    func append(_ batch: ByteBuffer, header: RecordBatchHeader, acks: Int16, timeoutMs: Int32)
        -> EventLoopFuture<AppendOutcome>
    {
        loop.preconditionInEventLoop()
        guard !isClosed else { return loop.makeSucceededFuture(.failure(.unknownTopicOrPartition)) }
        guard log.failure == nil, recoveryFailure == nil else {
            return loop.makeSucceededFuture(.failure(.kafkaStorageError))
        }
        let idempotent = header.producerId >= 0 && header.baseSequence >= 0
        let lastSequence = ProducerStateTable.lastSequence(
            first: header.baseSequence, lastOffsetDelta: header.lastOffsetDelta)
        if idempotent {
            switch producers.check(
                producerId: header.producerId, epoch: header.producerEpoch, firstSequence: header.baseSequence,
                lastSequence: lastSequence)
            {
            case .append:
                break
            case .reject(let code):
                logger.debug("idempotent batch refused: \(code) pid=\(header.producerId) seq=\(header.baseSequence)")
                return loop.makeSucceededFuture(.failure(code))
            case .duplicate(let original):
                let outcome = AppendOutcome(
                    errorCode: .none, baseOffset: original.firstOffset.value,
                    logStartOffset: log.logStartOffset.value)
                return acknowledge(outcome, through: original.lastOffset, acks: acks, timeoutMs: timeoutMs)
            }
        }
        var bytes = batch
        let result: AppendResult
        do throws(LogError) {
            result = try log.append(&bytes, leaderEpoch: 0, now: environment.clock.now())
        } catch {
            return loop.makeSucceededFuture(.failure(errorCode(for: error)))
        }
        if idempotent {
            producers.record(
                producerId: header.producerId, epoch: header.producerEpoch,
                batch: .init(
                    firstSequence: header.baseSequence, lastSequence: lastSequence, firstOffset: result.firstOffset,
                    lastOffset: result.lastOffset))
        }
        afterAppend()
        let outcome = AppendOutcome(
            errorCode: .none, baseOffset: result.firstOffset.value, logStartOffset: log.logStartOffset.value)
        return acknowledge(outcome, through: result.lastOffset, acks: acks, timeoutMs: timeoutMs)
    }

    private func acknowledge(_ outcome: AppendOutcome, through lastOffset: Offset, acks: Int16, timeoutMs: Int32)
        -> EventLoopFuture<AppendOutcome>
    {
        if acks != -1 || lastOffset < highWatermark { return loop.makeSucceededFuture(outcome) }
        let waiter = AckWaiter(promise: loop.makePromise(), outcome: outcome)
        ackWaiters.register(waiter, throughOffset: lastOffset)
        waiter.timeout = loop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(max(0, timeoutMs)))) {
            waiter.complete(.failure(.requestTimedOut))
        }
        return waiter.promise.futureResult
    }

    private func errorCode(for error: LogError) -> ErrorCode {
        switch error {
        case .batchTooLarge: return .messageTooLarge
        case .invalidBatch(_, let reason):
            switch reason {
            case .crcMismatch, .truncated, .invalidLength, .unsupportedMagic: return .corruptMessage
            default: return .invalidRecord
            }
        case .failed, .io:
            logger.error("partition refuses writes: \(error)")
            return .kafkaStorageError
        default:
            logger.error("append failed: \(error)")
            return .unknownServerError
        }
    }

    /// After an append: under `none` the written bytes are readable at once; under `fsync`
    /// a flush is started unless one is running (it will start the next when it ends).
    private func afterAppend() {
        if log.config.flushPolicy == .none {
            advanceHighWatermark(to: log.logEndOffset)
        } else {
            startFlushIfNeeded()
        }
    }

    /// Group commit: one flush at a time; appends made while it runs are covered by the next one.
    private func startFlushIfNeeded() {
        guard !flushInFlight, log.failure == nil, recoveryFailure == nil, !isClosed else { return }
        let plan: FlushPlan?
        do throws(LogError) {
            plan = try log.beginFlush()
        } catch {
            failAll(error)
            return
        }
        guard let plan else {
            advanceHighWatermark(to: log.durableEndOffset)
            return
        }
        flushInFlight = true
        let io = environment.fileIO
        environment.blocking.run(on: loop) { () -> FileIOError? in
            do throws(FileIOError) {
                try plan.execute(io: io)
                return nil
            } catch {
                return error
            }
        }.assumeIsolated().whenComplete { result in
            self.flushInFlight = false
            let failure: FileIOError?
            switch result {
            case .success(let error): failure = error
            case .failure: failure = FileIOError(operation: .sync, path: self.log.directory, errno: 0)
            }
            do throws(LogError) {
                let durable = try self.log.completeFlush(plan, error: failure)
                // The next fsync (for appends made during this one) starts before the waiting
                // requests are answered: answering them first would delay it, and every
                // request waiting on it, by the time that takes.
                if self.closePromise == nil, self.log.needsFlush { self.startFlushIfNeeded() }
                self.advanceHighWatermark(to: durable)
            } catch {
                self.failAll(error)
            }
            if let closePromise = self.closePromise {
                self.closePromise = nil
                self.finishClose(closePromise)
            }
        }
    }

    private func advanceHighWatermark(to offset: Offset) {
        guard offset > highWatermark else { return }
        highWatermark = offset
        for waiter in ackWaiters.release(durableEndOffset: offset) {
            waiter.complete(waiter.outcome)
        }
        if !highWatermarkWaiters.isEmpty {
            let waiters = highWatermarkWaiters
            highWatermarkWaiters.removeAll()
            for promise in waiters.values { promise.succeed(()) }
        }
    }

    /// The log failed (write or fsync error): nothing more becomes durable; every waiting
    /// produce gets KAFKA_STORAGE_ERROR.
    private func failAll(_ error: LogError) {
        logger.error("partition log failed, refusing writes until restart: \(error)")
        failWaiters()
    }

    private func failWaiters() {
        for waiter in ackWaiters.cancel(fromOffset: .zero) {
            waiter.complete(.failure(.kafkaStorageError))
        }
    }

    // MARK: Fetch

    /// Whole batches from the one holding `offset`, up to the high watermark and (after the
    /// first batch, which is always whole) `maxBytes`.
    func read(from offset: Offset, maxBytes: Int) -> PartitionRead {
        loop.preconditionInEventLoop()
        guard !isClosed else { return .failure(.unknownTopicOrPartition) }
        var answer = PartitionRead(
            errorCode: .none, highWatermark: highWatermark, logStartOffset: log.logStartOffset, slices: [])
        guard offset >= log.logStartOffset, offset <= log.logEndOffset else {
            answer.errorCode = .offsetOutOfRange
            return answer
        }
        guard offset < highWatermark else { return answer }
        do throws(LogError) {
            answer.slices = try log.read(from: offset, maxBytes: max(1, maxBytes), upTo: highWatermark).slices
        } catch {
            logger.error("read at \(offset) failed: \(error)")
            answer.errorCode = .kafkaStorageError
        }
        return answer
    }

    /// Completes `promise` as soon as the high watermark moves past `seen` (at once if it has).
    func waitForHighWatermark(above seen: Offset, id: UInt64, promise: EventLoopPromise<Void>) {
        loop.preconditionInEventLoop()
        if highWatermark > seen || isClosed {
            promise.succeed(())
        } else {
            highWatermarkWaiters[id] = promise
        }
    }

    /// Forgets a waiter whose fetch ended (its promise is completed, so nothing leaks).
    func cancelWait(id: UInt64) {
        highWatermarkWaiters.removeValue(forKey: id)?.succeed(())
    }

    // MARK: ListOffsets

    /// ListOffsets: -1 = high watermark, -2 = log start, otherwise the first record whose
    /// timestamp is at or after `timestamp` (offset -1 when there is none below the high watermark).
    func listOffset(timestamp: Int64) -> (errorCode: ErrorCode, timestamp: Int64, offset: Int64) {
        loop.preconditionInEventLoop()
        guard !isClosed else { return (.unknownTopicOrPartition, -1, -1) }
        switch timestamp {
        case -1: return (.none, -1, highWatermark.value)
        case -2: return (.none, -1, log.logStartOffset.value)
        case ..<0: return (.invalidRequest, -1, -1)
        default: break
        }
        do throws(LogError) {
            guard let found = try log.offset(forTimestamp: timestamp), found < highWatermark else {
                return (.none, -1, -1)
            }
            // The time index finds the batch; the record comes from decoding that one batch.
            let read = try log.readVerified(from: found, maxBytes: 1, upTo: highWatermark)
            if let header = try? RecordBatchHeader.read(from: read.bytes, at: read.bytes.readerIndex),
                let records = try? RecordBatch.records(of: read.bytes, at: read.bytes.readerIndex)
            {
                for record in records where header.baseTimestamp + record.timestampDelta >= timestamp {
                    let offset = max(header.baseOffset + Int64(record.offsetDelta), found.value)
                    return (.none, header.baseTimestamp + record.timestampDelta, offset)
                }
            }
            return (.none, -1, found.value)
        } catch {
            logger.error("ListOffsets by time failed: \(error)")
            return (.kafkaStorageError, -1, -1)
        }
    }

    // MARK: Retention and close

    /// Deletes whole old segments per the topic's retention, never at or past the high watermark.
    func applyRetention() {
        loop.preconditionInEventLoop()
        guard !isClosed, !flushInFlight, log.failure == nil else { return }
        do throws(LogError) {
            let result = try log.applyRetention(now: environment.clock.now(), floor: highWatermark)
            if result.segmentsDeleted > 0 {
                logger.info(
                    """
                    retention deleted \(result.segmentsDeleted) segments (\(result.bytesDeleted) bytes), \
                    log start now \(result.logStartOffset)
                    """)
            }
        } catch {
            logger.error("retention failed: \(error)")
        }
    }

    /// Flushes on the blocking pool (after any running flush), then closes the log; waiting
    /// produce and fetch requests are answered. The future completes on `loop`.
    func close() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: Void.self)
        if let existing = closePromise {
            existing.futureResult.cascade(to: promise)
            return promise.futureResult
        }
        // The last fsync runs on the blocking pool like any other; the log closes after it.
        closePromise = promise
        startFlushIfNeeded()
        if !flushInFlight, let pending = closePromise {
            closePromise = nil
            finishClose(pending)
        }
        return promise.futureResult
    }

    private func finishClose(_ promise: EventLoopPromise<Void>) {
        guard !isClosed else {
            promise.succeed(())
            return
        }
        isClosed = true
        do throws(LogError) {
            try log.close()
            advanceHighWatermark(to: log.durableEndOffset)
        } catch {
            logger.error("closing the log failed: \(error)")
        }
        for waiter in ackWaiters.cancel(fromOffset: .zero) {
            waiter.complete(.failure(.notLeaderOrFollower))
        }
        let waiters = highWatermarkWaiters
        highWatermarkWaiters.removeAll()
        for waiting in waiters.values { waiting.succeed(()) }
        promise.succeed(())
    }
}
