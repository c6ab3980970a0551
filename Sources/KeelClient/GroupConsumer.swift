// KeelConsumer: a consumer-group member speaking Kafka's classic group protocol, as the Java
// consumer and librdkafka do: FindCoordinator v1, JoinGroup v5, SyncGroup v3, Heartbeat v1,
// LeaveGroup v1, OffsetCommit v3, OffsetFetch v3, with the "consumer" embedded protocol
// (ConsumerProtocol.swift) and the range / roundrobin assignors (Assignors.swift). A KeelConsumer
// and a Java or librdkafka consumer can be members of the same group.
//
// Three loops run while the consumer is subscribed, all on the actor:
// - the group loop keeps the membership: finds the coordinator, joins and syncs (computing the
//   assignment when it leads), heartbeats every `heartbeatIntervalMs`, auto-commits, and reacts to
//   the coordinator's errors (GroupMembership.swift) — in the background, while the user processes;
// - the fetcher sends one long-poll Fetch per partition leader for the assigned partitions whose
//   buffer is empty, and buffers what comes back;
// - `poll` / the `records` sequence hand the buffered records out, partition by partition.
//
// Positions follow Kafka: a committed offset is the next offset to read; a partition starts at
// its committed offset, else at `autoOffsetReset`. The eager protocol gives every partition up
// before rejoining: with auto-commit the positions are committed first. A record handed to the
// user counts as processed once the user asks for the next one (or commits, or closes), so a
// rebalance in the background commits at-least-once: the record in hand is read again by the
// partition's next owner.

import KafkaProtocol
import NIOCore
import Records

/// Where a partition without a committed offset starts (Kafka's `auto.offset.reset`).
public enum AutoOffsetReset: String, Sendable, CaseIterable {
    /// The log start offset.
    case earliest
    /// The log end offset: only records written from now on (Kafka's default).
    case latest
    /// No default: `poll` throws `.noCommittedOffset`.
    case none
}

/// What a rebalance did to this consumer's partitions, as told to `ConsumerConfiguration.onRebalance`.
public enum RebalanceEvent: Sendable, Equatable {
    /// Given up before rejoining the group (committed first when auto-commit is on).
    case revoked([TopicPartition])
    /// Received in a new generation; their positions are looked up right after, unless the
    /// listener seeks them.
    case assigned([TopicPartition])
    /// Taken away without a chance to commit: the generation ended (session expired, fenced).
    case lost([TopicPartition])
}

/// Settings of a `KeelConsumer`, with the Java consumer's defaults; every limit names its unit.
public struct ConsumerConfiguration: Sendable {
    /// The group to join (`group.id`).
    public var groupId: String
    /// A static member's instance id (`group.instance.id`, KIP-345): a restart within the session
    /// timeout gets the same partitions without a rebalance, and `close` sends no LeaveGroup.
    public var groupInstanceId: String?
    /// How long the coordinator waits for a heartbeat before it removes the member (`session.timeout.ms`).
    public var sessionTimeoutMs: Int32 = 45_000
    /// How long a rebalance may wait for this member to rejoin, and the longest the user may go
    /// between polls while holding partitions (`max.poll.interval.ms`, which the Java consumer sends
    /// as the rebalance timeout): past it the member leaves the group, so that the others take its
    /// partitions over, and rejoins at the next poll.
    public var rebalanceTimeoutMs: Int32 = 300_000
    /// The pause between heartbeats (`heartbeat.interval.ms`); must be below the session timeout.
    public var heartbeatIntervalMs: Int32 = 3_000
    /// The assignors offered in JoinGroup, preferred first (`partition.assignment.strategy`;
    /// librdkafka's default `range,roundrobin`).
    public var assignors: [PartitionAssignor] = [.range, .roundRobin]
    /// Where a partition without a committed offset starts (`auto.offset.reset`).
    public var autoOffsetReset: AutoOffsetReset = .latest
    /// Whether positions are committed every `autoCommitIntervalMs`, before a rebalance and on close
    /// (`enable.auto.commit`).
    public var enableAutoCommit: Bool = true
    /// The pause between automatic commits (`auto.commit.interval.ms`).
    public var autoCommitIntervalMs: Int64 = 5_000
    /// How long a Fetch waits at the broker for data (`fetch.max.wait.ms`).
    public var fetchMaxWaitMs: Int32 = 500
    /// The most bytes one Fetch may return (`fetch.max.bytes`).
    public var fetchMaxBytes: Int32 = 50 * 1024 * 1024
    /// The most bytes one Fetch may return per partition (`max.partition.fetch.bytes`).
    public var partitionFetchMaxBytes: Int32 = 1024 * 1024
    /// The first pause before retrying a failed group or fetch request (`retry.backoff.ms`).
    public var retryBackoffMs: Int64 = 100
    /// The longest pause between retries (`retry.backoff.max.ms`).
    public var retryBackoffMaxMs: Int64 = 1_000
    /// How often the group leader re-reads the subscribed topics' partition counts and rejoins
    /// when one changed (`metadata.max.age.ms`).
    public var metadataMaxAgeMs: Int64 = 300_000
    /// Called (and awaited) on every rebalance, from the consumer's group loop; it may call
    /// `seek` on the consumer.
    public var onRebalance: (@Sendable (RebalanceEvent) async -> Void)?

    /// The defaults for `groupId`.
    public init(groupId: String) {
        self.groupId = groupId
    }

