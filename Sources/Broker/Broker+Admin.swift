import KafkaProtocol
import LogStorage
import NIOCore
import Raft
import Replication

// Metadata, CreateTopics, DeleteTopics, DescribeConfigs and InitProducerId: answered from the applied cluster
// metadata, with changes sent to the controller (wherever it is) and answered once this node has applied them.

extension Broker {
    /// Why `name` is not a legal topic name (Kafka's rules), or nil.
    public static func topicNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "topic name is empty" }
        if name == "." || name == ".." { return "topic name cannot be '.' or '..'" }
        if name.utf8.count > 249 { return "topic name is longer than 249 characters" }
        let legal = name.utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
        return legal ? nil : "topic name \(name) may contain only ASCII letters, digits, '.', '_' and '-'"
    }

    /// The largest partition count a topic may have: each open partition holds three files
    /// (segment, offset index, time index) open.
    public static let partitionsMax: Int32 = 1000

    /// How long an admin change waits for the controller and for this node to apply it when the request names
    /// no timeout, in milliseconds.
    static let adminTimeoutMsDefault: Int64 = 30_000

    // MARK: Create

    /// Creates a topic through the controller and answers once this node has applied the creation (so that a
    /// Metadata request to this node right after the answer lists the topic).
    func createTopic(_ command: ControllerCommand, name: String, timeoutMs: Int64, on loop: any EventLoop)
        -> EventLoopFuture<(ErrorCode, String?)>
    {
        submitToController(command, timeoutMs: timeoutMs, on: loop).flatMap { result in
            switch result {
            case nil:
                return loop.makeSucceededFuture((.requestTimedOut, "no controller answered in \(timeoutMs) ms"))
            case .failure(let error)?:
                return loop.makeSucceededFuture((error.code, error.message))
            case .success?:
                let configs = self.configSummary(command)
                self.logger.info("topic \(name) created\(configs)")
                let start = self.environment.clock.now().value
                return self.waitForView(timeoutMs: timeoutMs, on: loop) { $0.state.topic(name) != nil }.flatMap {
                    visible in
                    guard visible else {
                        return loop.makeSucceededFuture((.requestTimedOut, "created, but not yet visible on this node"))
                    }
                    // Give the partitions a moment to elect their leaders, so that producing right after the answer
                    // works; the answer is a success either way (clients retry LEADER_NOT_AVAILABLE).
                    let remaining = timeoutMs - (self.environment.clock.now().value - start)
                    return self.waitForLeaders(of: name, timeoutMs: min(remaining, 5_000), on: loop).map { _ in
                        (.none, nil)
                    }
                }
            }
        }
    }

    /// Polls (every 10 ms, at most `timeoutMs`) until every partition of `topic` has a known leader that this node
    /// can name, and, for the partitions it leads itself, an open replica that serves; true if so.
    func waitForLeaders(of topic: String, timeoutMs: Int64, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let promise = loop.makePromise(of: Bool.self)
        let deadline = environment.clock.now().value + max(0, timeoutMs)
        @Sendable func poll() {
            let ready: Bool
            if let metadata = view.withLock({ $0.state.topic(topic) }) {
                ready = (0..<metadata.partitionCount).allSatisfy { partition in
                    let group = GroupID(topic: topic, partition: partition)
                    guard let known = knownLeader(of: group) else { return false }
                    return known.leader != nodeID || self.partition(topic, partition) != nil
                }
            } else {
                ready = false
            }
            if ready {
                promise.succeed(true)
            } else if environment.clock.now().value >= deadline {
                promise.succeed(false)
            } else {
                loop.scheduleTask(in: .milliseconds(10)) { poll() }
            }
        }
        poll()
        return promise.futureResult
    }

    func configSummary(_ command: ControllerCommand) -> String {
        let configs: [String: String]
        switch command {
        case .createTopic(_, _, _, let c), .createTopicWithAssignment(_, _, let c): configs = c
        default: return ""
        }
        if configs.isEmpty { return "" }
        return " (" + configs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + ")"
    }

    func createTopics(_ request: CreateTopicsRequest, on loop: any EventLoop) -> EventLoopFuture<CreateTopicsResponse> {
        var seen: [String: Int] = [:]
        for topic in request.topics { seen[topic.name, default: 0] += 1 }
        let timeoutMs = request.timeoutMs > 0 ? Int64(request.timeoutMs) : Self.adminTimeoutMsDefault
        let answers = request.topics.map { topic -> EventLoopFuture<CreateTopicsResponse.Topic> in
            func answer(_ code: ErrorCode, _ message: String?) -> EventLoopFuture<CreateTopicsResponse.Topic> {
                loop.makeSucceededFuture(.init(name: topic.name, errorCode: code, errorMessage: message))
            }
            if seen[topic.name, default: 0] > 1 { return answer(.invalidRequest, "topic named twice in one request") }
            var overrides: [String: String] = [:]
            for entry in topic.configs {
                guard let value = entry.value else { return answer(.invalidConfig, "config \(entry.name) has no value") }
                overrides[entry.name] = value
            }
            let command: ControllerCommand
            if !topic.assignments.isEmpty {
                let sorted = topic.assignments.sorted { $0.partitionIndex < $1.partitionIndex }
                guard topic.numPartitions == -1, topic.replicationFactor == -1,
                    sorted.map(\.partitionIndex) == Array(0..<Int32(sorted.count))
                else {
                    return answer(
                        .invalidRequest,
                        "with assignments, partitions and replication factor must be -1 and partitions 0..n-1 named")
                }
                command = .createTopicWithAssignment(
                    name: topic.name, assignment: sorted.map(\.brokerIds), configs: overrides)
            } else {
                let partitions = topic.numPartitions == -1 ? config.defaultPartitions : topic.numPartitions
                command = .createTopic(
                    name: topic.name, partitions: partitions, replicationFactor: topic.replicationFactor,
                    configs: overrides)
            }
            if request.validateOnly {
                // Checked against this node's view of the metadata; nothing is proposed.
                let state = view.withLock { $0.state }
                let machine = ControllerStateMachine(
                    topicDefaults: config.topicDefaults, defaultPartitions: config.defaultPartitions,
                    defaultReplicationFactor: config.defaultReplicationFactor)
                do throws(ControllerError) {
                    _ = try machine.decide(command, in: state)
                    return answer(.none, nil)
                } catch {
                    return answer(error.code, error.message)
                }
            }
            return createTopic(command, name: topic.name, timeoutMs: timeoutMs, on: loop).map {
                .init(name: topic.name, errorCode: $0.0, errorMessage: $0.1)
            }
        }
        return EventLoopFuture.whenAllSucceed(answers, on: loop).map { CreateTopicsResponse(topics: $0) }
    }

    // MARK: Delete

    func deleteTopics(_ request: DeleteTopicsRequest, on loop: any EventLoop) -> EventLoopFuture<DeleteTopicsResponse> {
        let timeoutMs = request.timeoutMs > 0 ? Int64(request.timeoutMs) : Self.adminTimeoutMsDefault
        let answers = request.topicNames.map { name -> EventLoopFuture<DeleteTopicsResponse.Result> in
            submitToController(.deleteTopic(name: name), timeoutMs: timeoutMs, on: loop).flatMap { result in
                switch result {
                case nil:
                    return loop.makeSucceededFuture(.init(name: name, errorCode: .requestTimedOut))
                case .failure(let error)?:
                    return loop.makeSucceededFuture(.init(name: name, errorCode: error.code))
                case .success?:
                    self.logger.info("topic \(name) deleted")
                    return self.waitForView(timeoutMs: timeoutMs, on: loop) { $0.state.topic(name) == nil }.flatMap {
                        visible in
                        guard visible else {
                            return loop.makeSucceededFuture(.init(name: name, errorCode: .requestTimedOut))
                        }
                        // This node's replicas are closed and their directories gone before the answer.
                        return self.waitForLocalRemoval(of: name, timeoutMs: timeoutMs, on: loop).map {
                            .init(name: name, errorCode: $0 ? .none : .requestTimedOut)
                        }
                    }
                }
            }
        }
        return EventLoopFuture.whenAllSucceed(answers, on: loop).map { DeleteTopicsResponse(responses: $0) }
    }

    /// Polls (every 10 ms, at most `timeoutMs`) until this node holds no replica of `topic` any more; true if so.
    func waitForLocalRemoval(of topic: String, timeoutMs: Int64, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let promise = loop.makePromise(of: Bool.self)
        let deadline = environment.clock.now().value + timeoutMs
        let reconciler = self.reconciler
        @Sendable func poll() {
            homeLoop.submit { () -> Bool in
                let state = reconciler.value
                return !state.hosted.contains { $0.topic == topic } && !state.removing.contains { $0.topic == topic }
            }.whenComplete { result in
                if case .success(true) = result {
                    promise.succeed(true)
                } else if self.environment.clock.now().value >= deadline {
                    promise.succeed(false)
                } else {
                    loop.scheduleTask(in: .milliseconds(10)) { poll() }
                }
            }
        }
        poll()
        return promise.futureResult
    }

    // MARK: Metadata

    func metadata(_ request: MetadataRequest, on loop: any EventLoop) -> EventLoopFuture<MetadataResponse> {
        let current = view.withLock { $0 }
        let brokers = brokerList(current.state)
        let names: [String]
        if let topics = request.topics {
            names = topics.map(\.name)
        } else {
            names = current.state.topicNames
        }
        let autoCreate = request.allowAutoTopicCreation && config.autoCreateTopics
        let described = names.map { name -> EventLoopFuture<MetadataResponse.Topic> in
            if let topic = current.state.topic(name) { return loop.makeSucceededFuture(describe(topic)) }
            if Self.topicNameProblem(name) != nil || name == ControllerStateMachine.metadataTopic {
                return loop.makeSucceededFuture(
                    .init(errorCode: .invalidTopicException, name: name, isInternal: false, partitions: []))
            }
            // Before this node has caught up, an unknown topic may simply not be applied here yet.
            guard current.caughtUp else {
                return loop.makeSucceededFuture(
                    .init(errorCode: .leaderNotAvailable, name: name, isInternal: false, partitions: []))
            }
            guard autoCreate else {
                return loop.makeSucceededFuture(
                    .init(errorCode: .unknownTopicOrPartition, name: name, isInternal: false, partitions: []))
            }
            let command = ControllerCommand.createTopic(
                name: name, partitions: config.defaultPartitions, replicationFactor: -1, configs: [:])
            return createTopic(command, name: name, timeoutMs: 5_000, on: loop).map { code, _ in
                if let topic = self.view.withLock({ $0.state.topic(name) }) { return self.describe(topic) }
                // Being created by another request, or failed: the client asks again.
                let error: ErrorCode = code == .topicAlreadyExists || code == .none ? .leaderNotAvailable : code
                return .init(errorCode: error, name: name, isInternal: false, partitions: [])
            }
        }
        // Every node forwards admin requests to the controller, so while the controller is unknown (an election,
        // or this node still starting) this node names itself, as KRaft brokers name a live broker: a client that
        // hears "-1" waits for a later metadata refresh before it sends CreateTopics at all (librdkafka: seconds).
        let controller = controllerId ?? config.nodeId
        return EventLoopFuture.whenAllSucceed(described, on: loop).map { topics in
            MetadataResponse(brokers: brokers, clusterId: self.config.clusterId, controllerId: controller, topics: topics)
        }
    }

    /// Every registered node, as clients reach it; this node itself even before its registration is applied.
    func brokerList(_ state: ClusterMetadataState) -> [MetadataResponse.Broker] {
        var brokers = state.nodeIds.compactMap { id -> MetadataResponse.Broker? in
            guard let node = state.nodes[id] else { return nil }
            return .init(nodeId: id, host: node.clientHost, port: node.clientPort, rack: nil)
        }
        if state.nodes[config.nodeId] == nil {
            brokers.append(
                .init(nodeId: config.nodeId, host: config.advertisedHost, port: config.advertisedPort, rack: nil))
        }
        return brokers
    }

    /// A topic's partitions with the leader each is best known to have (LEADER_NOT_AVAILABLE while none is).
    func describe(_ topic: TopicMetadata) -> MetadataResponse.Topic {
        .init(
            name: topic.name, isInternal: topic.name == OffsetsTopic.name,
            partitions: topic.assignment.enumerated().map { index, replicas in
                let group = GroupID(topic: topic.name, partition: Int32(index))
                guard let known = knownLeader(of: group) else {
                    return .init(
                        errorCode: .leaderNotAvailable, partitionIndex: Int32(index), leaderId: -1,
                        replicaNodes: replicas, isrNodes: replicas)
                }
                let inSync = known.inSync.map { Int32(truncatingIfNeeded: $0.value) }
                return .init(
                    partitionIndex: Int32(index), leaderId: Int32(truncatingIfNeeded: known.leader.value),
                    replicaNodes: replicas, isrNodes: inSync.isEmpty ? replicas : inSync)
            })
    }

    // MARK: DescribeConfigs

    /// Resource types of DescribeConfigs.
    static let topicResource: Int8 = 2
    static let brokerResource: Int8 = 4

    func describeConfigs(_ request: DescribeConfigsRequest) -> DescribeConfigsResponse {
        let current = view.withLock { $0 }
        let results = request.resources.map { resource -> DescribeConfigsResponse.Result in
            func result(_ code: ErrorCode, _ message: String?, _ configs: [DescribeConfigsResponse.Result.Config])
                -> DescribeConfigsResponse.Result
            {
                .init(
                    errorCode: code, errorMessage: message, resourceType: resource.resourceType,
                    resourceName: resource.resourceName, configs: configs)
            }
            let wanted = resource.configurationKeys.map(Set.init)
            switch resource.resourceType {
            case Self.topicResource:
                guard let topic = current.state.topic(resource.resourceName),
                    let topicConfig = current.topicConfigs[resource.resourceName]
                else {
                    return result(.unknownTopicOrPartition, "topic \(resource.resourceName) does not exist", [])
                }
                let configs = TopicConfig.describedNames.filter { wanted?.contains($0) ?? true }.map { name in
                    DescribeConfigsResponse.Result.Config(
                        name: name, value: topicConfig.value(of: name),
                        readOnly: !TopicConfig.settableNames.contains(name),
                        configSource: topic.overrides[name] != nil ? 1 : 5, isSensitive: false, synonyms: [])
                }
                return result(.none, nil, configs)
            case Self.brokerResource:
                guard resource.resourceName.isEmpty || resource.resourceName == String(config.nodeId) else {
                    return result(.invalidRequest, "this is node \(config.nodeId)", [])
                }
                let configs = config.describedBrokerConfigs.filter { wanted?.contains($0.name) ?? true }.map {
                    DescribeConfigsResponse.Result.Config(
                        name: $0.name, value: $0.value, readOnly: true, configSource: 4, isSensitive: false,
                        synonyms: [])
                }
                return result(.none, nil, configs)
            default:
                return result(.invalidRequest, "resource type \(resource.resourceType) is not supported", [])
            }
        }
        return DescribeConfigsResponse(results: results)
    }

    // MARK: InitProducerId

    /// Hands out a producer id (epoch 0) from a block this node reserved from the controller; ids are unique
    /// cluster-wide and across restarts, since every block is a committed metadata record.
    func initProducerId(_ request: InitProducerIdRequest, on loop: any EventLoop)
        -> EventLoopFuture<InitProducerIdResponse>
    {
        if request.transactionalId != nil {
            return loop.makeSucceededFuture(
                InitProducerIdResponse(errorCode: .invalidRequest, producerId: -1, producerEpoch: -1))
        }
        return nextProducerId(on: loop).map { id in
            guard let id else {
                // Retriable: the client asks again (as Kafka answers while its id block is on its way).
                return InitProducerIdResponse(errorCode: .coordinatorLoadInProgress, producerId: -1, producerEpoch: -1)
            }
            return InitProducerIdResponse(producerId: id, producerEpoch: 0)
        }
    }

    func nextProducerId(on loop: any EventLoop) -> EventLoopFuture<Int64?> {
        let promise = loop.makePromise(of: Int64?.self)
        let (id, reserve) = producerIds.withLock { pool -> (Int64?, Bool) in
            if pool.next < pool.end {
                defer { pool.next += 1 }
                return (pool.next, false)
            }
            pool.waiting.append(promise)
            defer { pool.reserving = true }
            return (nil, !pool.reserving)
        }
        if let id {
            promise.succeed(id)
            return promise.futureResult
        }
        if reserve {
            submitToController(.allocateProducerIdBlock(size: Self.producerIdBlockSize), timeoutMs: 10_000, on: loop)
                .whenComplete { result in
                    let block: Range<Int64>?
                    if case .success(.some(.success(.producerIdBlock(let range)))) = result { block = range } else {
                        block = nil
                    }
                    let answers = self.producerIds.withLock { pool -> [(EventLoopPromise<Int64?>, Int64?)] in
                        pool.reserving = false
                        if let block {
                            pool.next = block.lowerBound
                            pool.end = block.upperBound
                        }
                        var answers: [(EventLoopPromise<Int64?>, Int64?)] = []
                        for waiting in pool.waiting {
                            if pool.next < pool.end {
                                answers.append((waiting, pool.next))
                                pool.next += 1
                            } else {
                                answers.append((waiting, nil))
                            }
                        }
                        pool.waiting = []
                        return answers
                    }
                    if block == nil { self.logger.warning("no producer id block from the controller yet") }
                    for (waiting, id) in answers { waiting.succeed(id) }
                }
        }
        return promise.futureResult
    }
}
