// Controller: the cluster metadata, replicated by Raft group 0 (topic `__cluster_metadata`, partition 0).
//
// What it owns: the glue between three pieces. `MetadataRecord` (MetadataRecord.swift) is one change to the
// metadata, carried as a record of a Kafka record batch. `ClusterMetadataState` is the pure value that applying
// the log in order builds: nodes, topics with their replica assignments and configs, last known partition
// leaders, the next producer id block. `ControllerStateMachine` decides, purely, which records an admin command
// needs. `Controller` runs them over a `ReplicaEngine`:
//
// - On the leader, `submit` queues a command; commands run one at a time: validate against the applied state,
//   propose the records as one batch, await its commit, answer. One at a time is what makes validation sound:
//   the state a command is checked against already holds every earlier command's records. A new leader waits
//   until everything in its log is committed and applied (its LEADER_CHANGE batch commits the old tail) before it
//   validates anything.
// - On every node, committed batches (read below the high watermark as it advances) are applied to the local
//   state in offset order, and `onMetadataChanged` tells the broker.
// - A node that does not lead answers NOT_CONTROLLER with the leader it knows of; the broker forwards.
//
// What it must never do: any I/O of its own. The log, the network and the fsyncs all go through the
// `ReplicaEngine` and its seams, which the shell provides; the clock arrives as `now` arguments.
//
// Confinement: like its engine, a `Controller` is not thread-safe; it lives on the engine's event loop and every
// call runs to completion there.
//
// Snapshots are not written yet: the metadata log must keep every batch (no retention on group 0), and a
// restarted node rebuilds its state by replaying the log from its start as the high watermark comes back.

import LogStorage
import NIOCore
import Raft
import Records
import Replication

/// Runs the controller's state machine over the Raft group 0 replica of this node.
public final class Controller {
    /// A command waiting for its turn or its commit.
    struct Pending {
        var id: UInt64
        var command: ControllerCommand
        var completion: (Result<ControllerReply, ControllerError>) -> Void
    }

    /// The metadata group's replica (owned: the controller installs its callbacks).
    public let engine: ReplicaEngine<UInt64>
    /// Decides the records of each command.
    public let stateMachine: ControllerStateMachine
    /// The metadata as applied up to `appliedOffset`.
    public private(set) var state = ClusterMetadataState()
    /// The next offset to apply (everything below it is in `state`).
    public private(set) var appliedOffset: Offset
    /// Why applying stopped, if it did (a committed batch that does not decode); the controller then refuses
    /// every command.
    public private(set) var failure: String?
    /// Called after committed records were applied, with the new state (on the engine's thread).
    public var onMetadataChanged: (ClusterMetadataState) -> Void = { _ in }

    var queue: [Pending] = []
    var inFlight: (pending: Pending, proposal: Proposal, reply: ControllerReply)?
    var nextId: UInt64 = 0
    var pumping = false
    var now: Milliseconds

    /// The metadata group: topic `__cluster_metadata`, partition 0.
    public static let group = GroupID(topic: ControllerStateMachine.metadataTopic, partition: 0)
    /// The most bytes read from the log per step while applying.
    public static let readBytesMax = 1 << 20
    /// The most commands waiting on the leader; more are refused (the client retries).
    public static let queueLengthMax = 10_000

    /// The log limits of the metadata replica: no retention, since the log is the only copy of the metadata
    /// until snapshots exist.
    public static func logConfig(flushPolicy: FlushPolicy) -> LogConfig {
        LogConfig(
            segmentBytesMax: 16 * 1024 * 1024, retentionBytesMax: nil, retentionMsMax: nil, flushPolicy: flushPolicy)
    }

    /// Takes over `engine` (a replica of `Controller.group` opened with a retention-free log, e.g.
    /// `Controller.logConfig`; its callbacks become the controller's) and starts applying from the log start.
    public init(engine: ReplicaEngine<UInt64>, stateMachine: ControllerStateMachine, now: Milliseconds) {
        precondition(
            engine.log.config.retentionBytesMax == nil && engine.log.config.retentionMsMax == nil,
            "the metadata log must keep every batch: open it without retention")
        self.engine = engine
        self.stateMachine = stateMachine
        self.now = now
        appliedOffset = engine.log.logStartOffset
        engine.onCommitOutcomes = { [unowned self] outcomes in self.committed(outcomes) }
        engine.onHighWatermark = { [unowned self] _ in self.catchUp() }
        catchUp()
    }

