import LogStorage
import NIOCore
import Raft
import Records

/// Where a replica's Raft messages go: the server's peer connections, or a test's in-memory network. Called on
/// the engine's thread; it must not call back into the engine synchronously.
public protocol RaftTransport: AnyObject {
    /// Sends one message (any message may be lost).
    func send(_ message: ReplicationMessage)
}

/// One group-commit flush the shell must run: `plan.execute(io:)` on a blocking pool, then
/// `ReplicaEngine.completeFlush(_:error:)` back on the engine's thread.
public struct FlushRequest: Sendable {
    /// The fsyncs to run.
    public let plan: FlushPlan
    /// The last entry the flush covers, reported to Raft when it completes.
    let lastIndex: LogIndex
    let lastTerm: Term
}

/// Why a produce was refused or its commit could not be promised.
public enum ReplicaError: Error, Equatable, Sendable {
    /// This replica does not lead (Kafka NOT_LEADER_OR_FOLLOWER); `leader` is the one it knows of.
    case notLeader(leader: NodeID?)
    /// Leadership is being handed away; retry shortly (NOT_LEADER_OR_FOLLOWER as well).
    case transferInProgress
    /// The batches are malformed or too large (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_RECORD).
    case invalidBatches(LogError)
    /// The replica stopped after a disk failure; it must be reopened (KAFKA_STORAGE_ERROR).
    case failed(String)
}

/// A produce accepted by the leader: the offsets Raft assigned and the term it was appended in. Appended (acks=1)
/// when `propose` returns; committed (acks=all) once `commitIndex >= offsets.upperBound` while that offset still
/// has `term`.
public struct Proposal: Equatable, Sendable {
    /// The offsets of the produced records.
    public var offsets: ClosedRange<Offset>
    /// The leader's term when it accepted them.
    public var term: Term

    /// Names records at `offsets` appended in `term`.
    public init(offsets: ClosedRange<Offset>, term: Term) {
        self.offsets = offsets
        self.term = term
    }
}

/// The outcome of waiting for a proposal's commit.
public struct CommitOutcome<Token> {
    /// The token registered with `awaitCommit`.
    public var token: Token
    /// The proposal, or why its commit can no longer be promised.
    public var result: Result<Proposal, ReplicaError>
}

/// Tokens waiting for proposals to commit, in offset order.
public struct CommitWaiters<Token> {
    var waiting: [(proposal: Proposal, token: Token)] = []

    /// None waiting.
    public init() {}

    /// How many tokens wait.
    public var count: Int { waiting.count }

    mutating func register(_ token: Token, for proposal: Proposal) {
        let index = waiting.firstIndex { $0.proposal.offsets.upperBound > proposal.offsets.upperBound }
        waiting.insert((proposal, token), at: index ?? waiting.count)
    }

    /// Takes the tokens whose last offset is at or below `commit`; each succeeds when its offset still has the
    /// proposer's term.
    mutating func release(commit: Offset, termAt: (Offset) -> Term?) -> [CommitOutcome<Token>] {
        var k = 0
        var outcomes: [CommitOutcome<Token>] = []
        while k < waiting.count, waiting[k].proposal.offsets.upperBound <= commit {
            let (proposal, token) = waiting[k]
            let held = termAt(proposal.offsets.upperBound).map { $0 == proposal.term } ?? true
            outcomes.append(
                CommitOutcome(token: token, result: held ? .success(proposal) : .failure(.notLeader(leader: nil))))
            k += 1
        }
        waiting.removeFirst(k)
        return outcomes
    }

    /// Takes every token whose proposal ends after `offset`, failed with `error`.
    mutating func fail(after offset: Offset, _ error: ReplicaError) -> [CommitOutcome<Token>] {
        let failed = waiting.filter { $0.proposal.offsets.upperBound > offset }
        waiting.removeAll { $0.proposal.offsets.upperBound > offset }
        return failed.map { CommitOutcome(token: $0.token, result: .failure(error)) }
    }
}

