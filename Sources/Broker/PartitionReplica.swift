import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import Raft
import Records
import Replication

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
    /// NONE, OFFSET_OUT_OF_RANGE, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION or KAFKA_STORAGE_ERROR.
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

/// A produce request waiting for its batch to commit (acks=all): the token of the replica's commit waiters.
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

/// This node's replica of one partition: its Raft replica (`ReplicaEngine`: the log, the group's consensus, the
/// high watermark), its idempotent producer state, the produce requests waiting for a commit and the fetches
/// waiting for data.
///
/// Confinement: lives on one event loop (the host's slot for its group) and every call runs to completion
/// there. Only the leader serves produce, fetch and list-offsets; a follower answers NOT_LEADER_OR_FOLLOWER, so
/// the client refreshes its metadata and goes to the leader.
///
/// Producer state is kept on every replica, leader or follower, from the batches written to the log
/// (`onAppended`), and rebuilt from the log when its tail is cut: a new leader knows every producer's last
/// sequences, so a retry after a failover is recognised as a duplicate and answered with its original offsets.
final class PartitionReplica: HostedReplica {
    let group: GroupID
    let loop: any EventLoop
    let engine: ReplicaEngine<AckWaiter>
    let clock: any BrokerClock
    let logger: Logger
    private var producers = ProducerStateTable()
    /// The group coordinator of a `__consumer_offsets` partition (nil for every other partition).
    let groups: GroupHost?
    private var highWatermarkWaiters: [UInt64: EventLoopPromise<Void>] = [:]
    private(set) var isClosed = false

    /// How far back producer state is rebuilt: Kafka forgets a producer that wrote nothing for
    /// `producer.id.expiration.ms` (1 day), so segments whose newest batch is older cannot hold state worth
    /// keeping and are not read.
    static let producerStateWindowMs: Int64 = 24 * 3600 * 1000

    /// Opens (and recovers) the replica in `directory` and rebuilds its producer state. Runs on the context's loop.
    init(
        group: GroupID, directory: String, logConfig: LogConfig, io: any FileIO, context: ReplicaContext,
        clock: any BrokerClock, logger: Logger, groups: GroupHost? = nil
    ) throws(ReplicaError) {
        context.loop.preconditionInEventLoop()
        self.group = group
        self.groups = groups
        self.loop = context.loop
        self.clock = clock
        var logger = logger
        logger[metadataKey: "partition"] = "\(group)"
        self.logger = logger
        engine = try ReplicaEngine(
            group: group, configuration: context.configuration, directory: directory, logConfig: logConfig, io: io,
            transport: context.transport, flush: context.flush, seed: context.seed, now: context.now)
        if !engine.recovery.wasClean { logger.notice("partition recovered: \(engine.recovery)") }
        do throws(LogError) {
            try rebuildProducerState()
        } catch {
            try? engine.close()
            throw .failed("reading producer state of \(group): \(error)")
        }
        engine.onAppended = { [unowned self] bytes in self.noteAppended(bytes) }
        engine.onLogCut = { [unowned self] from in self.logCut(from: from) }
        engine.onHighWatermark = { [unowned self] _ in
            self.wakeFetches()
            self.groups?.afterEngine(self)
        }
        engine.onCommitOutcomes = { [unowned self] outcomes in self.committed(outcomes) }
        logger.debug(
            "partition open",
            metadata: [
                "logStart": "\(engine.log.logStartOffset)", "logEnd": "\(engine.log.logEndOffset)",
                "producers": "\(producers.producerCount)",
            ])
    }

    // MARK: HostedReplica

    var leader: NodeID? { engine.leader }
    var term: Term { engine.term }
    var isLeader: Bool { engine.isLeader }

    func tick(now: Milliseconds) {
        engine.tick(now: now)
        afterEngine()
        groups?.tick(self)
    }

    func receive(_ message: Message<BatchPayload>, now: Milliseconds) {
        engine.receive(message, now: now)
        afterEngine()
    }

    func completeFlush(_ request: FlushRequest, error: FileIOError?) {
        engine.completeFlush(request, error: error)
        afterEngine()
    }