    // MARK: - State

    /// True while this node leads the controller group.
    public var isController: Bool { engine.isLeader }
    /// The controller this node knows of (the leader of group 0), or nil during an election.
    public var controllerId: Int32? { engine.leader.map { Int32(truncatingIfNeeded: $0.value) } }
    /// Commands queued or in flight on this node.
    public var pendingCount: Int { queue.count + (inFlight == nil ? 0 : 1) }

    // MARK: - Calls in (the shell's, on the engine's thread)

    /// Advances the replica's clock by one tick.
    public func tick(now: Milliseconds) {
        self.now = max(self.now, now)
        engine.tick(now: now)
        afterEngine()
    }

    /// Hands a peer's message for group 0 to the replica.
    public func receive(_ message: Message<BatchPayload>, now: Milliseconds) {
        self.now = max(self.now, now)
        engine.receive(message, now: now)
        afterEngine()
    }

    /// Reports a flush the shell ran for the replica.
    public func completeFlush(_ request: FlushRequest, error: FileIOError?) {
        engine.completeFlush(request, error: error)
        afterEngine()
    }

    /// Runs `command` if this node is the controller: `completion` gets the reply once its records are committed
    /// and applied here, or NOT_CONTROLLER (with the leader known) at once on another node, or when leadership
    /// is lost before the commit (the command may still commit; a retry then finds it done or refused).
    public func submit(
        _ command: ControllerCommand, now: Milliseconds,
        completion: @escaping (Result<ControllerReply, ControllerError>) -> Void
    ) {
        self.now = max(self.now, now)
        if let failure { return completion(.failure(.failed(failure))) }
        guard engine.isLeader else { return completion(.failure(.notController(controller: controllerId))) }
        guard queue.count < Self.queueLengthMax else {
            return completion(.failure(.failed("the controller has \(queue.count) commands waiting")))
        }
        nextId += 1
        queue.append(Pending(id: nextId, command: command, completion: completion))
        pump()
    }

    // MARK: - Applying committed records

    /// Applies every committed batch not applied yet, then runs waiting commands.
    func catchUp() {
        var changed = false
        while failure == nil, appliedOffset < engine.highWatermark {
            let read: VerifiedRead
            do throws(LogError) {
                read = try engine.readVerified(from: appliedOffset, maxBytes: Self.readBytesMax)
            } catch {
                stop("reading the metadata log at \(appliedOffset): \(error)")
                break
            }
            guard read.batchCount > 0, read.nextOffset > appliedOffset else { break }
            var bytes = read.bytes
            while bytes.readableBytes > 0 {
                let header: RecordBatchHeader
                let records: [(offset: Int64, record: MetadataRecord)]
                do {
                    header = try RecordBatchHeader.read(from: bytes, at: bytes.readerIndex)
                    records = try MetadataRecordCodec.records(ofBatch: bytes)
                } catch {
                    stop("metadata batch at \(appliedOffset) does not decode: \(error)")
                    break
                }
                for (offset, record) in records where offset >= appliedOffset.value {
                    state.apply(record)
                    changed = true
                }
                appliedOffset = max(appliedOffset, Offset(header.baseOffset + Int64(header.lastOffsetDelta) + 1))
                bytes.moveReaderIndex(forwardBy: header.totalSize)
            }
            appliedOffset = max(appliedOffset, read.nextOffset)
        }
        if changed { onMetadataChanged(state) }
        pump()
    }

    func stop(_ why: String) {
        guard failure == nil else { return }
        failure = why
        failAll(.failed(why))
    }

    // MARK: - Running commands on the leader