/// One partition replica: its Raft node, its log and the effects between them.
///
/// Confinement: an engine is not thread-safe and not `Sendable`. It lives on one event loop (the partition's)
/// and every call runs to completion there: `tick`, `receive`, `propose`, `awaitCommit`, `completeFlush`,
/// `read`. The only work that leaves the loop is a `FlushRequest`'s fsyncs, which the `flush` closure hands to
/// a blocking pool; the pool reports back with `completeFlush` on the loop.
///
/// Each call feeds the core, then carries out its `Ready` in the order Raft requires: make the hard state
/// durable (`HardStateStore`, synchronous: it changes only on elections), apply the log write (truncate or
/// reset, then append; visible to the core at once), start a flush if none is running (group commit: one flush
/// covers every append since the last one, and Raft hears `persisted` only when it completes), send the
/// messages, move the high watermark and release commit waiters. A log cut cannot run while a flush is in
/// flight (LogStorage refuses), so such a `Ready` is held, and later inputs queued, until the flush completes.
public final class ReplicaEngine<Token> {
    /// The partition.
    public let group: GroupID
    /// The partition's log (read it only on the engine's thread).
    public var log: PartitionLog { reader.log }
    /// The core's view of the log.
    public let reader: PartitionLogReader
    let hardStateStore: HardStateStore
    let io: any FileIO
    let transport: any RaftTransport
    let flush: (FlushRequest) -> Void
    private(set) var raft: RaftNode<BatchPayload>

    /// One past the last committed offset: consumers read below it.
    public private(set) var highWatermark: Offset
    /// Why the engine stopped, if it did (a disk failure); it then ignores every input.
    public private(set) var failure: String?
    /// Called with waiters whose outcome is known (on the engine's thread).
    public var onCommitOutcomes: ([CommitOutcome<Token>]) -> Void = { _ in }
    /// Called when the high watermark moves (fetch requests waiting for data).
    public var onHighWatermark: (Offset) -> Void = { _ in }
    /// Called with the bytes of every entry written to the log (a proposal on the leader, a replicated entry on
    /// a follower, a LEADER_CHANGE batch), after the write: whole record batches with their final offsets. The
    /// broker keeps its idempotent-producer state with it on every replica.
    public var onAppended: (ByteBuffer) -> Void = { _ in }
    /// Called after the log lost its tail from the given offset (a follower's conflicting entries truncated, or
    /// the whole log reset to start there): state derived from the log must be rebuilt.
    public var onLogCut: (Offset) -> Void = { _ in }

    var waiters = CommitWaiters<Token>()
    /// How many log writes had to wait for a running flush (for tests and metrics).
    public private(set) var heldWriteCount = 0
    var flushInFlight: FlushRequest?
    /// A `Ready`'s log write, messages and commit, held until the running flush completes.
    var held: Ready<BatchPayload>?
    var queued: [QueuedInput] = []
    var now: Milliseconds
    var wasLeader = false
    /// LEADER_CHANGE batches built this round, substituted for the core's `.leaderChange` entries in messages.
    var builtLeaderChanges: [LogIndex: (term: Term, bytes: ByteBuffer)] = [:]

    enum QueuedInput {
        case tick(Milliseconds)
        case message(Message<BatchPayload>, Milliseconds)
    }

    /// What opening the log found.
    public let recovery: RecoveryReport
    /// What opening the epoch cache found.
    public let epochCacheReport: EpochCacheReport

    /// Opens (or creates) the replica in `directory`: recovers the log, the epoch cache and the hard state, and
    /// restarts the Raft node from them (a follower, commit index at the log start).
    ///
    /// - Parameters:
    ///   - flush: runs a `FlushRequest` off the engine's thread and reports with `completeFlush`.
    ///   - seed: the seed of the core's election timeouts (from the server's seeded generator).
    public init(
        group: GroupID, configuration: RaftConfiguration, directory: String, logConfig: LogConfig, io: any FileIO,
        transport: any RaftTransport, flush: @escaping (FlushRequest) -> Void, seed: UInt64, now: Milliseconds
    ) throws(ReplicaError) {
        let opened: (log: PartitionLog, report: RecoveryReport)
        do throws(LogError) {
            opened = try PartitionLog.open(directory: directory, config: logConfig, io: io, now: now)
        } catch {
            throw .failed("open \(directory): \(error)")
        }
        if !opened.report.wasClean {
            // After a crash the batches recovery kept above the recovery point may sit only in the page cache
            // (the process died, the machine did not). Raft counts the whole recovered log as durable (a vote
            // and every acknowledgement rest on it), so it is fsynced before the replica starts.
            do throws(FileIOError) {
                for segment in opened.log.segmentInfos where segment.nextOffset > opened.report.recoveryPoint {
                    let file = try io.open(segment.path, mode: .existing)
                    defer { io.close(file) }
                    try io.sync(file)
                }
                try io.syncDirectory(directory)
            } catch {
                try? opened.log.close()
                throw .failed("fsync of the recovered log in \(directory): \(error)")
            }
        }
        do throws(LogError) {
            (reader, epochCacheReport) = try PartitionLogReader.open(log: opened.log, io: io)
        } catch {
            try? opened.log.close()
            throw .failed("leader-epoch cache of \(directory): \(error)")
        }
        hardStateStore = HardStateStore(io: io, directory: directory)
        let hardState: HardState
        do throws(HardStateError) {
            hardState = try hardStateStore.load()
        } catch {
            try? opened.log.close()
            throw .failed("hard state of \(directory): \(error)")
        }
        self.group = group
        self.transport = transport
        self.flush = flush
        self.now = now
        recovery = opened.report
        let committed = CommitCheckpoint.load(io: io, directory: directory)
        raft = RaftNode(
            configuration: configuration, hardState: hardState, log: reader, seed: seed, knownCommitted: committed)
        self.io = io
        highWatermark = raft.commitIndex.offset.advanced(by: 1)
    }