    func campaign() {
        engine.campaign()
        afterEngine()
    }

    func peerUnreachable(_ peer: NodeID) {
        engine.peerUnreachable(peer)
        afterEngine()
    }

    func transferLeadership(to target: NodeID) throws(TransferError) {
        try engine.transferLeadership(to: target)
        afterEngine()
    }

    /// What follows every event: a lost leadership wakes waiting fetches, and the group coordinator follows
    /// the replica's leadership.
    private func afterEngine() {
        if !engine.isLeader { wakeFetches() }
        groups?.afterEngine(self)
    }

    var followerProgress: (logEnd: Offset, followers: [NodeID: Offset])? {
        guard let ends = engine.followerEndOffsets, let active = engine.activeFollowers else { return nil }
        // Only followers heard from lately count as holding what they last acknowledged.
        return (engine.log.logEndOffset, ends.filter { active.contains($0.key) })
    }

    func status(voters: [NodeID]) -> ReplicaStatus {
        ReplicaStatus(
            group: group, isLeader: engine.isLeader, leader: engine.leader, term: engine.term, voters: voters,
            highWatermark: engine.highWatermark, logStartOffset: engine.log.logStartOffset,
            logEndOffset: engine.log.logEndOffset, followerEndOffsets: engine.followerEndOffsets,
            failure: engine.failure)
    }

    /// Closes the log; waiting produces get NOT_LEADER_OR_FOLLOWER (their client retries on the new leader) and
    /// waiting fetches wake (and then find the partition gone).
    func close() {
        guard !isClosed else { return }
        isClosed = true
        do throws(LogError) {
            try engine.close()
        } catch {
            logger.error("closing the log failed: \(error)")
        }
        let waiters = highWatermarkWaiters
        highWatermarkWaiters.removeAll()
        for id in waiters.keys.sorted() { waiters[id]?.succeed(()) }
        groups?.close()
    }

    // MARK: Producer state

    /// Reads the batch headers of every segment written to within the window (copying, CRC-checked) and notes
    /// the idempotent ones.
    private func rebuildProducerState() throws(LogError) {
        producers = ProducerStateTable()
        let log = engine.log
        let cutoff = clock.now().value - Self.producerStateWindowMs
        let recent = log.segmentInfos.first { ($0.maxTimestamp ?? Int64.max) >= cutoff }
        var next = max(recent?.baseOffset ?? log.logEndOffset, log.logStartOffset)
        // Every round moves `next` forward, so the loop ends at the log end.
        while next < log.logEndOffset {
            let read = try log.readVerified(from: next, maxBytes: 8 * 1024 * 1024)
            guard read.nextOffset > next else { break }
            noteAppended(read.bytes)
            next = read.nextOffset
        }
    }

    /// Notes the idempotent batches among `bytes` (whole batches, final offsets).
    private func noteAppended(_ bytes: ByteBuffer) {
        var index = bytes.readerIndex
        while index < bytes.writerIndex {
            guard let header = try? RecordBatchHeader.read(from: bytes, at: index), header.totalSize > 0 else { break }
            producers.recover(header)
            index += header.totalSize
        }
    }

    private func logCut(from offset: Offset) {
        do throws(LogError) {
            try rebuildProducerState()
        } catch {
            logger.error("rebuilding producer state after the log was cut at \(offset) failed: \(error)")
        }
    }

    // MARK: Produce

