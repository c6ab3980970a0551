import KafkaProtocol

/// One configuration entry of a topic, as DescribeConfigs returns it.
public struct ConfigEntry: Sendable, Equatable {
    /// The configuration name, e.g. `retention.ms`.
    public var name: String
    /// The value; nil when the broker hides it (sensitive) or has none.
    public var value: String?
    /// Whether the value is the default (config source 5) rather than set on the topic.
    public var isDefault: Bool
    /// Whether the value cannot be changed.
    public var isReadOnly: Bool

    /// Creates a value with every field given.
    public init(name: String, value: String?, isDefault: Bool, isReadOnly: Bool) {
        self.name = name
        self.value = value
        self.isDefault = isDefault
        self.isReadOnly = isReadOnly
    }
}

extension KeelClient {
    /// Creates `name` with `partitions` partitions of `replicationFactor` replicas (-1: the broker's default) and
    /// `configs` overrides.
    ///
    /// Sent to the controller when the metadata names one, else to any broker. Throws
    /// `.broker(TOPIC_ALREADY_EXISTS, …)` if the topic exists.
    public func createTopic(
        _ name: String,
        partitions: Int32 = 1,
        replicationFactor: Int16 = -1,
        configs: [String: String] = [:],
        timeoutMs: Int32 = 30_000
    ) async throws(KeelClientError) {
        guard !name.isEmpty else { throw .invalidArgument("a topic name must not be empty") }
        guard partitions >= 1 else { throw .invalidArgument("a topic needs at least one partition") }
        guard replicationFactor >= 1 || replicationFactor == -1 else {
            throw .invalidArgument("the replication factor must be at least 1 (or -1: the broker's default)")
        }
        let request = CreateTopicsRequest(
            topics: [
                CreateTopicsRequest.Topic(
                    name: name, numPartitions: partitions, replicationFactor: replicationFactor, assignments: [],
                    configs: configs.sorted { $0.key < $1.key }.map { .init(name: $0.key, value: $0.value) })
            ],
            timeoutMs: timeoutMs, validateOnly: false)
        let response = try await withRetries { () async throws(KeelClientError) -> CreateTopicsResponse in
            let connection = try await self.controllerConnection()
            return try await connection.send(
                request, timeoutMs: self.configuration.requestTimeoutMs + Int64(timeoutMs))
        } onRetriable: { _ in
            _ = try? await self.refreshMetadata(topics: [])
        }
        guard let result = response.topics.first(where: { $0.name == name }) else {
            throw .protocolViolation("CreateTopics answer does not mention '\(name)'")
        }
        guard result.errorCode == .none else {
            throw .broker(result.errorCode, context: result.errorMessage ?? "create topic '\(name)'")
        }
        invalidate(topic: name)
    }

    /// Deletes `name`.
    public func deleteTopic(_ name: String, timeoutMs: Int32 = 30_000) async throws(KeelClientError) {
        let request = DeleteTopicsRequest(topicNames: [name], timeoutMs: timeoutMs)
        let response = try await withRetries { () async throws(KeelClientError) -> DeleteTopicsResponse in
            let connection = try await self.controllerConnection()
            return try await connection.send(
                request, timeoutMs: self.configuration.requestTimeoutMs + Int64(timeoutMs))
        } onRetriable: { _ in
            _ = try? await self.refreshMetadata(topics: [])
        }
        guard let result = response.responses.first(where: { $0.name == name }) else {
            throw .protocolViolation("DeleteTopics answer does not mention '\(name)'")
        }
        guard result.errorCode == .none else {
            if result.errorCode == .unknownTopicOrPartition { throw .unknownTopic(name) }
            throw .broker(result.errorCode, context: "delete topic '\(name)'")
        }
        invalidate(topic: name)
    }

    /// Every topic in the cluster, sorted by name (internal topics included).
    public func listTopics() async throws(KeelClientError) -> [TopicInfo] {
        let view = try await refreshMetadata(topics: nil)
        return view.topics.values.sorted { $0.name < $1.name }
    }

    /// The partitions, leaders and replicas of `name`, fresh from the cluster (never creates it).
    public func describeTopic(_ name: String) async throws(KeelClientError) -> TopicInfo {
        let view = try await refreshMetadata(topics: [name], allowAutoTopicCreation: false)
        guard let info = view.topics[name] else { throw .unknownTopic(name) }
        return info
    }

    /// The configuration of topic `name` (all keys, defaults included), sorted by name.
    public func describeConfigs(topic name: String) async throws(KeelClientError) -> [ConfigEntry] {
        let request = DescribeConfigsRequest(
            resources: [.init(resourceType: 2, resourceName: name, configurationKeys: nil)], includeSynonyms: false)
        let response = try await withRetries { () async throws(KeelClientError) -> DescribeConfigsResponse in
            let connection = try await self.anyConnection()
            return try await connection.send(request, timeoutMs: self.configuration.requestTimeoutMs)
        }
        guard let result = response.results.first(where: { $0.resourceName == name }) else {
            throw .protocolViolation("DescribeConfigs answer does not mention '\(name)'")
        }
        guard result.errorCode == .none else {
            if result.errorCode == .unknownTopicOrPartition { throw .unknownTopic(name) }
            throw .broker(result.errorCode, context: result.errorMessage ?? "describe configs of '\(name)'")
        }
        return result.configs.map {
            ConfigEntry(name: $0.name, value: $0.value, isDefault: $0.configSource == 5, isReadOnly: $0.readOnly)
        }.sorted { $0.name < $1.name }
    }

    /// The controller's connection if the metadata names a controller, else any broker's.
    private func controllerConnection() async throws(KeelClientError) -> BrokerConnection {
        if metadata.brokers.isEmpty { _ = try await refreshMetadata(topics: []) }
        if metadata.controllerId >= 0, metadata.brokers[metadata.controllerId] != nil {
            return try await connection(toNode: metadata.controllerId)
        }
        return try await anyConnection()
    }
}
