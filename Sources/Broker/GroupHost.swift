import ConsumerGroups
import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import Raft
import Records
import Replication

/// The internal topic of consumer groups: membership and committed offsets, as records.
enum OffsetsTopic {
    /// Its name, as Kafka's.
    static let name = "__consumer_offsets"
    /// `offsets.topic.num.partitions` (Redpanda's default; Kafka's is 50).
    static let partitionCount: Int32 = 16
    /// `offsets.topic.replication.factor`, at most the number of nodes.
    static let replicationFactorMax: Int16 = 3
    /// Its configuration: kept whole (there is no compaction yet, and a coordinator replays the partition from
    /// its start), in segments small enough to open quickly.
    static let configs = ["retention.ms": "-1", "segment.bytes": String(16 * 1024 * 1024)]
}

/// The group coordinator of one `__consumer_offsets` partition while this node leads it.
///
/// Confinement: owned by the partition's `PartitionReplica`, on its event loop.
///
/// Life: when the replica becomes leader, a `GroupCoordinator` is created in loading state; once every entry of
/// the log is committed (the new leader's LEADER_CHANGE batch commits the old tail), the partition is replayed
/// from its start up to the high watermark and loading ends. Until then requests get
/// COORDINATOR_LOAD_IN_PROGRESS. When leadership is lost, or an append of the coordinator fails, the coordinator
/// is dropped and waiting requests get NOT_COORDINATOR; a new leader replays the log and carries on with the same
/// generations and offsets.
///
/// Every event's `GroupEffects` are carried out here: replies go out at once, records are appended to the
/// partition as one batch each, and the replies that wait for them go out once Raft has committed the batch.
final class GroupHost {
    let partition: Int32
    let config: GroupCoordinatorConfig
    let nodeId: Int32
    let logger: Logger
    private(set) var coordinator: GroupCoordinator?
    /// The term the coordinator was created in.
    private var term: Term = .zero
    /// Requests waiting for their reply, by token.
    private var waiting: [RequestToken: (promise: EventLoopPromise<GroupResponse>, refusal: GroupResponse)] = [:]
    private var nextToken: UInt64 = 0
    private var ticks = 0
    /// While loading: the next offset to replay (nil before loading starts).
    private var loadNext: Offset?
    private var loadedRecords = 0

    init(partition: Int32, config: GroupCoordinatorConfig, nodeId: Int32, logger: Logger) {
        self.partition = partition
        self.config = config
        self.nodeId = nodeId
        self.logger = logger
    }

    /// True while the coordinator serves (led and loaded).
    var isServing: Bool { coordinator.map { !$0.isLoading } ?? false }

    // MARK: Leadership and loading

    /// After any event of the replica: start, finish or drop the coordinator as its leadership says.
    func afterEngine(_ replica: PartitionReplica) {
        let engine = replica.engine
        if !engine.isLeader || engine.failure != nil || replica.isClosed {
            if coordinator != nil { drop("no longer leads \(OffsetsTopic.name)-\(partition)") }
            return
        }
        if coordinator != nil, term != engine.term { drop("a new term began") }
        if coordinator == nil {
            term = engine.term
            coordinator = GroupCoordinator(config: config, memberIdSeed: "\(nodeId).\(term)", loading: true)
        }
        if coordinator?.isLoading == true, loadNext == nil, engine.highWatermark == engine.log.logEndOffset {
            loadNext = engine.log.logStartOffset
            loadedRecords = 0
            scheduleLoadStep(replica)
        }
    }

    /// The bytes replayed per turn of the event loop: a large partition loads over many turns, so that the other
    /// replicas of the loop keep ticking (and their leaders keep heartbeating) meanwhile.
    static let loadBytesPerStep = 1 << 20

    private func scheduleLoadStep(_ replica: PartitionReplica) {
        let term = self.term
        let bound = NIOLoopBound((self, replica), eventLoop: replica.loop)
        replica.loop.execute {
            let (host, replica) = bound.value
            host.loadStep(replica, term: term)
        }
    }

    /// Replays the next piece of the partition into the loading coordinator; the last piece ends loading.
    private func loadStep(_ replica: PartitionReplica, term: Term) {
        guard var loading = coordinator, loading.isLoading, self.term == term, let next = loadNext else { return }
        let engine = replica.engine
        guard engine.isLeader, engine.term == term else { return }
        var position = next
        do {
            if position < engine.highWatermark {
                let read = try engine.readVerified(from: position, maxBytes: Self.loadBytesPerStep)
                var index = read.bytes.readerIndex
                while index < read.bytes.writerIndex {
                    let header = try RecordBatchHeader.read(from: read.bytes, at: index)
                    defer { index += header.totalSize }
                    guard !header.attributes.isControl else { continue }
                    var records: [GroupRecord] = []
                    for record in try RecordBatch.records(of: read.bytes, at: index) {
                        guard let key = record.key else { continue }
                        records.append(GroupRecord(key: key, value: record.value))
                    }
                    do throws(GroupRecordError) {
                        try loading.load(records)
                    } catch {
                        // Kafka logs and skips records it does not know.
                        logger.warning(
                            "skipping a record of \(OffsetsTopic.name)-\(partition) that is not a group record: \(error)")
                    }
                    loadedRecords += records.count
                }
                position = max(read.nextOffset, position.advanced(by: read.batchCount == 0 ? 1 : 0))
            }
        } catch {
            logger.error("loading the groups of \(OffsetsTopic.name)-\(partition) failed: \(error)")
            loadNext = nil
            coordinator = nil
            return
        }
        if position < engine.highWatermark {
            coordinator = loading
            loadNext = position
            scheduleLoadStep(replica)
            return
        }
        loadNext = nil
        loading.finishLoading(now: replica.clock.now().value)
        coordinator = loading
        logger.info(
            "coordinating the groups of \(OffsetsTopic.name)-\(partition): \(loading.groupIds.count) groups, \(loadedRecords) records replayed")
    }