    /// Throws `.invalidArgument` naming the first setting out of range.
    public func validate() throws(KeelClientError) {
        guard !groupId.isEmpty else { throw .invalidArgument("groupId must not be empty") }
        if let groupInstanceId, groupInstanceId.isEmpty {
            throw .invalidArgument("groupInstanceId must be nil or not empty")
        }
        guard sessionTimeoutMs > 0, rebalanceTimeoutMs > 0 else {
            throw .invalidArgument("sessionTimeoutMs and rebalanceTimeoutMs must be positive")
        }
        guard heartbeatIntervalMs > 0, heartbeatIntervalMs < sessionTimeoutMs else {
            throw .invalidArgument("heartbeatIntervalMs must be positive and below sessionTimeoutMs")
        }
        guard !assignors.isEmpty, Set(assignors).count == assignors.count else {
            throw .invalidArgument("assignors must name at least one assignor, each once")
        }
        guard autoCommitIntervalMs > 0 else { throw .invalidArgument("autoCommitIntervalMs must be positive") }
        guard fetchMaxWaitMs >= 0, fetchMaxBytes > 0, partitionFetchMaxBytes > 0 else {
            throw .invalidArgument(
                "fetchMaxWaitMs must be 0 or more, fetchMaxBytes and partitionFetchMaxBytes positive")
        }
        guard retryBackoffMs > 0, retryBackoffMaxMs >= retryBackoffMs, retryBackoffMaxMs <= 3_600_000 else {
            throw .invalidArgument("retryBackoffMs must be positive and at most retryBackoffMaxMs (at most 1 h)")
        }
        guard metadataMaxAgeMs > 0 else { throw .invalidArgument("metadataMaxAgeMs must be positive") }
    }
}

