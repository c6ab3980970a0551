// KeelClient: the native async Swift client for Keel (and any Kafka broker speaking the
// versions in ../../../shared/PROTOCOL.md §3).
//
// What it owns: connections to brokers over SwiftNIO (one per broker, requests pipelined
// and answered in order, ApiVersions negotiated on connect), a metadata cache (brokers,
// topics, partition leaders) refreshed when an answer says it is stale, the admin calls
// (create / delete / list / describe topics, describe configs), the producer (batching by
// size and linger, LZ4, acks, retries, idempotence with per-partition sequence numbers,
// Kafka's murmur2 partitioner), the partition consumer (Fetch, ListOffsets, records as
// an AsyncSequence), the group consumer (Kafka's classic group protocol with the "consumer"
// embedded protocol, range / roundrobin assignors, heartbeats in the background, auto or
// manual commits, seek) and group administration (list, describe, delete, offsets).
//
// What it must never do: trap on bytes from the network (every answer is decoded with
// typed errors), block an event loop, or lose a record silently: every record handed to
// the producer ends in an offset or a `KeelClientError`.
//
// In use:
//
//     let client = try KeelClient(bootstrap: "127.0.0.1:9092")
//     try await client.createTopic("orders", partitions: 3)
//     let producer = try await KeelProducer(client: client)   // acks=all, idempotent, LZ4
//     let offset = try await producer.send(topic: "orders", key: ByteBuffer(string: "alice"),
//                                          value: ByteBuffer(string: "{\"total\":12}"))
//     for try await record in client.partitionConsumer(topic: "orders", partition: 0, from: .zero) {
//         print(record.offset, String(buffer: record.value ?? ByteBuffer()))
//     }
//
//     let consumer = try KeelConsumer(client: client, configuration: ConsumerConfiguration(groupId: "billing"))
//     try await consumer.subscribe(["orders"])
//     for try await record in consumer.records() { handle(record) }   // auto-commit, at least once
//     await consumer.close()
//
// Main types: `KeelClient` (an actor: connections, metadata, admin, fetch, list offsets),
// `KeelProducer` (an actor: the produce path), `PartitionConsumer` (an AsyncSequence of
// `ConsumerRecord`), `KeelConsumer` (an actor: a consumer-group member; GroupConsumer.swift),
// `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment`, `PartitionAssignor`,
// `KeelClientError`, `ClusterMetadata`, `Partitioner`. Internals:
// `BrokerConnection` + `KafkaClientHandler` (NIO), `ResponseMatcher` (in-order matching),
// `RecordAccumulator` (pure batching state).

import KafkaProtocol
import NIOCore

/// Settings of a `KeelClient`; every limit names its unit.
public struct KeelClientConfiguration: Sendable {
    /// Where to fetch the first metadata from.
    public var bootstrap: [BrokerAddress]
    /// The client id sent in every request header.
    public var clientId: String = "keel"
    /// How long a TCP connect may take, in milliseconds.
    public var connectTimeoutMs: Int64 = 10_000
    /// How long a request may wait for its answer, in milliseconds (Fetch adds its own wait).
    public var requestTimeoutMs: Int64 = 30_000
    /// How many times a metadata, admin or fetch request is retried after a retriable error.
    public var retriesMax: Int = 5
    /// The pause before a retry, in milliseconds (doubled each time, up to 1 s).
    public var retryBackoffMs: Int64 = 100
    /// Whether a Metadata request for an unknown topic may create it (Kafka's default is yes).
    public var allowAutoTopicCreation: Bool = true

    /// Creates a configuration for `bootstrap`.
    public init(bootstrap: [BrokerAddress]) {
        self.bootstrap = bootstrap
    }

    /// Creates a configuration from `host:port[,host:port...]`.
    public init(bootstrap: String) throws(KeelClientError) {
        self.bootstrap = try BrokerAddress.parseList(bootstrap)
    }
}