    /// Appends one validated client batch on the leader and answers per `acks`: 0 and 1 once it is in the
    /// leader's log, -1 once Raft has committed it (the high watermark covers it), or REQUEST_TIMED_OUT after
    /// `timeoutMs`.
    func append(_ batch: ByteBuffer, header: RecordBatchHeader, acks: Int16, timeoutMs: Int32)
        -> EventLoopFuture<AppendOutcome>
    {
        loop.preconditionInEventLoop()
        guard !isClosed else { return loop.makeSucceededFuture(.failure(.notLeaderOrFollower)) }
        guard engine.failure == nil else { return loop.makeSucceededFuture(.failure(.kafkaStorageError)) }
        guard engine.isLeader else { return loop.makeSucceededFuture(.failure(.notLeaderOrFollower)) }
        let idempotent = header.producerId >= 0 && header.baseSequence >= 0
        if idempotent {
            let lastSequence = ProducerStateTable.lastSequence(
                first: header.baseSequence, lastOffsetDelta: header.lastOffsetDelta)
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
                    logStartOffset: engine.log.logStartOffset.value)
                guard acks == -1 else { return loop.makeSucceededFuture(outcome) }
                // The original may not be committed yet (a retry after a failover, of a batch the previous
                // leader appended): answer when it is, as for the original.
                guard let term = engine.reader.term(at: original.lastOffset.index) else {
                    return loop.makeSucceededFuture(.failure(.notLeaderOrFollower))
                }
                let proposal = Proposal(offsets: original.firstOffset...original.lastOffset, term: term)
                return awaitCommit(proposal, outcome: outcome, timeoutMs: timeoutMs)
            }
        }
        let proposal: Proposal
        do throws(ReplicaError) {
            proposal = try engine.propose(batch, now: clock.now())
        } catch {
            return loop.makeSucceededFuture(.failure(errorCode(for: error)))
        }
        let outcome = AppendOutcome(
            errorCode: .none, baseOffset: proposal.offsets.lowerBound.value,
            logStartOffset: engine.log.logStartOffset.value)
        guard acks == -1 else { return loop.makeSucceededFuture(outcome) }
        return awaitCommit(proposal, outcome: outcome, timeoutMs: timeoutMs)
    }

    /// Appends a batch the broker built itself (group records) on the leader and waits for its commit.
    func appendInternal(_ batch: ByteBuffer, timeoutMs: Int32 = 15_000) -> EventLoopFuture<AppendOutcome> {
        guard !isClosed, engine.isLeader else { return loop.makeSucceededFuture(.failure(.notLeaderOrFollower)) }
        let proposal: Proposal
        do throws(ReplicaError) {
            proposal = try engine.propose(batch, now: clock.now())
        } catch {
            return loop.makeSucceededFuture(.failure(errorCode(for: error)))
        }
        let outcome = AppendOutcome(
            errorCode: .none, baseOffset: proposal.offsets.lowerBound.value,
            logStartOffset: engine.log.logStartOffset.value)
        return awaitCommit(proposal, outcome: outcome, timeoutMs: timeoutMs)
    }

    private func awaitCommit(_ proposal: Proposal, outcome: AppendOutcome, timeoutMs: Int32)
        -> EventLoopFuture<AppendOutcome>
    {
        let waiter = AckWaiter(promise: loop.makePromise(), outcome: outcome)
        waiter.timeout = loop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(max(0, timeoutMs)))) {
            waiter.complete(.failure(.requestTimedOut))
        }
        engine.awaitCommit(proposal, token: waiter)
        return waiter.promise.futureResult
    }

    private func committed(_ outcomes: [CommitOutcome<AckWaiter>]) {
        for outcome in outcomes {
            switch outcome.result {
            case .success: outcome.token.complete(outcome.token.outcome)
            case .failure(let error): outcome.token.complete(.failure(errorCode(for: error)))
            }
        }
    }

    private func errorCode(for error: ReplicaError) -> ErrorCode {
        switch error {
        case .notLeader, .transferInProgress:
            return .notLeaderOrFollower
        case .invalidBatches(let reason):
            switch reason {
            case .batchTooLarge: return .messageTooLarge
            case .invalidBatch(_, let batchError):
                switch batchError {
                case .crcMismatch, .truncated, .invalidLength, .unsupportedMagic: return .corruptMessage
                default: return .invalidRecord
                }
            default:
                logger.error("append refused: \(reason)")
                return .invalidRecord
            }
        case .failed(let why):
            logger.error("partition refuses writes: \(why)")
            return .kafkaStorageError
        }
    }

    // MARK: Fetch

    /// Whole batches from the one holding `offset`, up to the high watermark and (after the first batch, which is
    /// always whole) `maxBytes`. Only the leader serves consumers.
    func read(from offset: Offset, maxBytes: Int) -> PartitionRead {
        loop.preconditionInEventLoop()
        guard !isClosed else { return .failure(.notLeaderOrFollower) }
        guard engine.isLeader else { return .failure(.notLeaderOrFollower) }
        let log = engine.log
        var answer = PartitionRead(
            errorCode: .none, highWatermark: engine.highWatermark, logStartOffset: log.logStartOffset, slices: [])
        guard offset >= log.logStartOffset, offset <= log.logEndOffset else {
            answer.errorCode = .offsetOutOfRange
            return answer
        }
        guard offset < engine.highWatermark else { return answer }
        do throws(LogError) {
            answer.slices = try engine.read(from: offset, maxBytes: max(1, maxBytes)).slices
        } catch {
            logger.error("read at \(offset) failed: \(error)")
            answer.errorCode = .kafkaStorageError
        }
        return answer
    }

    /// Completes `promise` as soon as the high watermark moves past `seen` (at once if it has, or if this
    /// replica no longer leads: the fetch then reads again and answers NOT_LEADER_OR_FOLLOWER).
    func waitForHighWatermark(above seen: Offset, id: UInt64, promise: EventLoopPromise<Void>) {
        loop.preconditionInEventLoop()
        if engine.highWatermark > seen || isClosed || !engine.isLeader {
            promise.succeed(())
        } else {
            highWatermarkWaiters[id] = promise
        }
    }

    /// Forgets a waiter whose fetch ended (its promise is completed, so nothing leaks).
    func cancelWait(id: UInt64) {
        highWatermarkWaiters.removeValue(forKey: id)?.succeed(())
    }

    private func wakeFetches() {
        guard !highWatermarkWaiters.isEmpty else { return }
        let waiters = highWatermarkWaiters
        highWatermarkWaiters.removeAll()
        for id in waiters.keys.sorted() { waiters[id]?.succeed(()) }
    }


    // MARK: ListOffsets

    /// ListOffsets on the leader: -1 = high watermark, -2 = log start, otherwise the first record whose timestamp
    /// is at or after `timestamp` (offset -1 when there is none below the high watermark).
    ///
    /// A new leader answers OFFSET_NOT_AVAILABLE (retriable) for the high watermark and for timestamps until its
    /// high watermark is established (`ReplicaEngine.highWatermarkIsEstablished`), so that the offsets clients are
    /// told never move back across a change of leader (KIP-207; found by the broker simulation, seed 2).
    func listOffset(timestamp: Int64) -> (errorCode: ErrorCode, timestamp: Int64, offset: Int64) {
        loop.preconditionInEventLoop()
        guard !isClosed, engine.isLeader else { return (.notLeaderOrFollower, -1, -1) }
        let log = engine.log
        let highWatermark = engine.highWatermark
        switch timestamp {
        case -2: return (.none, -1, log.logStartOffset.value)
        case ..<(-1): return (.invalidRequest, -1, -1)
        default: break
        }
        guard engine.highWatermarkIsEstablished else { return (.offsetNotAvailable, -1, -1) }
        if timestamp == -1 { return (.none, -1, highWatermark.value) }
        do throws(LogError) {
            guard let found = try log.offset(forTimestamp: timestamp), found < highWatermark else {
                return (.none, -1, -1)
            }
            // The time index finds the batch; the record comes from decoding that one batch.
            let read = try engine.readVerified(from: found, maxBytes: 1)
            var index = read.bytes.readerIndex
            while index < read.bytes.writerIndex,
                let header = try? RecordBatchHeader.read(from: read.bytes, at: index), header.totalSize > 0
            {
                defer { index += header.totalSize }
                // Control batches (a new leader's LEADER_CHANGE) hold no record a consumer sees.
                guard !header.attributes.isControl,
                    let records = try? RecordBatch.records(of: read.bytes, at: index)
                else { continue }
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

    // MARK: Retention

    /// Deletes whole old segments per the topic's retention, never at or past the high watermark.
    func applyRetention() {
        loop.preconditionInEventLoop()
        guard !isClosed else { return }
        do throws(LogError) {
            guard let result = try engine.applyRetention(now: clock.now()) else { return }
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
}
