import KafkaProtocol
import LogStorage
import NIOCore

// Metadata, CreateTopics, DeleteTopics, DescribeConfigs and InitProducerId.

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

    // MARK: Create

    /// Creates a topic: checks, opens its partitions, persists the metadata, then answers.
    func createTopic(
        name: String, partitions: Int32, overrides: [String: String], validateOnly: Bool, on loop: any EventLoop
    ) -> EventLoopFuture<(ErrorCode, String?)> {
        if let problem = Self.topicNameProblem(name) {
            return loop.makeSucceededFuture((.invalidTopicException, problem))
        }
        guard partitions >= 1, partitions <= Self.partitionsMax else {
            return loop.makeSucceededFuture(
                (.invalidPartitions, "number of partitions \(partitions) must be in 1...\(Self.partitionsMax)"))
        }
        let topicConfig: TopicConfig
        do throws(TopicConfigError) {
            topicConfig = try config.topicDefaults.applying(overrides)
        } catch {
            return loop.makeSucceededFuture((.invalidConfig, error.description))
        }
        let reserved = registry.withLock { registry -> Bool in
            guard registry.topics[name] == nil, !registry.busy.contains(name) else { return false }
            if !validateOnly { registry.busy.insert(name) }
            return true
        }
        guard reserved else { return loop.makeSucceededFuture((.topicAlreadyExists, "topic \(name) already exists")) }
        if validateOnly { return loop.makeSucceededFuture((.none, nil)) }
        let store = environment.metadataStore
        return openTopic(name: name, partitions: partitions, config: topicConfig, overrides: overrides, on: loop)
            .flatMap { state -> EventLoopFuture<(ErrorCode, String?)> in
                let snapshot = self.registry.withLock { registry -> BrokerMetadata? in
                    registry.busy.remove(name)
                    // A shutdown that came meanwhile has closed every registered partition:
                    // these were not registered, so they are closed here.
                    guard !self.isShutDown.load(ordering: .sequentiallyConsistent) else { return nil }
                    registry.topics[name] = state
                    registry.generation += 1
                    return registry.snapshot()
                }
                guard let snapshot else {
                    let closed = state.partitions.map { self.close($0, on: loop) }
                    return EventLoopFuture.andAllComplete(closed, on: loop).map {
                        (ErrorCode.unknownServerError, "the broker is shutting down")
                    }
                }
                let configs = overrides.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                self.logger.info("topic \(name) created with \(partitions) partitions\(configs.isEmpty ? "" : " (" + configs + ")")")
                return store.save(snapshot, on: loop).map { (ErrorCode.none, nil) }.recover { error in
                    self.logger.error("topic \(name): metadata not persisted: \(error)")
                    return (.unknownServerError, "topic created but not persisted: \(error)")
                }
            }
            .recover { error in
                self.registry.withLock { _ = $0.busy.remove(name) }
                self.logger.error("topic \(name): creation failed: \(error)")
                return (ErrorCode.unknownServerError, "could not create the partitions: \(error)")
            }
    }

    func createTopics(_ request: CreateTopicsRequest, on loop: any EventLoop) -> EventLoopFuture<CreateTopicsResponse> {
        var seen: [String: Int] = [:]
        for topic in request.topics { seen[topic.name, default: 0] += 1 }
        let answers = request.topics.map { topic -> EventLoopFuture<CreateTopicsResponse.Topic> in
            func answer(_ code: ErrorCode, _ message: String?) -> EventLoopFuture<CreateTopicsResponse.Topic> {
                loop.makeSucceededFuture(.init(name: topic.name, errorCode: code, errorMessage: message))
            }
            if seen[topic.name, default: 0] > 1 { return answer(.invalidRequest, "topic named twice in one request") }
            var partitions = topic.numPartitions
            if !topic.assignments.isEmpty {
                let valid =
                    topic.assignments.allSatisfy { $0.brokerIds == [config.nodeId] }
                    && Set(topic.assignments.map(\.partitionIndex)) == Set(0..<Int32(topic.assignments.count))
                guard valid, topic.numPartitions == -1 else {
                    return answer(
                        ErrorCode(39), "assignments must name partitions 0..n-1 on node \(config.nodeId) only")
                }
                partitions = Int32(topic.assignments.count)
            } else if topic.numPartitions == -1 {
                partitions = config.defaultPartitions
            }
            guard topic.replicationFactor == 1 || topic.replicationFactor == -1 || !topic.assignments.isEmpty else {
                return answer(
                    .invalidReplicationFactor,
                    "replication factor \(topic.replicationFactor) is larger than the 1 available node")
            }
            var overrides: [String: String] = [:]
            for entry in topic.configs {
                guard let value = entry.value else {
                    return answer(.invalidConfig, "config \(entry.name) has no value")
                }
                overrides[entry.name] = value
            }
            return createTopic(
                name: topic.name, partitions: partitions, overrides: overrides, validateOnly: request.validateOnly,
                on: loop
            ).map { .init(name: topic.name, errorCode: $0.0, errorMessage: $0.1) }
        }
        return EventLoopFuture.whenAllSucceed(answers, on: loop).map { CreateTopicsResponse(topics: $0) }
    }

    // MARK: Delete

    func deleteTopics(_ request: DeleteTopicsRequest, on loop: any EventLoop) -> EventLoopFuture<DeleteTopicsResponse> {
        let store = environment.metadataStore
        let answers = request.topicNames.map { name -> EventLoopFuture<DeleteTopicsResponse.Result> in
            let taken = registry.withLock { registry -> (TopicState, BrokerMetadata)? in
                guard !registry.busy.contains(name), let state = registry.topics.removeValue(forKey: name) else {
                    return nil
                }
                registry.busy.insert(name)
                registry.generation += 1
                return (state, registry.snapshot())
            }
            guard let (state, snapshot) = taken else {
                return loop.makeSucceededFuture(.init(name: name, errorCode: .unknownTopicOrPartition))
            }
            let closed = state.partitions.map { self.close($0, on: loop) }
            return EventLoopFuture.andAllComplete(closed, on: loop)
                .flatMap { store.save(snapshot, on: loop) }
                .flatMap {
                    let removals = state.partitions.map {
                        store.removePartitionDirectory(
                            self.partitionDirectory(topic: name, partition: $0.index), on: loop)
                    }
                    return EventLoopFuture.andAllSucceed(removals, on: loop)
                }
                .map { _ -> DeleteTopicsResponse.Result in
                    self.logger.info("topic \(name) deleted")
                    return .init(name: name, errorCode: .none)
                }
                .recover { error in
                    self.logger.error("topic \(name): deletion incomplete: \(error)")
                    return .init(name: name, errorCode: .unknownServerError)
                }
                .always { _ in self.registry.withLock { _ = $0.busy.remove(name) } }
        }
        return EventLoopFuture.whenAllSucceed(answers, on: loop).map { DeleteTopicsResponse(responses: $0) }
    }

    // MARK: Metadata

    func metadata(_ request: MetadataRequest, on loop: any EventLoop) -> EventLoopFuture<MetadataResponse> {
        let brokers = [
            MetadataResponse.Broker(
                nodeId: config.nodeId, host: config.advertisedHost, port: config.advertisedPort, rack: nil)
        ]
        let names: [String]
        if let topics = request.topics {
            names = topics.map(\.name)
        } else {
            names = registry.withLock { $0.topics.keys.sorted() }
        }
        let autoCreate = request.allowAutoTopicCreation && config.autoCreateTopics
        let described = names.map { name -> EventLoopFuture<MetadataResponse.Topic> in
            if let state = topic(name) { return loop.makeSucceededFuture(describe(state)) }
            if Self.topicNameProblem(name) != nil {
                return loop.makeSucceededFuture(
                    .init(errorCode: .invalidTopicException, name: name, isInternal: false, partitions: []))
            }
            guard autoCreate else {
                return loop.makeSucceededFuture(
                    .init(errorCode: .unknownTopicOrPartition, name: name, isInternal: false, partitions: []))
            }
            return createTopic(
                name: name, partitions: config.defaultPartitions, overrides: [:], validateOnly: false, on: loop
            ).map { code, _ in
                if let state = self.topic(name) { return self.describe(state) }
                // Being created by another request, or failed: the client asks again.
                let error: ErrorCode = code == .topicAlreadyExists || code == .none ? .leaderNotAvailable : code
                return .init(errorCode: error, name: name, isInternal: false, partitions: [])
            }
        }
        return EventLoopFuture.whenAllSucceed(described, on: loop).map { topics in
            MetadataResponse(
                brokers: brokers, clusterId: self.config.clusterId, controllerId: self.config.nodeId, topics: topics)
        }
    }

    func describe(_ state: TopicState) -> MetadataResponse.Topic {
        let node = config.nodeId
        return .init(
            name: state.name, isInternal: false,
            partitions: state.partitions.map {
                .init(partitionIndex: $0.index, leaderId: node, replicaNodes: [node], isrNodes: [node])
            })
    }

    // MARK: DescribeConfigs

    /// Resource types of DescribeConfigs.
    static let topicResource: Int8 = 2
    static let brokerResource: Int8 = 4

    func describeConfigs(_ request: DescribeConfigsRequest) -> DescribeConfigsResponse {
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
                guard let state = topic(resource.resourceName) else {
                    return result(.unknownTopicOrPartition, "topic \(resource.resourceName) does not exist", [])
                }
                let configs = TopicConfig.describedNames.filter { wanted?.contains($0) ?? true }.map { name in
                    DescribeConfigsResponse.Result.Config(
                        name: name, value: state.config.value(of: name),
                        readOnly: !TopicConfig.settableNames.contains(name),
                        configSource: state.overrides[name] != nil ? 1 : 5, isSensitive: false, synonyms: [])
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

    /// Hands out a producer id (epoch 0). Ids come from blocks whose end is persisted before
    /// any id of the block is given out, so ids stay unique across restarts.
    func initProducerId(_ request: InitProducerIdRequest, on loop: any EventLoop)
        -> EventLoopFuture<InitProducerIdResponse>
    {
        if request.transactionalId != nil {
            return loop.makeSucceededFuture(
                InitProducerIdResponse(errorCode: .invalidRequest, producerId: -1, producerEpoch: -1))
        }
        let (id, snapshot) = registry.withLock { registry -> (Int64, BrokerMetadata?) in
            if registry.producerIdNext >= registry.producerIdBlockEnd {
                registry.producerIdBlockEnd = registry.producerIdNext + Self.producerIdBlockSize
                registry.generation += 1
            }
            let id = registry.producerIdNext
            registry.producerIdNext += 1
            return (id, id < registry.producerIdPersistedEnd ? nil : registry.snapshot())
        }
        guard let snapshot else {
            return loop.makeSucceededFuture(InitProducerIdResponse(producerId: id, producerEpoch: 0))
        }
        return environment.metadataStore.save(snapshot, on: loop).map {
            self.registry.withLock {
                $0.producerIdPersistedEnd = max($0.producerIdPersistedEnd, snapshot.producerIdBlockEnd)
            }
            return InitProducerIdResponse(producerId: id, producerEpoch: 0)
        }.recover { error in
            self.logger.error("producer id block not persisted: \(error)")
            return InitProducerIdResponse(errorCode: .unknownServerError, producerId: -1, producerEpoch: -1)
        }
    }
}