/// A member of a consumer group: subscribes to topics, gets a share of their partitions from the
/// group, and hands out their records, committing positions automatically or when asked.
///
///     var configuration = ConsumerConfiguration(groupId: "billing")
///     configuration.autoOffsetReset = .earliest
///     let consumer = try KeelConsumer(client: client, configuration: configuration)
///     try await consumer.subscribe(["orders"])
///     for try await record in consumer.records() {
///         handle(record)            // committed automatically, at least once
///     }
///     await consumer.close()        // commits, leaves the group
///
/// Call `close` when done: it commits (with auto-commit), sends LeaveGroup (not for static
/// members) and stops the background loops, which otherwise keep the consumer alive.
public actor KeelConsumer {
    /// The client whose connections fetch records and look up offsets; the consumer keeps its own
    /// connection to the group coordinator, so that a JoinGroup waiting for a rebalance never
    /// holds a Fetch back.
    public let client: KeelClient
    /// The settings of this consumer.
    public let configuration: ConsumerConfiguration
    /// The member id the coordinator gave this consumer ("" before the first join).
    public private(set) var memberId = ""
    /// The current generation, -1 while not in one.
    public private(set) var generationId: Int32 = -1
    /// The subscribed topics, sorted.
    public private(set) var subscription: [String] = []
    /// Whether this member computed the current assignment.
    public private(set) var isLeader = false
    /// The assignor the group chose in the current generation.
    public private(set) var protocolName: String?

    /// One assigned partition's reading state.
    struct PartitionState {
        /// The offset of the next record handed to the user; nil until looked up.
        var position: Offset?
        /// The offset of the next Fetch; nil until looked up or while a reset is pending.
        var fetchOffset: Offset?
        /// Records fetched and not handed out yet, from `bufferIndex` on.
        var buffer: [ConsumerRecord] = []
        var bufferIndex = 0
        /// Changes on every seek and assignment: a fetch or lookup started under another epoch is dropped.
        var epoch: UInt64
        /// The high watermark the last Fetch reported.
        var highWatermark: Offset?
        /// No Fetch before this instant (after an error).
        var retryAt: ContinuousClock.Instant?
        /// Consecutive fetch errors, for the backoff.
        var failures = 0

        var isDrained: Bool { bufferIndex >= buffer.count }
    }

    /// A partition of one Fetch: where it started and under which epoch.
    struct FetchPart: Sendable {
        var topicPartition: TopicPartition
        var offset: Offset
        var epoch: UInt64
    }

    /// Which loop a suspended task belongs to.
    enum Sleeper { case user, group, fetcher }

    struct Sleeping {
        var kind: Sleeper
        var continuation: CheckedContinuation<Void, Never>
        var timer: Task<Void, Never>?
    }

    /// The coordinator and this consumer's own connection to it.
    struct Coordinator {
        var nodeId: Int32
        var connection: BrokerConnection
    }

    private let clock = ContinuousClock()
    private var partitions: [TopicPartition: PartitionState] = [:]
    /// The assigned partitions in topic, partition order (the order records are handed out in).
    private var assigned: [TopicPartition] = []
    private var handOutCursor = 0
    /// The partition and offset of the record the user holds (handed out, next one not asked for yet).
    private var inHand: (topicPartition: TopicPartition, offset: Offset)?
    private var committed: [TopicPartition: Offset] = [:]
    private var nextEpoch: UInt64 = 1

    private var coordinator: Coordinator?
    private var coordinatorLookup: Task<Result<Coordinator, KeelClientError>, Never>?
    private var joinNeeded = true
    private var isJoining = false
    /// Consecutive SyncGroups refused with an unknown error, for the backoff.
    private var syncFailures = 0
    private var groupTopics: [String] = []
    /// Partitions lost with the generation, to report to the listener from the group loop.
    private var lostToReport: [TopicPartition] = []
    private var assignedPartitionCounts: [String: Int32] = [:]
    private var nextHeartbeatAt: ContinuousClock.Instant
    private var nextAutoCommitAt: ContinuousClock.Instant
    private var nextMetadataCheckAt: ContinuousClock.Instant
    /// When the user last called (or was waiting in) `poll`.
    private var lastPollAt: ContinuousClock.Instant
    /// The member left the group because the user did not poll within the rebalance timeout; it
    /// rejoins at the next poll.
    private var leftUntilPoll = false

    private var leadersInFlight: Set<Int32> = []
    private var partsInFlight: Set<TopicPartition> = []
    private var resetsInFlight: Set<TopicPartition> = []

    private var sleepers: [UInt64: Sleeping] = [:]
    private var nextSleeperId: UInt64 = 0
    private var commitTail: Task<Void, Never>?
    private var groupTask: Task<Void, Never>?
    private var fetcherTask: Task<Void, Never>?
    private var failure: KeelClientError?
    /// `close` has begun (it commits and leaves before `isClosed`).
    private var isClosing = false
    private var isClosed = false

    /// Creates a consumer; nothing happens until `subscribe`.
    public init(client: KeelClient, configuration: ConsumerConfiguration) throws(KeelClientError) {
        try configuration.validate()
        self.client = client
        self.configuration = configuration
        let now = clock.now
        nextHeartbeatAt = now
        nextAutoCommitAt = now
        nextMetadataCheckAt = now
        lastPollAt = now
    }

    // MARK: Public API

    /// Subscribes to `topics` (replacing any earlier subscription) and starts joining the group;
    /// returns at once. A change of subscription rejoins the group.
    public func subscribe(_ topics: [String]) throws(KeelClientError) {
        guard !isClosed else { throw .closed }
        let names = Array(Set(topics)).sorted()
        guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty }) else {
            throw .invalidArgument("subscribe to at least one topic, with a non-empty name")
        }
        guard names != subscription else { return }
        subscription = names
        lastPollAt = clock.now
        joinNeeded = true
        if groupTask == nil {
            groupTask = Task { await self.runGroup() }
            fetcherTask = Task { await self.runFetcher() }
        } else {
            wake(.group)
        }
    }

    /// The next record, waiting up to `timeoutMs` (nil: until one comes). Returns nil on timeout,
    /// when the consumer is closed, or when the calling task is cancelled; throws what stopped the
    /// consumer (a fatal group error, a corrupt batch, `.noCommittedOffset`).
    ///
    /// Calling it marks the record returned before as processed (its offset + 1 may be committed).
    public func poll(timeoutMs: Int64? = nil) async throws(KeelClientError) -> ConsumerRecord? {
        guard !subscription.isEmpty || isClosed else {
            throw .invalidArgument("subscribe to topics before polling")
        }
        inHand = nil
        lastPollAt = clock.now
        if leftUntilPoll {
            leftUntilPoll = false
            joinNeeded = true
            wake(.group)
        }
        let deadline = timeoutMs.map { clock.now + .milliseconds(max($0, 0)) }
        while true {
            if let failure { throw failure }
            if isClosed || Task.isCancelled { return nil }
            if let record = takeRecord() { return record }
            if let deadline, clock.now >= deadline { return nil }
            await sleep(.user, until: deadline)
        }
    }

    /// The records of the assigned partitions as an AsyncSequence; it ends after `idleTimeoutMs`
    /// without a record (nil: never), when the consumer closes, or when the task is cancelled.
    public nonisolated func records(idleTimeoutMs: Int64? = nil) -> ConsumerRecords {
        ConsumerRecords(consumer: self, idleTimeoutMs: idleTimeoutMs)
    }

    /// The partitions assigned in the current generation, sorted.
    public var assignment: [TopicPartition] { assigned }

    /// The offset of the next record `poll` hands out from `partition`, if known.
    public func position(_ partition: TopicPartition) -> Offset? {
        partitions[partition]?.position
    }

    /// Commits the positions of every record handed out so far (OffsetCommit v3, waiting for the
    /// answer, after any commit started earlier). Throws `.broker(REBALANCE_IN_PROGRESS, …)` while
    /// the consumer is between generations and `.broker(ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID, …)`
    /// when the generation ended (the consumer rejoins by itself).
    public func commit() async throws(KeelClientError) {
        try await commit(positions(safe: false))
    }

    /// Commits `offsets` (each the next offset to read) for this group, in order with other commits.
    public func commit(_ offsets: [TopicPartition: Offset]) async throws(KeelClientError) {
        guard !offsets.isEmpty else { return }
        try await enqueueCommit(offsets).value.get()
    }

    /// Starts committing the positions of every record handed out so far and returns at once;
    /// `onComplete` gets the outcome. Commits are sent in the order they were asked for.
    public func commitAsync(onComplete: (@Sendable (Result<Void, KeelClientError>) -> Void)? = nil) {
        let offsets = positions(safe: false)
        guard !offsets.isEmpty else {
            onComplete?(.success(()))
            return
        }
        let task = enqueueCommit(offsets)
        if let onComplete { Task { onComplete(await task.value) } }
    }

    /// The committed offsets of `partitions` for this group, fresh from the coordinator.
    public func committed(_ partitions: [TopicPartition]) async throws(KeelClientError) -> [TopicPartition: Offset] {
        try await client.committedOffsets(group: configuration.groupId, partitions: partitions)
    }

    /// Moves `partition` (which must be assigned) to `offset`: the next record handed out is the
    /// one at `offset`; buffered records are dropped.
    public func seek(_ partition: TopicPartition, to offset: Offset) throws(KeelClientError) {
        guard partitions[partition] != nil else {
            throw .invalidArgument("\(partition) is not assigned to this consumer; seek after it is")
        }
        guard offset.value >= 0 else { throw .invalidArgument("seek to offset \(offset.value): must be 0 or more") }
        restart(partition, at: offset)
    }

    /// Moves `partition` to the earliest or latest offset, or to the first record at or after a
    /// time (the latest offset if there is none), looked up with ListOffsets.
    public func seek(_ partition: TopicPartition, to spec: OffsetSpec) async throws(KeelClientError) {
        guard let epoch = partitions[partition]?.epoch else {
            throw .invalidArgument("\(partition) is not assigned to this consumer; seek after it is")
        }
        let offset = try await lookUp(partition, spec)
        // Assigned anew or moved elsewhere while we looked: that later change wins.
        guard partitions[partition]?.epoch == epoch else { return }
        restart(partition, at: offset)
    }

    /// Commits (with auto-commit), leaves the group (a dynamic member sends LeaveGroup v1; a static
    /// one does not, so that it keeps its partitions if it comes back within the session timeout),
    /// and stops. Waiting `poll` calls return nil; later calls do nothing.
    public func close() async {
        guard !isClosing else { return }
        isClosing = true
        if configuration.enableAutoCommit && generationId >= 0 && !isJoining {
            let offsets = positions(safe: false)
            if !offsets.isEmpty { _ = await enqueueCommit(offsets).value }
        }
        isClosed = true
        await reportLost()
        let held = assigned
        if !held.isEmpty, let onRebalance = configuration.onRebalance { await onRebalance(.revoked(held)) }
        if configuration.groupInstanceId == nil && !memberId.isEmpty && !isJoining, let coordinator {
            _ = try? await coordinator.connection.send(
                LeaveGroupRequest(groupId: configuration.groupId, memberId: memberId),
                timeoutMs: min(client.configuration.requestTimeoutMs, 5_000))
        }
        coordinator?.connection.close()
        coordinator = nil
        clearAssignment()
        for kind in [Sleeper.user, .group, .fetcher] { wake(kind) }
        await groupTask?.value
        await fetcherTask?.value
        groupTask = nil
        fetcherTask = nil
        generationId = -1
    }

    // MARK: Handing records out

    /// The next buffered record, taking partitions in turn; advances the partition's position.
    private func takeRecord() -> ConsumerRecord? {
        guard !assigned.isEmpty else { return nil }
        for step in 0..<assigned.count {
            let index = (handOutCursor + step) % assigned.count
            let target = assigned[index]
            guard var state = partitions[target], !state.isDrained else { continue }
            let record = state.buffer[state.bufferIndex]
            state.bufferIndex += 1
            state.position = Offset(record.offset.value + 1)
            if state.isDrained {
                state.buffer = []
                state.bufferIndex = 0
                wake(.fetcher)
            }
            partitions[target] = state
            inHand = (target, record.offset)
            handOutCursor = state.isDrained ? index + 1 : index
            return record
        }
        return nil
    }

    /// The positions to commit: with `safe`, the record in the user's hands counts as not processed
    /// (what a background commit may claim); only partitions whose position is known and differs
    /// from the last commit.
    private func positions(safe: Bool) -> [TopicPartition: Offset] {
        var result: [TopicPartition: Offset] = [:]
        for target in assigned {
            guard var position = partitions[target]?.position else { continue }
            if safe, let inHand, inHand.topicPartition == target { position = inHand.offset }
            if committed[target] != position { result[target] = position }
        }
        return result
    }

    /// Drops what is buffered for `partition` and reads on from `offset`.
    private func restart(_ partition: TopicPartition, at offset: Offset) {
        guard var state = partitions[partition] else { return }
        state.position = offset
        state.fetchOffset = offset
        state.buffer = []
        state.bufferIndex = 0
        state.epoch = takeEpoch()
        state.retryAt = nil
        state.failures = 0
        partitions[partition] = state
        if inHand?.topicPartition == partition { inHand = nil }
        wake(.fetcher)
    }

    private func takeEpoch() -> UInt64 {
        defer { nextEpoch += 1 }
        return nextEpoch
    }

    /// Stops the consumer with `error`, which `poll` throws from now on.
    private func fail(_ error: KeelClientError) {
        if failure == nil { failure = error }
        for kind in [Sleeper.user, .group, .fetcher] { wake(kind) }
    }

    // MARK: Waiting

    /// Suspends until `wake(kind)`, the deadline, cancellation or close.
    private func sleep(_ kind: Sleeper, until deadline: ContinuousClock.Instant?) async {
        if isClosed && kind != .user { return }
        let id = nextSleeperId
        nextSleeperId += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                var sleeping = Sleeping(kind: kind, continuation: continuation, timer: nil)
                if let deadline {
                    sleeping.timer = Task { [weak self] in
                        try? await Task.sleep(until: deadline, clock: .continuous)
                        await self?.resume(id)
                    }
                }
                sleepers[id] = sleeping
            }
        } onCancel: {
            Task { [weak self] in await self?.resume(id) }
        }
    }

    private func resume(_ id: UInt64) {
        guard let sleeping = sleepers.removeValue(forKey: id) else { return }
        sleeping.timer?.cancel()
        sleeping.continuation.resume()
    }

    private func wake(_ kind: Sleeper) {
        for (id, sleeping) in sleepers where sleeping.kind == kind { resume(id) }
    }

    /// Sleeps the backoff of retry `attempt` (wakeable by close).
    private func backoff(attempt: Int) async {
        let ms = groupBackoffMs(
            attempt: attempt, baseMs: configuration.retryBackoffMs, maxMs: configuration.retryBackoffMaxMs)
        await sleep(.group, until: clock.now + .milliseconds(ms))
    }

    // MARK: The group loop

    private func runGroup() async {
        var attempt = 0
        while !isClosed && failure == nil {
            do throws(KeelClientError) {
                if leftUntilPoll {
                    await sleep(.group, until: nil)
                    continue
                }
                if joinNeeded {
                    try await joinGroup()
                    attempt = 0
                    continue
                }
                await sleep(.group, until: nextGroupDeadline())
                if isClosed || failure != nil || joinNeeded { continue }
                let now = clock.now
                if configuration.enableAutoCommit && now >= nextAutoCommitAt {
                    nextAutoCommitAt = now + .milliseconds(configuration.autoCommitIntervalMs)
                    let offsets = positions(safe: true)
                    if !offsets.isEmpty {
                        // A failure here is retried at the next interval; rejoin errors were applied.
                        _ = await enqueueCommit(offsets).value
                    }
                }
                if isLeader && now >= nextMetadataCheckAt {
                    nextMetadataCheckAt = now + .milliseconds(configuration.metadataMaxAgeMs)
                    try await checkPartitionCounts()
                }
                if pollIntervalExceeded() {
                    await leaveUntilPoll()
                    continue
                }
                if clock.now >= nextHeartbeatAt && !joinNeeded {
                    try await heartbeat()
                }
                attempt = 0
            } catch {
                if isClosed || error == .closed { break }
                let action = GroupErrorAction.classify(error)
                apply(action, error: error)
                switch action {
                case .rediscoverCoordinator, .retryLater:
                    attempt += 1
                    await backoff(attempt: attempt)
                case .rejoin, .resetGenerationAndRejoin, .resetMemberAndRejoin, .fatal:
                    break
                }
            }
        }
    }

    /// Whether the user holds partitions and has not polled within the rebalance timeout.
    private func pollIntervalExceeded() -> Bool {
        if sleepers.values.contains(where: { $0.kind == .user }) { lastPollAt = clock.now }
        return generationId >= 0 && clock.now - lastPollAt > .milliseconds(Int64(configuration.rebalanceTimeoutMs))
    }

    /// Leaves the group (Java's "poll timeout has expired"): a dynamic member sends LeaveGroup and
    /// forgets its id, a static one only stops heartbeating; both lose their partitions and wait
    /// for the next poll to rejoin.
    private func leaveUntilPoll() async {
        if configuration.groupInstanceId == nil, let coordinator {
            _ = try? await coordinator.connection.send(
                LeaveGroupRequest(groupId: configuration.groupId, memberId: memberId),
                timeoutMs: min(client.configuration.requestTimeoutMs, 5_000))
            memberId = ""
        }
        loseAssignment()
        generationId = -1
        isLeader = false
        leftUntilPoll = true
        await reportLost()
    }

    /// The earliest of the next heartbeat, auto-commit and metadata check.
    private func nextGroupDeadline() -> ContinuousClock.Instant {
        var deadline = nextHeartbeatAt
        if configuration.enableAutoCommit { deadline = min(deadline, nextAutoCommitAt) }
        if isLeader { deadline = min(deadline, nextMetadataCheckAt) }
        return deadline
    }

    /// Does what `action` says about the membership (the loop does the backoff).
    private func apply(_ action: GroupErrorAction, error: KeelClientError) {
        switch action {
        case .rejoin:
            joinNeeded = true
        case .resetGenerationAndRejoin:
            loseAssignment()
            generationId = -1
            isLeader = false
            joinNeeded = true
        case .resetMemberAndRejoin:
            loseAssignment()
            generationId = -1
            isLeader = false
            memberId = ""
            joinNeeded = true
        case .rediscoverCoordinator:
            dropCoordinator()
        case .retryLater:
            break
        case .fatal:
            fail(error)
        }
        if action.rejoins { wake(.group) }
    }

    /// Our connection to the group's coordinator, found (FindCoordinator v1, retried with backoff
    /// while retriable) and connected if needed. Concurrent callers share one lookup.
    private func ensureCoordinator() async throws(KeelClientError) -> Coordinator {
        if let coordinator, coordinator.connection.isActive { return coordinator }
        dropCoordinator()
        let task: Task<Result<Coordinator, KeelClientError>, Never>
        if let running = coordinatorLookup {
            task = running
        } else {
            task = Task { await self.lookUpCoordinator() }
            coordinatorLookup = task
        }
        let result = await task.value
        coordinatorLookup = nil
        let found = try result.get()
        if isClosed {
            found.connection.close()
            throw .closed
        }
        if let coordinator, coordinator.connection.isActive, coordinator.connection !== found.connection {
            return coordinator
        }
        coordinator = found
        return found
    }

    private func lookUpCoordinator() async -> Result<Coordinator, KeelClientError> {
        var attempt = 0
        while true {
            if isClosed { return .failure(.closed) }
            do throws(KeelClientError) {
                let found = try await client.findCoordinator(group: configuration.groupId)
                let settings = client.configuration
                let connection = try await BrokerConnection.connect(
                    to: found.address, clientId: settings.clientId, connectTimeoutMs: settings.connectTimeoutMs,
                    requestTimeoutMs: settings.requestTimeoutMs)
                return .success(Coordinator(nodeId: found.nodeId, connection: connection))
            } catch {
                guard
                    GroupErrorAction.classify(error) == .rediscoverCoordinator
                        || GroupErrorAction.classify(error) == .retryLater
                else { return .failure(error) }
                attempt += 1
                await backoff(attempt: attempt)
            }
        }
    }

    private func dropCoordinator() {
        coordinator?.connection.close()
        coordinator = nil
    }

    /// Gives the assignment up (revoke: commit with auto-commit, tell the listener), then JoinGroup
    /// v5 and SyncGroup v3; the leader computes every member's assignment.
    private func joinGroup() async throws(KeelClientError) {
        let coordinator = try await ensureCoordinator()
        await reportLost()
        if !assigned.isEmpty { await revokeAssignment() }
        guard !isClosed else { throw .closed }
        let topics = subscription
        let metadata = ConsumerProtocolSubscription(version: 1, topics: topics).encoded()
        let join = JoinGroupRequest(
            groupId: configuration.groupId, sessionTimeoutMs: configuration.sessionTimeoutMs,
            rebalanceTimeoutMs: configuration.rebalanceTimeoutMs, memberId: memberId,
            groupInstanceId: configuration.groupInstanceId, protocolType: "consumer",
            protocols: configuration.assignors.map { .init(name: $0.protocolName, metadata: metadata) })
        // The coordinator parks a JoinGroup until every member has rejoined: up to the rebalance timeout.
        let rebalanceWaitMs = client.configuration.requestTimeoutMs + Int64(configuration.rebalanceTimeoutMs)
        isJoining = true
        defer { isJoining = false }
        let joined = try await coordinator.connection.send(join, timeoutMs: rebalanceWaitMs)
        guard !isClosed else { throw .closed }
        if joined.errorCode == .memberIdRequired {
            // KIP-394: the coordinator names our member id; join again with it, at once.
            memberId = joined.memberId
            return
        }
        guard joined.errorCode == .none else { throw .broker(joined.errorCode, context: "JoinGroup") }
        memberId = joined.memberId
        generationId = joined.generationId
        protocolName = joined.protocolName
        isLeader = joined.leader == joined.memberId
        var assignments: [SyncGroupRequest.Assignment] = []
        if isLeader { assignments = try await assign(joined) }
        let sync = SyncGroupRequest(
            groupId: configuration.groupId, generationId: joined.generationId, memberId: joined.memberId,
            groupInstanceId: configuration.groupInstanceId, assignments: assignments)
        let synced = try await coordinator.connection.send(sync, timeoutMs: rebalanceWaitMs)
        guard !isClosed else { throw .closed }
        guard synced.errorCode == .none else {
            let error = KeelClientError.broker(synced.errorCode, context: "SyncGroup")
            guard GroupErrorAction.classify(error, in: .syncGroup) == .retryLater,
                GroupErrorAction.classify(error) == .fatal
            else { throw error }
            // An error the table does not know: join again after a backoff (joinNeeded is still set).
            syncFailures += 1
            await backoff(attempt: syncFailures)
            return
        }
        syncFailures = 0
        let assignment = try ConsumerProtocolAssignment.decode(synced.assignment)
        guard generationId == joined.generationId, subscription == topics else {
            // The subscription changed while we joined: join again with the new one.
            joinNeeded = true
            return
        }
        joinNeeded = false
        install(assignment.partitions)
        let now = clock.now
        nextHeartbeatAt = now + .milliseconds(Int64(configuration.heartbeatIntervalMs))
        nextAutoCommitAt = now + .milliseconds(configuration.autoCommitIntervalMs)
        nextMetadataCheckAt = now + .milliseconds(configuration.metadataMaxAgeMs)
        if let onRebalance = configuration.onRebalance { await onRebalance(.assigned(assigned)) }
        let epochs = assigned.compactMap { target in partitions[target].map { (target, $0.epoch) } }
        Task { await self.lookUpPositions(epochs, generation: joined.generationId) }
    }

    /// The leader's work: decode every member's subscription, read the partition counts of the
    /// topics they want, run the chosen assignor, encode one assignment per member.
    private func assign(_ joined: JoinGroupResponse) async throws(KeelClientError) -> [SyncGroupRequest.Assignment] {
        guard let assignor = PartitionAssignor(protocolName: joined.protocolName),
            configuration.assignors.contains(assignor)
        else {
            throw .protocolViolation(
                "the group chose assignor '\(joined.protocolName)', which this consumer did not offer")
        }
        let members = joined.members.map { member in
            // A member whose subscription does not decode is given nothing (as librdkafka does).
            let topics = (try? ConsumerProtocolSubscription.decode(member.metadata))?.topics ?? []
            return AssignorMember(memberId: member.memberId, groupInstanceId: member.groupInstanceId, topics: topics)
        }
        var topics = Set<String>()
        for member in members { topics.formUnion(member.topics) }
        let counts = try await partitionCounts(of: topics.sorted())
        groupTopics = topics.sorted()
        assignedPartitionCounts = counts
        let plan = assignor.assign(members: members, partitionCounts: counts)
        return members.map { member in
            SyncGroupRequest.Assignment(
                memberId: member.memberId,
                assignment: ConsumerProtocolAssignment(partitions: plan[member.memberId] ?? []).encoded())
        }
    }

    /// The partition count of each of `topics` that exists.
    private func partitionCounts(of topics: [String]) async throws(KeelClientError) -> [String: Int32] {
        guard !topics.isEmpty else { return [:] }
        let view = try await client.refreshMetadata(
            topics: topics, allowAutoTopicCreation: client.configuration.allowAutoTopicCreation)
        var counts: [String: Int32] = [:]
        for topic in topics {
            if let info = view.topics[topic], !info.partitions.isEmpty { counts[topic] = Int32(info.partitions.count) }
        }
        return counts
    }

    /// The leader rejoins when a subscribed topic appeared, vanished or changed its partition count.
    private func checkPartitionCounts() async throws(KeelClientError) {
        let counts = try await partitionCounts(of: groupTopics)
        if counts != assignedPartitionCounts && isLeader && !joinNeeded {
            joinNeeded = true
        }
    }

    /// Heartbeat v1; errors are thrown for the loop to classify.
    private func heartbeat() async throws(KeelClientError) {
        let coordinator = try await ensureCoordinator()
        nextHeartbeatAt = clock.now + .milliseconds(Int64(configuration.heartbeatIntervalMs))
        let response = try await coordinator.connection.send(
            HeartbeatRequest(groupId: configuration.groupId, generationId: generationId, memberId: memberId),
            timeoutMs: min(client.configuration.requestTimeoutMs, Int64(configuration.sessionTimeoutMs)))
        guard response.errorCode == .none else { throw .broker(response.errorCode, context: "Heartbeat") }
    }

    /// Eager revoke before a rejoin: commit the positions (with auto-commit, at least once), tell
    /// the listener, and stop reading the partitions.
    private func revokeAssignment() async {
        let held = assigned
        if configuration.enableAutoCommit && generationId >= 0 {
            let offsets = positions(safe: true)
            if !offsets.isEmpty { _ = await enqueueCommit(offsets).value }
        }
        // A commit that ended the generation already took the partitions away (as lost).
        guard assigned == held else { return }
        if let onRebalance = configuration.onRebalance { await onRebalance(.revoked(held)) }
        if assigned == held { clearAssignment() }
    }

    /// The generation ended under us: the partitions are gone without a commit.
    private func loseAssignment() {
        guard !assigned.isEmpty else { return }
        lostToReport += assigned
        clearAssignment()
    }

    /// Tells the listener about partitions lost since it last heard.
    private func reportLost() async {
        guard !lostToReport.isEmpty else { return }
        let lost = lostToReport
        lostToReport = []
        if let onRebalance = configuration.onRebalance { await onRebalance(.lost(lost)) }
    }

    private func clearAssignment() {
        assigned = []
        partitions = [:]
        committed = [:]
        inHand = nil
        handOutCursor = 0
    }

    private func install(_ assignment: [TopicPartition]) {
        clearAssignment()
        assigned = Array(Set(assignment)).sorted {
            $0.topic == $1.topic ? $0.partition < $1.partition : javaStringOrder($0.topic, $1.topic)
        }
        for target in assigned { partitions[target] = PartitionState(epoch: takeEpoch()) }
        wake(.fetcher)
    }

    // MARK: Positions

    /// Starts the partitions of a new assignment at their committed offsets (OffsetFetch v3),
    /// the others at `autoOffsetReset`; a partition the listener already moved keeps its place.
    private func lookUpPositions(_ targets: [(TopicPartition, UInt64)], generation: Int32) async {
        var attempt = 0
        while !isClosed && failure == nil && generationId == generation {
            let pending = targets.filter { target, epoch in
                partitions[target]?.epoch == epoch && partitions[target]?.position == nil
            }
            guard !pending.isEmpty else { return }
            do throws(KeelClientError) {
                let coordinator = try await ensureCoordinator()
                let found = try await KeelClient.fetchOffsets(
                    group: configuration.groupId, partitions: pending.map(\.0), on: coordinator.connection,
                    timeoutMs: client.configuration.requestTimeoutMs)
                for (target, epoch) in pending where partitions[target]?.epoch == epoch {
                    if let offset = found[target] {
                        partitions[target]?.position = offset
                        partitions[target]?.fetchOffset = offset
                        committed[target] = offset
                    } else {
                        startReset(target)
                    }
                }
                wake(.fetcher)
                return
            } catch {
                if error == .closed { return }
                let action = GroupErrorAction.classify(error)
                if action == .fatal {
                    fail(error)
                    return
                }
                apply(action, error: error)
                if action.rejoins { return }
                attempt += 1
                await backoff(attempt: attempt)
            }
        }
    }

    /// Looks up where `target` starts without a committed offset (or after OFFSET_OUT_OF_RANGE).
    private func startReset(_ target: TopicPartition) {
        guard var state = partitions[target] else { return }
        let spec: OffsetSpec
        switch configuration.autoOffsetReset {
        case .earliest: spec = .earliest
        case .latest: spec = .latest
        case .none:
            fail(.noCommittedOffset(topic: target.topic, partition: target.partition))
            return
        }
        state.fetchOffset = nil
        state.buffer = []
        state.bufferIndex = 0
        partitions[target] = state
        guard !resetsInFlight.contains(target) else { return }
        resetsInFlight.insert(target)
        let epoch = state.epoch
        Task {
            var attempt = 0
            while !self.isClosed, self.partitions[target]?.epoch == epoch {
                do throws(KeelClientError) {
                    let offset = try await self.lookUp(target, spec)
                    if self.partitions[target]?.epoch == epoch {
                        self.partitions[target]?.position = offset
                        self.partitions[target]?.fetchOffset = offset
                        self.wake(.fetcher)
                    }
                    break
                } catch {
                    attempt += 1
                    if !error.isRetriable && !error.invalidatesMetadata {
                        self.fail(error)
                        break
                    }
                    await self.sleep(
                        .fetcher,
                        until: self.clock.now
                            + .milliseconds(
                                groupBackoffMs(
                                    attempt: attempt, baseMs: self.configuration.retryBackoffMs,
                                    maxMs: self.configuration.retryBackoffMaxMs)))
                }
            }
            self.resetsInFlight.remove(target)
        }
    }

    /// ListOffsets for `spec`; a time with no record at or after it gives the latest offset.
    private func lookUp(_ target: TopicPartition, _ spec: OffsetSpec) async throws(KeelClientError) -> Offset {
        if let found = try await client.listOffsets(topic: target.topic, partition: target.partition, spec) {
            return found
        }
        return try await client.listOffsets(topic: target.topic, partition: target.partition, .latest) ?? .zero
    }

    // MARK: Commits

    /// Queues a commit behind the ones already asked for (so they reach the coordinator in order).
    private func enqueueCommit(_ offsets: [TopicPartition: Offset]) -> Task<Result<Void, KeelClientError>, Never> {
        let previous = commitTail
        let task = Task { () -> Result<Void, KeelClientError> in
            await previous?.value
            do throws(KeelClientError) {
                try await self.sendCommit(offsets)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        commitTail = Task { _ = await task.value }
        return task
    }

    /// OffsetCommit v3 for the current generation, retried (finding the coordinator again) while
    /// retriable; errors that end the generation make the consumer rejoin, and are thrown.
    private func sendCommit(_ offsets: [TopicPartition: Offset]) async throws(KeelClientError) {
        var attempt = 0
        while true {
            guard generationId >= 0 else {
                throw .broker(.rebalanceInProgress, context: "commit: the consumer is joining its group")
            }
            let generation = generationId
            let member = memberId
            do throws(KeelClientError) {
                let coordinator = try await ensureCoordinator()
                try await KeelClient.sendCommit(
                    group: configuration.groupId, generationId: generation, memberId: member, offsets: offsets,
                    on: coordinator.connection, timeoutMs: client.configuration.requestTimeoutMs)
                for (target, offset) in offsets where partitions[target] != nil { committed[target] = offset }
                return
            } catch {
                let action = GroupErrorAction.classify(error)
                switch action {
                case .rediscoverCoordinator, .retryLater:
                    apply(action, error: error)
                    attempt += 1
                    guard attempt <= client.configuration.retriesMax, !isClosed else { throw error }
                    await backoff(attempt: attempt)
                case .rejoin, .resetGenerationAndRejoin, .resetMemberAndRejoin:
                    if generation == generationId { apply(action, error: error) }
                    throw error
                case .fatal:
                    throw error
                }
            }
        }
    }

    // MARK: The fetcher

    private func runFetcher() async {
        while !isClosed && failure == nil {
            let now = clock.now
            var ready: [FetchPart] = []
            for target in assigned where !partsInFlight.contains(target) {
                guard let state = partitions[target], let offset = state.fetchOffset, state.isDrained else { continue }
                if let retryAt = state.retryAt {
                    if retryAt > now { continue }
                    partitions[target]?.retryAt = nil
                }
                ready.append(FetchPart(topicPartition: target, offset: offset, epoch: state.epoch))
            }
            var byLeader: [Int32: [FetchPart]] = [:]
            for part in ready {
                guard let leader = await leader(of: part) else { continue }
                byLeader[leader, default: []].append(part)
            }
            for (leader, parts) in byLeader where !leadersInFlight.contains(leader) {
                // Assignment or positions may have changed while we looked leaders up.
                let current = parts.filter { partitions[$0.topicPartition]?.epoch == $0.epoch }
                guard !current.isEmpty else { continue }
                leadersInFlight.insert(leader)
                for part in current { partsInFlight.insert(part.topicPartition) }
                Task { await self.fetch(from: leader, current) }
            }
            if isClosed || failure != nil { break }
            // Until something changes (a drained buffer, an answer, a new position) or a backoff ends.
            let earliestRetry = assigned.filter { !partsInFlight.contains($0) }.compactMap {
                target -> ContinuousClock.Instant? in
                guard let state = partitions[target], state.fetchOffset != nil, state.isDrained else { return nil }
                return state.retryAt
            }.min()
            await sleep(.fetcher, until: earliestRetry)
        }
    }

    /// The leader of the part's partition, refreshing metadata once if unknown; nil (with a retry
    /// scheduled) when there is none.
    private func leader(of part: FetchPart) async -> Int32? {
        let target = part.topicPartition
        if let leader = await client.metadata.leader(topic: target.topic, partition: target.partition) {
            return leader
        }
        _ = try? await client.topicInfo(target.topic, refresh: true)
        if let leader = await client.metadata.leader(topic: target.topic, partition: target.partition) {
            return leader
        }
        scheduleRetry(target, epoch: part.epoch)
        return nil
    }

    private func scheduleRetry(_ target: TopicPartition, epoch: UInt64) {
        guard var state = partitions[target], state.epoch == epoch else { return }
        state.failures += 1
        let ms = groupBackoffMs(
            attempt: state.failures, baseMs: configuration.retryBackoffMs, maxMs: configuration.retryBackoffMaxMs)
        state.retryAt = clock.now + .milliseconds(ms)
        partitions[target] = state
    }

    /// One Fetch v11 to `leader` for `parts`, then the answer applied.
    private func fetch(from leader: Int32, _ parts: [FetchPart]) async {
        let maxWait = configuration.fetchMaxWaitMs
        let partitionMax = configuration.partitionFetchMaxBytes
        let topics = Dictionary(grouping: parts, by: \.topicPartition.topic).sorted { $0.key < $1.key }.map {
            topic, entries in
            FetchRequest.Topic(
                topic: topic,
                partitions: entries.map {
                    .init(
                        partition: $0.topicPartition.partition, currentLeaderEpoch: -1, fetchOffset: $0.offset.value,
                        logStartOffset: -1, partitionMaxBytes: partitionMax)
                })
        }
        let request = FetchRequest(
            replicaId: -1, maxWaitMs: maxWait, minBytes: 1, maxBytes: configuration.fetchMaxBytes, isolationLevel: 0,
            sessionId: 0, sessionEpoch: -1, topics: topics, forgottenTopicsData: [], rackId: "")
        let outcome: Result<FetchResponse, KeelClientError>
        do throws(KeelClientError) {
            let connection = try await client.connection(toNode: leader)
            let response = try await connection.send(
                request, timeoutMs: client.configuration.requestTimeoutMs + Int64(maxWait))
            if response.errorCode != .none { throw .broker(response.errorCode, context: "fetch") }
            outcome = .success(response)
        } catch {
            outcome = .failure(error)
        }
        leadersInFlight.remove(leader)
        for part in parts { partsInFlight.remove(part.topicPartition) }
        var stale: Set<String> = []
        switch outcome {
        case .failure(let error):
            for part in parts { scheduleRetry(part.topicPartition, epoch: part.epoch) }
            if error.invalidatesMetadata || error.isRetriable { stale.formUnion(parts.map(\.topicPartition.topic)) }
        case .success(let response):
            for part in parts {
                let target = part.topicPartition
                let data = response.responses.first { $0.topic == target.topic }?.partitions.first {
                    $0.partitionIndex == target.partition
                }
                guard let data else {
                    scheduleRetry(target, epoch: part.epoch)
                    continue
                }
                if apply(data, to: part) { stale.insert(target.topic) }
            }
        }
        wake(.user)
        wake(.fetcher)
        for topic in stale.sorted() { await client.invalidate(topic: topic) }
    }

    /// Takes one partition's answer in, unless the partition moved on meanwhile. Returns whether
    /// the topic's metadata is stale.
    private func apply(_ data: FetchResponse.TopicResponse.PartitionData, to part: FetchPart) -> Bool {
        let target = part.topicPartition
        guard var state = partitions[target], state.epoch == part.epoch, state.fetchOffset == part.offset else {
            return false
        }
        switch data.errorCode {
        case .none:
            var decoded: (records: [ConsumerRecord], next: Offset?) = ([], nil)
            if case .bytes(let bytes) = data.records {
                do throws(KeelClientError) {
                    decoded = try FetchDecoder.decode(
                        bytes, topic: target.topic, partition: target.partition, from: part.offset)
                } catch {
                    fail(error)
                    return false
                }
                if decoded.next == nil && bytes.readableBytes > 0 {
                    fail(
                        .invalidArgument(
                            "the record batch at \(target) offset \(part.offset) is larger than "
                                + "partitionFetchMaxBytes \(configuration.partitionFetchMaxBytes); raise it"))
                    return false
                }
            }
            state.buffer = decoded.records
            state.bufferIndex = 0
            state.fetchOffset = max(decoded.next ?? part.offset, part.offset)
            state.highWatermark = Offset(data.highWatermark)
            state.retryAt = nil
            state.failures = 0
            partitions[target] = state
            return false
        case .offsetOutOfRange:
            startReset(target)
            return false
        default:
            let error = KeelClientError.broker(data.errorCode, context: "fetch \(target) at \(part.offset)")
            guard error.isRetriable || error.invalidatesMetadata else {
                fail(error)
                return false
            }
            scheduleRetry(target, epoch: part.epoch)
            return error.invalidatesMetadata
        }
    }
}

/// The records of a `KeelConsumer` as an AsyncSequence (see `KeelConsumer.records(idleTimeoutMs:)`).
public struct ConsumerRecords: AsyncSequence, Sendable {
    /// Yields `ConsumerRecord`s.
    public typealias Element = ConsumerRecord
    /// Iteration throws `KeelClientError`.
    public typealias Failure = KeelClientError

    let consumer: KeelConsumer
    let idleTimeoutMs: Int64?

    /// An iterator polling the consumer.
    public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer, idleTimeoutMs: idleTimeoutMs) }

    /// Polls the consumer for each record.
    public struct Iterator: AsyncIteratorProtocol, Sendable {
        /// Yields `ConsumerRecord`s.
        public typealias Element = ConsumerRecord
        /// Iteration throws `KeelClientError`.
        public typealias Failure = KeelClientError

        let consumer: KeelConsumer
        let idleTimeoutMs: Int64?

        /// The next record; nil after `idleTimeoutMs` without one, on close or on cancellation.
        public mutating func next() async throws(KeelClientError) -> ConsumerRecord? {
            try await consumer.poll(timeoutMs: idleTimeoutMs)
        }

        /// `AsyncIteratorProtocol`: as `next()`.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(KeelClientError)
            -> ConsumerRecord?
        {
            try await next()
        }
    }
}