    // MARK: - State

    /// This replica's node id.
    public var id: NodeID { raft.id }
    /// The current term.
    public var term: Term { raft.term }
    /// True while this replica leads its group.
    public var isLeader: Bool { raft.isLeader }
    /// The leader this replica knows of.
    public var leader: NodeID? { raft.leader }
    /// The commit index (`highWatermark - 1`).
    public var commitIndex: LogIndex { raft.commitIndex }
    /// The Raft role, for status pages and tests.
    public var role: Role { raft.role }
    /// True while appends wait for an fsync (a flush in flight or due) or a write waits for one.
    public var waitingForFlush: Bool { flushInFlight != nil || held != nil || log.needsFlush }
    /// Tokens waiting for a commit.
    public var waitingCount: Int { waiters.count }
    /// True on a leader whose high watermark covers everything earlier leaders committed: it covers the first
    /// offset of the leader's own term (its LEADER_CHANGE batch, or its first proposal), or, before the leader has
    /// appended anything, the whole log. A new leader learns the commit index only from its own term's first
    /// commit, so until then its high watermark may lag behind what the previous leader already answered (Kafka
    /// answers ListOffsets OFFSET_NOT_AVAILABLE then: KIP-207).
    public var highWatermarkIsEstablished: Bool {
        guard raft.isLeader else { return false }
        guard let own = reader.cache.epochs.last, own.term == raft.term else {
            return raft.commitIndex == raft.lastIndex(reader)
        }
        return highWatermark >= own.startOffset
    }

    /// On the leader, the offset one past what each other voter is known to hold (its match index + 1); nil on a
    /// follower. Follower lag is the leader's log end minus this.
    public var followerEndOffsets: [NodeID: Offset]? {
        guard case .leader(let state) = raft.role else { return nil }
        return state.progress.filter { $0.key != raft.id }.mapValues { $0.match.offset.advanced(by: 1) }
    }

    /// On the leader, the followers that answered since the last check-quorum round (about an election timeout);
    /// nil on a follower.
    public var activeFollowers: Set<NodeID>? {
        guard case .leader(let state) = raft.role else { return nil }
        return Set(state.progress.filter { $0.key != raft.id && $0.value.recentActive }.keys)
    }

    /// Peer messages the Raft core dropped as invalid (`InvalidMessage`); the shell may log its growth.
    public var invalidMessageCount: Int { raft.invalidMessageCount }

    // MARK: - Calls in

    /// Advances the logical clock by one tick (the shell's timer, e.g. every 100 ms).
    public func tick(now: Milliseconds) {
        guard accept(.tick(now)) else { return }
        self.now = max(self.now, now)
        raft.tick(log: reader)
        drive()
    }

    /// Handles one message from a peer of this group. Messages for another node are dropped.
    public func receive(_ message: Message<BatchPayload>, now: Milliseconds) {
        guard message.to == raft.id, accept(.message(message, now)) else { return }
        self.now = max(self.now, now)
        raft.step(message, log: reader)
        drive()
    }

    /// The link to `peer` closed: a follower of it prepares to elect a new leader soon (`RaftNode.peerUnreachable`).
    public func peerUnreachable(_ peer: NodeID) {
        guard failure == nil, held == nil else { return }
        raft.peerUnreachable(peer)
        noticeRole()
    }

    /// Starts an election now (tests, and an operator's preferred-leader election).
    public func campaign() {
        guard failure == nil, held == nil else { return }
        raft.campaign(log: reader)
        drive()
    }

