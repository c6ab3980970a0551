// Broker: one node's logic, with no sockets and no wall clock.
//
// What this module owns: the topic registry (topics, their configs, their partitions, the
// producer id block, all persisted through `MetadataStore`), one `PartitionEngine` per
// partition (its log, high watermark, idempotent producer state, produce requests waiting
// for durability, fetches waiting for data), and the Kafka API handlers: a decoded request
// in, a `BrokerResponse` out.
//
// What it must never do: open a socket or a file other than through its seams
// (`BrokerEnvironment`: clock, blocking pool, metadata store, `FileIO`), read the wall
// clock, or block an event loop on an fsync: flushes run on the blocking pool while the
// partition goes on appending (group commit).
//
// Threads: `Broker` is `Sendable` and is called from every connection's event loop; the
// registry sits behind a mutex touched once per request. Each partition engine lives on
// one event loop (`NIOLoopBound`) and runs to completion there; a request hops once onto
// it and its answer hops back to the connection's loop.
//
// Main types: `Broker`, `BrokerConfig`, `TopicConfig`, `BrokerMetadata`, `BrokerResponse`,
// `BrokerEnvironment` (the seams), `ProducerStateTable`.

import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import Records
import Synchronization

/// What the server must do with the answer to one request.
public enum BrokerResponse: Sendable {
    /// Write this frame.
    case frame(ByteBuffer)
    /// Write a Fetch response: `parts` in order, each `.records(length, token)` replaced by
    /// the bytes of `records[token]` (file slices, sent with sendfile).
    case fetch(parts: [FetchResponsePart], records: [Int: [LogSlice]])
    /// Write nothing (Produce with acks=0 that succeeded).
    case none
    /// Close the connection, logging `reason` (Produce with acks=0 that failed).
    case close(reason: String)
}

/// The broker was shut down: the request is refused (its connection is closed).
public struct BrokerShutDownError: Error, CustomStringConvertible {
    public var description: String { "the broker is shutting down" }
}

/// One partition as the registry holds it: where its engine lives.
final class PartitionHandle: Sendable {
    let topic: String
    let index: Int32
    let loop: any EventLoop
    let engine: NIOLoopBound<PartitionEngine>
    let retention: RepeatedTask

    init(
        topic: String, index: Int32, loop: any EventLoop, engine: NIOLoopBound<PartitionEngine>, retention: RepeatedTask
    ) {
        self.topic = topic
        self.index = index
        self.loop = loop
        self.engine = engine
        self.retention = retention
    }

    /// Runs `body` on the engine's loop and brings the answer back to `loop`.
    func run<Value: Sendable>(on loop: any EventLoop, _ body: @escaping @Sendable (PartitionEngine) -> Value)
        -> EventLoopFuture<Value>
    {
        let engine = self.engine
        return self.loop.submit { body(engine.value) }.hop(to: loop)
    }
}

/// A topic as the registry holds it.
final class TopicState: Sendable {
    let name: String
    let config: TopicConfig
    let overrides: [String: String]
    let partitions: [PartitionHandle]

    init(name: String, config: TopicConfig, overrides: [String: String], partitions: [PartitionHandle]) {
        self.name = name
        self.config = config
        self.overrides = overrides
        self.partitions = partitions
    }
}

struct Registry {
    var topics: [String: TopicState] = [:]
    /// Names being created or deleted: no second create or delete until it is done.
    var busy: Set<String> = []
    var generation: UInt64 = 0
    var producerIdNext: Int64 = 0
    var producerIdBlockEnd: Int64 = 0
    var producerIdPersistedEnd: Int64 = 0

    func snapshot() -> BrokerMetadata {
        BrokerMetadata(
            generation: generation,
            topics: topics.values.sorted { $0.name < $1.name }.map {
                BrokerMetadata.Topic(name: $0.name, partitions: Int32($0.partitions.count), overrides: $0.overrides)
            },
            producerIdBlockEnd: producerIdBlockEnd)
    }
}

/// One Kafka node: the registry of topics and partitions, and the API handlers.
public final class Broker: Sendable {
    /// The node's settings.
    public let config: BrokerConfig
    let environment: BrokerEnvironment
    let group: any EventLoopGroup
    let logger: Logger
    let registry = Mutex(Registry())
    let waitIds = Atomic<UInt64>(0)
    /// Set by `shutdown()`: from then on every request is refused.
    let isShutDown = Atomic<Bool>(false)