/// A connection to a Keel (or Kafka) cluster: connections per broker, the metadata cache,
/// admin calls, fetch and list offsets. Create producers with `makeProducer`.
public actor KeelClient {
    /// The settings this client was created with.
    public let configuration: KeelClientConfiguration
    /// The latest metadata the client has seen.
    public private(set) var metadata = ClusterMetadata()
    private var connections: [BrokerAddress: BrokerConnection] = [:]
    private var connecting: [BrokerAddress: Task<Result<BrokerConnection, KeelClientError>, Never>] = [:]
    private var isClosed = false

    /// Creates a client; nothing connects until the first call.
    public init(configuration: KeelClientConfiguration) {
        self.configuration = configuration
    }

    /// Creates a client for `host:port[,host:port...]` with default settings.
    public init(bootstrap: String) throws(KeelClientError) {
        self.configuration = try KeelClientConfiguration(bootstrap: bootstrap)
    }

    /// Closes every connection; later calls fail with `.closed`.
    public func close() {
        isClosed = true
        for connection in connections.values { connection.close() }
        connections = [:]
    }

    // MARK: Connections

    /// A live connection to `address`, made (and negotiated) if needed. Concurrent callers share one attempt.
    func connection(to address: BrokerAddress) async throws(KeelClientError) -> BrokerConnection {
        guard !isClosed else { throw .closed }
        if let existing = connections[address], existing.isActive { return existing }
        connections[address] = nil
        let task: Task<Result<BrokerConnection, KeelClientError>, Never>
        if let running = connecting[address] {
            task = running
        } else {
            let configuration = self.configuration
            task = Task {
                do throws(KeelClientError) {
                    return .success(
                        try await BrokerConnection.connect(
                            to: address, clientId: configuration.clientId,
                            connectTimeoutMs: configuration.connectTimeoutMs,
                            requestTimeoutMs: configuration.requestTimeoutMs))
                } catch {
                    return .failure(error)
                }
            }
            connecting[address] = task
        }
        let result = await task.value
        connecting[address] = nil
        let connection = try result.get()
        if isClosed {
            connection.close()
            throw .closed
        }
        if let winner = connections[address], winner.isActive, winner !== connection {
            return winner
        }
        connections[address] = connection
        return connection
    }

    /// A connection to node `nodeId`, looked up in the metadata (refreshed once if unknown).
    func connection(toNode nodeId: Int32) async throws(KeelClientError) -> BrokerConnection {
        if metadata.brokers[nodeId] == nil { _ = try await refreshMetadata(topics: []) }
        guard let address = metadata.brokers[nodeId] else {
            throw .protocolViolation("metadata names no broker with node id \(nodeId)")
        }
        return try await connection(to: address)
    }

    /// Any working connection: an open one if there is one, else the bootstrap addresses and
    /// then the known brokers, in order.
    func anyConnection() async throws(KeelClientError) -> BrokerConnection {
        if let open = connections.values.first(where: { $0.isActive }) { return open }
        var lastError = KeelClientError.connectFailed(address: "", reason: "no bootstrap address")
        var candidates = configuration.bootstrap
        for address in metadata.brokers.values.sorted(by: { $0.description < $1.description })
        where !candidates.contains(address) {
            candidates.append(address)
        }
        for address in candidates {
            do {
                return try await connection(to: address)
            } catch {
                if error == .closed { throw error }
                lastError = error
            }
        }
        throw lastError
    }

    /// The connection to the leader of `topic`-`partition`, refreshing metadata when the leader is unknown.
    func leaderConnection(topic: String, partition: Int32) async throws(KeelClientError) -> BrokerConnection {
        var leader = metadata.leader(topic: topic, partition: partition)
        if leader == nil {
            let info = try await topicInfo(topic, refresh: true)
            guard info.partitions.contains(where: { $0.partition == partition }) else {
                throw .unknownPartition(topic: topic, partition: partition)
            }
            leader = metadata.leader(topic: topic, partition: partition)
        }
        guard let leader else { throw .leaderNotAvailable(topic: topic, partition: partition) }
        return try await connection(toNode: leader)
    }

    // MARK: Metadata

    /// Asks the cluster for metadata: `topics` nil for every topic, empty for brokers only.
    @discardableResult
    public func refreshMetadata(
        topics: [String]?,
        allowAutoTopicCreation: Bool = false
    ) async throws(KeelClientError) -> ClusterMetadata {
        let request = MetadataRequest(
            topics: topics?.map { MetadataRequest.Topic(name: $0) }, allowAutoTopicCreation: allowAutoTopicCreation)
        let response = try await withRetries { () async throws(KeelClientError) -> MetadataResponse in
            let connection = try await self.anyConnection()
            return try await connection.send(request, timeoutMs: self.configuration.requestTimeoutMs)
        }
        metadata.apply(response, replacingTopics: topics == nil)
        return metadata
    }

    /// The metadata of `topic`: from the cache unless `refresh`; throws `unknownTopic` if it does not exist.
    public func topicInfo(_ topic: String, refresh: Bool = false) async throws(KeelClientError) -> TopicInfo {
        if !refresh, let cached = metadata.topics[topic], !cached.partitions.isEmpty { return cached }
        var attempt = 0
        while true {
            try await refreshMetadata(topics: [topic], allowAutoTopicCreation: configuration.allowAutoTopicCreation)
            if let info = metadata.topics[topic], !info.partitions.isEmpty,
                info.partitions.allSatisfy({ $0.leader >= 0 })
            {
                return info
            }
            // A topic just auto-created may answer LEADER_NOT_AVAILABLE for a moment.
            attempt += 1
            guard attempt <= configuration.retriesMax else {
                if let info = metadata.topics[topic], !info.partitions.isEmpty { return info }
                throw .unknownTopic(topic)
            }
            try await backoff(attempt: attempt)
        }
    }

    // MARK: Retries

    /// Runs `operation`, retrying retriable errors with exponential backoff, refreshing nothing
    /// itself; `onRetriable` may refresh metadata between attempts.
    func withRetries<T: Sendable>(
        _ operation: () async throws(KeelClientError) -> T,
        onRetriable: (KeelClientError) async -> Void = { _ in }
    ) async throws(KeelClientError) -> T {
        var attempt = 0
        while true {
            do {
                return try await operation()
            } catch {
                attempt += 1
                guard error.isRetriable, attempt <= configuration.retriesMax, !isClosed else { throw error }
                await onRetriable(error)
                try await backoff(attempt: attempt)
            }
        }
    }

    /// Sleeps `retryBackoffMs × 2^(attempt-1)`, at most 1 s.
    func backoff(attempt: Int) async throws(KeelClientError) {
        let shift = min(max(attempt - 1, 0), 10)
        let delayMs = min(configuration.retryBackoffMs << Int64(shift), 1_000)
        do {
            try await Task.sleep(for: .milliseconds(delayMs))
        } catch {
            throw .closed
        }
    }

    /// Forgets the cached leader of `topic` so the next call refreshes it.
    func invalidate(topic: String) {
        metadata.topics[topic] = nil
    }
}