    /// After the engine ran: apply what committed, fail commands if leadership is gone, run the next one.
    func afterEngine() {
        catchUp()
        if !engine.isLeader, !queue.isEmpty {
            let waiting = queue
            queue = []
            for pending in waiting { pending.completion(.failure(.notController(controller: controllerId))) }
        }
    }

    /// True when this node is the controller and every entry of its log is committed and applied: the state is the
    /// latest there is, and a command submitted now runs at once (`cluster/up` may wait for this on some node).
    public var readyToDecide: Bool {
        engine.isLeader && failure == nil && appliedOffset == engine.highWatermark
            && engine.highWatermark == engine.log.logEndOffset
    }

    /// Runs queued commands one at a time while this node can decide.
    func pump() {
        guard !pumping else { return }
        pumping = true
        defer { pumping = false }
        while inFlight == nil, !queue.isEmpty, readyToDecide {
            let pending = queue.removeFirst()
            let decision: (records: [MetadataRecord], reply: ControllerReply)
            do throws(ControllerError) {
                decision = try stateMachine.decide(pending.command, in: state)
            } catch {
                pending.completion(.failure(error))
                continue
            }
            if decision.records.isEmpty {
                pending.completion(.success(decision.reply))
                continue
            }
            let batch = MetadataRecordCodec.batch(decision.records, timestamp: now.value)
            let proposal: Proposal
            do throws(ReplicaError) {
                proposal = try engine.propose(batch, now: now)
            } catch {
                pending.completion(.failure(Self.controllerError(error, leader: controllerId)))
                continue
            }
            inFlight = (pending, proposal, decision.reply)
            engine.awaitCommit(proposal, token: pending.id)
        }
    }

    /// The commit outcome of the command in flight.
    func committed(_ outcomes: [CommitOutcome<UInt64>]) {
        for outcome in outcomes {
            guard let flight = inFlight, flight.pending.id == outcome.token else { continue }
            inFlight = nil
            switch outcome.result {
            case .success:
                // The high watermark has passed the batch: apply it before answering, so that the answer and
                // this node's state agree.
                let saved = pumping
                pumping = true
                catchUp()
                pumping = saved
                flight.pending.completion(.success(flight.reply))
            case .failure(let error):
                flight.pending.completion(.failure(Self.controllerError(error, leader: controllerId)))
            }
        }
        pump()
    }

    func failAll(_ error: ControllerError) {
        var waiting = queue
        queue = []
        if let flight = inFlight {
            inFlight = nil
            waiting.insert(flight.pending, at: 0)
        }
        for pending in waiting { pending.completion(.failure(error)) }
    }

    static func controllerError(_ error: ReplicaError, leader: Int32?) -> ControllerError {
        switch error {
        case .notLeader, .transferInProgress: .notController(controller: leader)
        case .invalidBatches(let reason): .failed("the metadata batch was refused: \(reason)")
        case .failed(let reason): .failed(reason)
        }
    }
}

/// The controller as the replica host runs it: group 0's slot.
extension Controller: HostedReplica {
    var leader: NodeID? { engine.leader }
    var term: Term { engine.term }
    var isLeader: Bool { engine.isLeader }

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

    func close() {
        failAll(.notController(controller: nil))
        do throws(LogError) {
            try engine.close()
        } catch {
            // Nothing more can be done: the log is closed either way.
        }
    }

    var followerProgress: (logEnd: Offset, followers: [NodeID: Offset])? {
        guard let ends = engine.followerEndOffsets, let active = engine.activeFollowers else { return nil }
        // Only followers heard from lately count as holding what they last acknowledged.
        return (engine.log.logEndOffset, ends.filter { active.contains($0.key) })
    }

    func status(voters: [NodeID]) -> ReplicaStatus {
        ReplicaStatus(
            group: engine.group, isLeader: engine.isLeader, leader: engine.leader, term: engine.term, voters: voters,
            highWatermark: engine.highWatermark, logStartOffset: engine.log.logStartOffset,
            logEndOffset: engine.log.logEndOffset, followerEndOffsets: engine.followerEndOffsets,
            failure: engine.failure ?? failure)
    }
}