    /// Producer ids are handed out from blocks of this size; each block is persisted before use.
    public static let producerIdBlockSize: Int64 = 1000

    /// Creates a node whose partition engines live on `group`'s event loops.
    public init(config: BrokerConfig, environment: BrokerEnvironment, group: any EventLoopGroup, logger: Logger) {
        self.config = config
        self.environment = environment
        self.group = group
        self.logger = logger
    }

    // MARK: Start and stop

    /// Opens every partition of `metadata`'s topics (recovering their logs) and resumes
    /// producer id allocation after the persisted block. Call once, before serving.
    public func start(from metadata: BrokerMetadata) -> EventLoopFuture<Void> {
        let loop = group.next()
        registry.withLock {
            $0.generation = metadata.generation
            $0.producerIdNext = metadata.producerIdBlockEnd
            $0.producerIdBlockEnd = metadata.producerIdBlockEnd
            $0.producerIdPersistedEnd = metadata.producerIdBlockEnd
        }
        let opened = metadata.topics.map { topic -> EventLoopFuture<TopicState> in
            let config: TopicConfig
            do throws(TopicConfigError) {
                config = try self.config.topicDefaults.applying(topic.overrides)
            } catch {
                logger.warning("topic \(topic.name): stored config refused (\(error)); using the defaults")
                config = self.config.topicDefaults
            }
            return openTopic(
                name: topic.name, partitions: topic.partitions, config: config,
                overrides: topic.overrides, on: loop)
        }
        return EventLoopFuture.whenAllSucceed(opened, on: loop).map { topics in
            self.registry.withLock { registry in
                for topic in topics { registry.topics[topic.name] = topic }
            }
            self.logger.info("broker started with \(topics.count) topics")
        }
    }

    /// Closes every partition: each flushes (on the blocking pool) and closes its log; the
    /// produce requests waiting for an acknowledgement are answered and the waiting fetches
    /// are woken (they then answer at once). Requests that arrive afterwards are refused.
    public func shutdown() -> EventLoopFuture<Void> {
        let loop = group.next()
        isShutDown.store(true, ordering: .sequentiallyConsistent)
        let topics = registry.withLock { registry -> [TopicState] in
            let all = Array(registry.topics.values)
            registry.topics.removeAll()
            return all
        }
        let closed = topics.flatMap(\.partitions).map { close($0, on: loop) }
        return EventLoopFuture.andAllComplete(closed, on: loop)
    }

    func close(_ handle: PartitionHandle, on loop: any EventLoop) -> EventLoopFuture<Void> {
        handle.retention.cancel()
        let engine = handle.engine
        return handle.loop.flatSubmit { engine.value.close() }.hop(to: loop)
    }

    func partitionDirectory(topic: String, partition: Int32) -> String {
        config.dataDirectory + "/" + topic + "-" + String(partition)
    }

    func openTopic(
        name: String, partitions: Int32, config topicConfig: TopicConfig, overrides: [String: String],
        on loop: any EventLoop
    ) -> EventLoopFuture<TopicState> {
        let logConfig = topicConfig.logConfig(flushPolicy: config.flushPolicy)
        let environment = self.environment
        let logger = self.logger
        let retentionMs = config.retentionCheckIntervalMs
        let handles = (0..<partitions).map { index -> EventLoopFuture<PartitionHandle> in
            let engineLoop = group.next()
            let directory = partitionDirectory(topic: name, partition: index)
            return engineLoop.submit { () throws -> PartitionHandle in
                let engine = try PartitionEngine(
                    topic: name, partition: index, directory: directory, config: logConfig, loop: engineLoop,
                    environment: environment, logger: logger)
                let bound = NIOLoopBound(engine, eventLoop: engineLoop)
                let retention = engineLoop.scheduleRepeatedTask(
                    initialDelay: .milliseconds(retentionMs), delay: .milliseconds(retentionMs)
                ) { _ in bound.value.applyRetention() }
                return PartitionHandle(topic: name, index: index, loop: engineLoop, engine: bound, retention: retention)
            }.hop(to: loop)
        }
        return EventLoopFuture.whenAllComplete(handles, on: loop).flatMapThrowing { results in
            var opened: [PartitionHandle] = []
            var failure: (any Error)?
            for result in results {
                switch result {
                case .success(let handle): opened.append(handle)
                case .failure(let error): failure = failure ?? error
                }
            }
            if let failure {
                // Close what did open, so that a failed creation leaves no open files behind.
                for handle in opened { _ = self.close(handle, on: loop) }
                throw failure
            }
            return TopicState(name: name, config: topicConfig, overrides: overrides, partitions: opened)
        }
    }