    private func drop(_ why: String) {
        if let coordinator, !coordinator.isLoading {
            logger.info("stopped coordinating \(OffsetsTopic.name)-\(partition): \(why)")
        }
        coordinator = nil
        loadNext = nil
        let pending = waiting
        waiting = [:]
        for token in pending.keys.sorted() { pending[token].map { $0.promise.succeed($0.refusal) } }
    }

    /// Fails every waiting request (the replica closes).
    func close() {
        drop("the replica closed")
    }

    // MARK: Requests

    /// Runs one request through the coordinator: `event` is called with a fresh token; the future has its reply
    /// (NOT_COORDINATOR when this node does not coordinate the partition now, COORDINATOR_LOAD_IN_PROGRESS
    /// while it loads).
    func handle(
        _ replica: PartitionReplica, notCoordinator: GroupResponse,
        _ event: (inout GroupCoordinator, RequestToken, Int64) -> GroupEffects
    ) -> EventLoopFuture<GroupResponse> {
        let loop = replica.loop
        guard var coordinator else { return loop.makeSucceededFuture(notCoordinator) }
        nextToken += 1
        let token = RequestToken(nextToken)
        let promise = loop.makePromise(of: GroupResponse.self)
        waiting[token] = (promise, notCoordinator)
        let effects = event(&coordinator, token, replica.clock.now().value)
        self.coordinator = coordinator
        apply(effects, replica)
        return promise.futureResult
    }

    /// Fires the coordinator's timers (every other tick of the replica).
    func tick(_ replica: PartitionReplica) {
        ticks += 1
        guard ticks % 2 == 0, var coordinator, !coordinator.isLoading else { return }
        let effects = coordinator.tick(now: replica.clock.now().value)
        self.coordinator = coordinator
        if !effects.isEmpty { apply(effects, replica) }
    }

    private func send(_ replies: [GroupReply]) {
        for reply in replies {
            waiting.removeValue(forKey: reply.token)?.promise.succeed(reply.response)
        }
    }

    /// Carries out effects: replies now, appends as one batch each with their replies on commit.
    private func apply(_ effects: GroupEffects, _ replica: PartitionReplica) {
        send(effects.replies)
        for append in effects.appends {
            let now = replica.clock.now().value
            var builder = RecordBatchBuilder(baseTimestamp: now)
            for record in append.records { builder.append(timestamp: now, key: record.key, value: record.value) }
            let batch: ByteBuffer
            do {
                batch = try builder.build()
            } catch {
                preconditionFailure("building an uncompressed group batch failed: \(error)")
            }
            let term = self.term
            replica.appendInternal(batch).whenComplete { result in
                switch result {
                case .success(let outcome) where outcome.errorCode == .none:
                    self.send(append.repliesOnCommit)
                default:
                    self.send(append.repliesOnFailure(.notCoordinator))
                    // The coordinator's state already holds what was not stored: only a replay is right.
                    if self.term == term, self.coordinator != nil { self.drop("an append failed") }
                    self.afterEngine(replica)
                }
            }
        }
    }
}

extension GroupResponse {
    /// The response of the same API that says NOT_COORDINATOR (or `code`) for every group in it.
    static func refusal(for request: KafkaRequest, code: ErrorCode) -> GroupResponse? {
        switch request {
        case .joinGroup(let body):
            return .join(
                JoinGroupResponse(
                    errorCode: code, generationId: -1, protocolName: "", leader: "", memberId: body.memberId,
                    members: []))
        case .syncGroup: return .sync(SyncGroupResponse(errorCode: code, assignment: ByteBuffer()))
        case .heartbeat: return .heartbeat(HeartbeatResponse(errorCode: code))
        case .leaveGroup: return .leave(LeaveGroupResponse(errorCode: code))
        case .offsetCommit(let body):
            return .offsetCommit(
                OffsetCommitResponse(
                    topics: body.topics.map { topic in
                        .init(
                            name: topic.name,
                            partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: code) })
                    }))
        case .offsetFetch: return .offsetFetch(OffsetFetchResponse(topics: [], errorCode: code))
        default: return nil
        }
    }
}