    /// Hands leadership to `target` (before a shutdown).
    public func transferLeadership(to target: NodeID) throws(TransferError) {
        guard failure == nil, held == nil else { throw .notLeader }
        try raft.transferLeadership(to: target, log: reader)
        drive()
    }

    /// Appends a producer's batches on the leader: checks them as Kafka does (header, CRC, size, record
    /// count), stamps the offsets Raft assigns and the term, appends them, and sends them to the followers.
    /// When it returns the batches are in the leader's log (acks=1); `awaitCommit` waits for acks=all.
    ///
    /// The bytes are stamped in place before the core sees them, so the same buffer is written to the segment
    /// and sent to every follower (the log's `appendReplicated` checks that it lands exactly at the offsets Raft
    /// assigned).
    public func propose(_ batches: ByteBuffer, now: Milliseconds) throws(ReplicaError) -> Proposal {
        if let failure { throw .failed(failure) }
        guard held == nil, raft.isLeader else { throw .notLeader(leader: raft.leader) }
        self.now = max(self.now, now)
        var batches = batches
        let first = raft.lastIndex(reader) + 1
        let last = try stamp(&batches, first: first.offset, term: raft.term)
        let payload = BatchPayload(trusted: batches, recordCount: Int(last.value - first.value + 1))
        let range: ClosedRange<LogIndex>
        do throws(ProposalError) {
            range = try raft.propose(payload, log: reader)
        } catch {
            switch error {
            case .notLeader(let leader): throw .notLeader(leader: leader)
            case .transferInProgress: throw .transferInProgress
            }
        }
        precondition(range == first...last.index, "Raft assigned \(range), the batches cover \(first)...\(last)")
        let proposal = Proposal(offsets: first.offset...last, term: raft.term)
        drive()
        if let failure { throw .failed(failure) }
        return proposal
    }

    /// Registers `token` to learn when `proposal` commits (acks=all); the outcome arrives through
    /// `onCommitOutcomes`, at once if it is already known.
    public func awaitCommit(_ proposal: Proposal, token: Token) {
        if let failure {
            onCommitOutcomes([CommitOutcome(token: token, result: .failure(.failed(failure)))])
            return
        }
        let last = proposal.offsets.upperBound.index
        let held = reader.term(at: last) == proposal.term
        if last <= raft.commitIndex {
            let result: Result<Proposal, ReplicaError> = held ? .success(proposal) : .failure(.notLeader(leader: nil))
            onCommitOutcomes([CommitOutcome(token: token, result: result)])
            return
        }
        // An entry of an earlier term still in the leader's log (a producer's retry of a batch the previous leader
        // appended) commits with the leader's own entries: wait for it like any other while it keeps its term.
        guard raft.isLeader, held, last <= raft.lastIndex(reader) else {
            onCommitOutcomes([CommitOutcome(token: token, result: .failure(.notLeader(leader: raft.leader)))])
            return
        }
        waiters.register(token, for: proposal)
        releaseWaiters()
    }

    /// Finishes a flush the shell ran: tells the log, applies a held `Ready`, reports the durable entries to
    /// Raft, replays queued inputs, and starts the next flush if appends arrived meanwhile.
    public func completeFlush(_ request: FlushRequest, error: FileIOError?) {
        guard failure == nil else { return }
        flushInFlight = nil
        do throws(LogError) {
            try log.completeFlush(request.plan, error: error)
        } catch {
            stop("flush: \(error)")
            return
        }
        if let ready = held {
            held = nil
            apply(ready, hardStateDone: true)
        }
        raft.persisted(upTo: request.lastIndex, term: request.lastTerm, log: reader)
        drive()
        while held == nil, !queued.isEmpty, failure == nil {
            switch queued.removeFirst() {
            case .tick(let now): tick(now: now)
            case .message(let message, let now): receive(message, now: now)
            }
        }
        startFlushIfNeeded()
    }

    /// Batches from `offset` for a consumer, never at or past the high watermark.
    public func read(from offset: Offset, maxBytes: Int) throws(LogError) -> LogReadResult {
        try log.read(from: offset, maxBytes: maxBytes, upTo: highWatermark)
    }

    /// Like `read`, with the bytes copied and CRC-checked.
    public func readVerified(from offset: Offset, maxBytes: Int) throws(LogError) -> VerifiedRead {
        try log.readVerified(from: offset, maxBytes: maxBytes, upTo: highWatermark)
    }