    func topic(_ name: String) -> TopicState? {
        registry.withLock { $0.topics[name] }
    }

    func partition(_ topic: String, _ index: Int32) -> PartitionHandle? {
        guard let state = self.topic(topic), index >= 0, index < state.partitions.count else { return nil }
        return state.partitions[Int(index)]
    }

    // MARK: Dispatch

    /// Answers one decoded request. Called on the connection's event loop `loop`; the
    /// future completes there.
    public func handle(_ request: DecodedRequest, on loop: any EventLoop) -> EventLoopFuture<BrokerResponse> {
        guard !isShutDown.load(ordering: .sequentiallyConsistent) else {
            return loop.makeFailedFuture(BrokerShutDownError())
        }
        let header = request.header
        let version = header.apiVersion
        let id = header.correlationId
        @Sendable func frame<M: KafkaMessage>(_ body: M) -> BrokerResponse {
            .frame(KafkaResponseEncoder.encodeFrame(body, version: version, correlationId: id))
        }
        func now<M: KafkaMessage>(_ body: M) -> EventLoopFuture<BrokerResponse> {
            loop.makeSucceededFuture(frame(body))
        }
        switch request.request {
        case .apiVersions:
            return now(ApiVersionsResponse.keel)
        case .metadata(let body):
            return metadata(body, on: loop).map { frame($0) }
        case .produce(let body):
            return produce(body, correlationId: id, version: version, on: loop)
        case .fetch(let body):
            return fetch(body, correlationId: id, on: loop)
        case .listOffsets(let body):
            return listOffsets(body, on: loop).map { frame($0) }
        case .createTopics(let body):
            return createTopics(body, on: loop).map { frame($0) }
        case .deleteTopics(let body):
            return deleteTopics(body, on: loop).map { frame($0) }
        case .describeConfigs(let body):
            return now(describeConfigs(body))
        case .initProducerId(let body):
            return initProducerId(body, on: loop).map { frame($0) }
        case .findCoordinator:
            return now(
                FindCoordinatorResponse(
                    errorCode: .coordinatorNotAvailable, errorMessage: "consumer groups are not served yet",
                    nodeId: -1, host: "", port: -1))
        case .joinGroup:
            return now(
                JoinGroupResponse(
                    errorCode: .coordinatorNotAvailable, generationId: -1, protocolName: "", leader: "", memberId: "",
                    members: []))
        case .syncGroup:
            return now(SyncGroupResponse(errorCode: .coordinatorNotAvailable, assignment: ByteBuffer()))
        case .heartbeat:
            return now(HeartbeatResponse(errorCode: .coordinatorNotAvailable))
        case .leaveGroup:
            return now(LeaveGroupResponse(errorCode: .coordinatorNotAvailable))
        case .offsetCommit(let body):
            return now(
                OffsetCommitResponse(
                    topics: body.topics.map { topic in
                        .init(
                            name: topic.name,
                            partitions: topic.partitions.map {
                                .init(partitionIndex: $0.partitionIndex, errorCode: .coordinatorNotAvailable)
                            })
                    }))
        case .offsetFetch:
            return now(OffsetFetchResponse(topics: [], errorCode: .coordinatorNotAvailable))
        case .describeGroups(let body):
            return now(
                DescribeGroupsResponse(
                    groups: body.groups.map {
                        .init(
                            errorCode: .coordinatorNotAvailable, groupId: $0, groupState: "", protocolType: "",
                            protocolData: "", members: [], authorizedOperations: Int32.min)
                    }))
        case .listGroups:
            return now(ListGroupsResponse(errorCode: .coordinatorNotAvailable, groups: []))
        }
    }
}