    /// Applies the log's retention below the high watermark (never while a flush or a held write is pending).
    @discardableResult
    public func applyRetention(now: Milliseconds) throws(LogError) -> RetentionResult? {
        guard failure == nil, held == nil, flushInFlight == nil else { return nil }
        let result = try log.applyRetention(now: now, floor: highWatermark)
        if result.segmentsDeleted > 0 { try reader.noteLogStartMoved() }
        return result
    }

    /// Closes the log (after the shell has completed any flush in flight): the last appends are fsynced, and the
    /// commit index is kept for the next start (`CommitCheckpoint`).
    public func close() throws(LogError) {
        // Whoever waits for a commit hears now that this replica will not tell them (their client retries).
        emit(waiters.fail(after: Offset(-2), .notLeader(leader: nil)))
        try log.close()
        guard failure == nil else { return }
        let committed = min(raft.commitIndex, reader.lastIndex)
        do throws(FileIOError) {
            try CommitCheckpoint.save(committed, io: io, directory: log.directory)
        } catch {
            // Only an optimisation: the next start finds no commit index and proceeds as after a crash.
        }
    }

    // MARK: - Carrying out Ready

    /// Queues an input while a `Ready` is held; false when the input must not run now.
    private func accept(_ input: QueuedInput) -> Bool {
        guard failure == nil else { return false }
        if held != nil {
            queued.append(input)
            return false
        }
        return true
    }

    /// Takes and applies `Ready`s until the core has nothing more to say.
    func drive() {
        while failure == nil, held == nil {
            let ready = raft.ready()
            if ready.isEmpty { break }
            apply(ready, hardStateDone: false)
        }
        if let failure = reader.failure, self.failure == nil { stop("read: \(failure)") }
        noticeRole()
        startFlushIfNeeded()
    }

    func apply(_ ready: Ready<BatchPayload>, hardStateDone: Bool) {
        if !hardStateDone, let hardState = ready.hardState {
            do throws(HardStateError) {
                try hardStateStore.save(hardState)
            } catch {
                stop("hard state: \(error)")
                return
            }
        }
        if let write = ready.logWrite {
            if write.cut != .none, flushInFlight != nil {
                held = ready
                heldWriteCount += 1
                return
            }
            do throws(LogError) {
                try applyWrite(write)
            } catch {
                stop("log write: \(error)")
                return
            }
        }
        for message in ready.messages { transport.send(ReplicationMessage(group: group, message: substitute(message))) }
        builtLeaderChanges = [:]
        if let commit = ready.commitIndex {
            highWatermark = commit.offset.advanced(by: 1)
            releaseWaiters()
            onHighWatermark(highWatermark)
        }
    }

    func applyWrite(_ write: LogWrite<BatchPayload>) throws(LogError) {
        switch write.cut {
        case .none:
            break
        case .truncateAfter(let index):
            let from = (index + 1).offset
            if from < log.logEndOffset {
                try log.truncate(from: from)
                try reader.noteTruncated(from: from)
                emit(waiters.fail(after: index.offset, .notLeader(leader: raft.leader)))
                onLogCut(from)
            }
        case .reset(let start, let prevTerm):
            try reader.reset(start: start.offset, prevTerm: prevTerm, now: now)
            emit(waiters.fail(after: (start - 1).offset, .notLeader(leader: raft.leader)))
            onLogCut(start.offset)
        }
        for entry in write.entries {
            let bytes: ByteBuffer
            switch entry.content {
            case .data(let payload): bytes = payload.bytes
            case .leaderChange:
                bytes = leaderChangeBatch(at: entry.firstIndex.offset, term: entry.term)
                builtLeaderChanges[entry.lastIndex] = (entry.term, bytes)
            }
            let result = try log.appendReplicated(bytes, now: now)
            precondition(
                result.firstOffset == entry.firstIndex.offset && result.lastOffset == entry.lastIndex.offset,
                "the log appended \(result.firstOffset)...\(result.lastOffset), Raft's entry is "
                    + "\(entry.firstIndex)...\(entry.lastIndex)")
            try reader.noteAppended(term: entry.term, at: entry.firstIndex.offset)
            onAppended(bytes)
        }
        if case .reset(let start, let prevTerm) = write.cut {
            // The reset is durable already: Raft may count the (empty) log up to `start - 1`.
            raft.persisted(upTo: start - 1, term: prevTerm, log: reader)
        }
        if !write.entries.isEmpty, !log.needsFlush, let last = write.entries.last {
            // Flush policy `.none`: written is durable.
            raft.persisted(upTo: last.lastIndex, term: last.term, log: reader)
        }
    }

    /// The LEADER_CHANGE control batch a new leader appends over an uncommitted tail (Kafka clients skip it).
    func leaderChangeBatch(at offset: Offset, term: Term) -> ByteBuffer {
        let voters = raft.configuration.voters.map { Int32(truncatingIfNeeded: $0.value) }
        return RecordBatchBuilder.controlBatch(
            ControlRecord(type: .leaderChange),
            value: ControlRecord.leaderChangeValue(
                leaderId: Int32(truncatingIfNeeded: raft.id.value), voters: voters, grantingVoters: []),
            timestamp: now.value, baseOffset: offset, partitionLeaderEpoch: term.epoch)
    }

    /// Replaces the core's `.leaderChange` entries with the control batch written to the log, so that followers
    /// store the same bytes.
    func substitute(_ message: Message<BatchPayload>) -> Message<BatchPayload> {
        guard case .append(let prev, let prevTerm, var entries, let commit) = message.kind else { return message }
        var changed = false
        for k in entries.indices {
            guard case .leaderChange = entries[k].content else { continue }
            let bytes =
                builtLeaderChanges[entries[k].lastIndex].flatMap { $0.term == entries[k].term ? $0.bytes : nil }
                ?? leaderChangeBatch(at: entries[k].firstIndex.offset, term: entries[k].term)
            entries[k].content = .data(BatchPayload(trusted: bytes, recordCount: 1))
            changed = true
        }
        guard changed else { return message }
        var message = message
        message.kind = .append(prevLastIndex: prev, prevTerm: prevTerm, entries: entries, leaderCommit: commit)
        return message
    }

    func startFlushIfNeeded() {
        guard failure == nil, flushInFlight == nil, log.needsFlush else { return }
        do throws(LogError) {
            guard let plan = try log.beginFlush() else {
                let last = reader.lastIndex
                if let term = reader.term(at: last) { raft.persisted(upTo: last, term: term, log: reader) }
                drive()
                return
            }
            let last = plan.targetOffset.index - 1
            let request = FlushRequest(plan: plan, lastIndex: last, lastTerm: reader.term(at: last) ?? .zero)
            flushInFlight = request
            flush(request)
        } catch {
            stop("flush: \(error)")
        }
    }

    func releaseWaiters() {
        guard waiters.count > 0 else { return }
        let reader = self.reader
        emit(waiters.release(commit: raft.commitIndex.offset) { reader.term(at: $0.index) })
    }

    func noticeRole() {
        let leading = raft.isLeader
        if wasLeader && !leading {
            emit(waiters.fail(after: Offset(-2), .notLeader(leader: raft.leader)))
        }
        wasLeader = leading
    }

    func emit(_ outcomes: [CommitOutcome<Token>]) {
        if !outcomes.isEmpty { onCommitOutcomes(outcomes) }
    }

    /// Stops the engine after a disk failure: nothing more is written or sent; waiters fail.
    func stop(_ why: String) {
        guard failure == nil else { return }
        failure = why
        held = nil
        queued = []
        emit(waiters.fail(after: Offset(-2), .failed(why)))
    }

    // MARK: - Produce validation

    /// Checks client batches as `PartitionLog.append` would, and stamps their offsets from `first` and `term`.
    func stamp(_ batches: inout ByteBuffer, first: Offset, term: Term) throws(ReplicaError) -> Offset {
        let start = batches.readerIndex
        let end = batches.writerIndex
        guard end > start else { throw .invalidBatches(.emptyAppend) }
        var position = start
        var next = first
        var count = 0
        while position < end {
            let header: RecordBatchHeader
            do throws(RecordBatchError) {
                header = try RecordBatch.validate(batches, at: position, maxBatchBytes: log.config.batchBytesMax)
                try RecordBatch.validateClientBatch(header)
            } catch {
                if case .tooLarge(let size, let limit) = error {
                    throw .invalidBatches(.batchTooLarge(size: size, limit: limit))
                }
                throw .invalidBatches(.invalidBatch(index: count, reason: error))
            }
            RecordBatch.setBaseOffset(next, in: &batches, at: position)
            RecordBatch.setPartitionLeaderEpoch(term.epoch, in: &batches, at: position)
            next = next.advanced(by: Int64(header.lastOffsetDelta) + 1)
            position += header.totalSize
            count += 1
        }
        return next.advanced(by: -1)
    }
}
