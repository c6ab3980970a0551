import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

/// Tests against an in-process broker whose answers each test scripts: retries, acks=0,
/// timeouts, out-of-order answers, and the admin calls librdkafka's mock cluster lacks.
final class ScriptedBrokerTests: XCTestCase {
    private static func produceAnswer(_ request: DecodedRequest, _ body: ProduceRequest, error: ErrorCode, base: Int64)
        -> ScriptedReply
    {
        .answer(
            request,
            ProduceResponse(
                responses: body.topicData.map { topic in
                    .init(
                        name: topic.name,
                        partitionResponses: topic.partitionData.map {
                            .init(
                                index: $0.index, errorCode: error, baseOffset: base, logAppendTimeMs: -1,
                                logStartOffset: 0)
                        })
                }))
    }

    private func client(_ broker: ScriptedBroker, requestTimeoutMs: Int64 = 5_000) throws -> KeelClient {
        var configuration = try KeelClientConfiguration(bootstrap: broker.bootstrap)
        configuration.requestTimeoutMs = requestTimeoutMs
        configuration.retryBackoffMs = 1
        return KeelClient(configuration: configuration)
    }

    private func produceRequests(_ broker: ScriptedBroker) -> [ProduceRequest] {
        broker.requests.compactMap { if case .produce(let body) = $0.request { body } else { nil } }
    }

    private func batchHeader(_ request: ProduceRequest) throws -> RecordBatchHeader {
        let records = try XCTUnwrap(request.topicData.first?.partitionData.first?.records)
        return try RecordBatchHeader.read(from: records, at: records.readerIndex)
    }

    /// A batch refused with NOT_LEADER_OR_FOLLOWER is sent again byte for byte (same producer
    /// id and sequence, so a broker can deduplicate it) after a metadata refresh, and the
    /// caller gets the offset of the successful attempt.
    func testRetriedBatchKeepsItsSequenceAndRefreshesMetadata() async throws {
        let attempts = LockedBox(0)
        let broker = try await ScriptedBroker { request in
            guard case .produce(let body) = request.request else { return nil }
            let attempt = attempts.withLock { count -> Int in
                count += 1
                return count
            }
            return [
                attempt == 1
                    ? Self.produceAnswer(request, body, error: .notLeaderOrFollower, base: -1)
                    : Self.produceAnswer(request, body, error: .none, base: 100)
            ]
        }
        let client = try client(broker)
        let producer = try await KeelProducer(client: client)
        let offset = try await producer.send(topic: "t", key: nil, value: ByteBuffer(string: "v"))
        XCTAssertEqual(offset, Offset(100))
        let produces = produceRequests(broker)
        XCTAssertEqual(produces.count, 2)
        XCTAssertEqual(
            produces[0].topicData.first?.partitionData.first?.records,
            produces[1].topicData.first?.partitionData.first?.records)
        let header = try batchHeader(produces[0])
        XCTAssertEqual(header.producerId, 4242)
        XCTAssertEqual(header.baseSequence, 0)
        XCTAssertEqual(header.attributes.codec, .lz4)
        let metadataRequests = broker.requests.filter { if case .metadata = $0.request { true } else { false } }
        XCTAssertGreaterThanOrEqual(metadataRequests.count, 2, "the refusal refreshed the metadata")
        await client.close()
        await broker.stop()
    }

    /// Successive batches of one partition carry consecutive sequence numbers from 0, and acks=all goes on the wire.
    func testBatchesCarryConsecutiveSequences() async throws {
        let next = LockedBox<Int64>(0)
        let broker = try await ScriptedBroker { request in
            guard case .produce(let body) = request.request else { return nil }
            let count = Int64(
                (try? RecordBatchHeader.read(from: body.topicData[0].partitionData[0].records!, at: 0))?.recordsCount
                    ?? 0)
            let base = next.withLock { value -> Int64 in
                defer { value += count }
                return value
            }
            return [Self.produceAnswer(request, body, error: .none, base: base)]
        }
        let client = try client(broker)
        let producer = try await KeelProducer(client: client)
        for round in 0..<3 {
            for index in 0..<(round + 2) {
                try await producer.enqueue(topic: "t", key: nil, value: ByteBuffer(string: "r\(round)-\(index)"))
            }
            try await producer.flush()
        }
        let headers = try produceRequests(broker).map { try batchHeader($0) }
        XCTAssertEqual(headers.map(\.baseSequence), [0, 2, 5])
        XCTAssertEqual(headers.map(\.recordsCount), [2, 3, 4])
        XCTAssertTrue(produceRequests(broker).allSatisfy { $0.acks == -1 })
        await client.close()
        await broker.stop()
    }

    /// A non-retriable error (MESSAGE_TOO_LARGE) fails the record at once, with one attempt.
    func testNonRetriableErrorFailsWithoutRetry() async throws {
        let broker = try await ScriptedBroker { request in
            guard case .produce(let body) = request.request else { return nil }
            return [Self.produceAnswer(request, body, error: .messageTooLarge, base: -1)]
        }
        let client = try client(broker)
        let producer = try await KeelProducer(client: client)
        do {
            _ = try await producer.send(topic: "t", key: nil, value: ByteBuffer(string: "big"))
            XCTFail("send must fail")
        } catch {
            XCTAssertEqual(error, .broker(.messageTooLarge, context: "produce"))
        }
        XCTAssertEqual(produceRequests(broker).count, 1)
        await client.close()
        await broker.stop()
    }

    /// With acks=0 the broker answers nothing: send returns offset -1, no InitProducerId is
    /// asked, and later requests on the same connection still match their answers.
    func testAcksZeroExpectsNoResponse() async throws {
        let broker = try await ScriptedBroker { request in
            if case .produce = request.request { return [] }
            return nil
        }
        let client = try client(broker)
        var configuration = ProducerConfiguration()
        configuration.acks = .none
        let producer = try await KeelProducer(client: client, configuration: configuration)
        let offset = try await producer.send(topic: "t", key: nil, value: ByteBuffer(string: "fire"))
        XCTAssertEqual(offset, Offset(-1))
        let info = try await client.describeTopic("t")
        XCTAssertEqual(info.partitions.count, 1)
        XCTAssertEqual(produceRequests(broker).first?.acks, 0)
        XCTAssertFalse(broker.requests.contains { if case .initProducerId = $0.request { true } else { false } })
        await client.close()
        await broker.stop()
    }

    /// A request left unanswered fails with requestTimedOut, and the requests behind it on the
    /// connection fail with connectionClosed rather than hang.
    func testTimeoutFailsTheRequestAndThoseBehindIt() async throws {
        let broker = try await ScriptedBroker { request in
            if case .listOffsets = request.request { return [] }
            return nil
        }
        let client = try client(broker, requestTimeoutMs: 300)
        _ = try await client.topicInfo("t")
        let connection = try await client.leaderConnection(topic: "t", partition: 0)
        let request = ListOffsetsRequest(
            replicaId: -1, isolationLevel: 0,
            topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -1)])])
        let version = try connection.version(for: .listOffsets)
        let first = connection.sendFrame(request, version: version, timeoutMs: 300, expectsResponse: true)
        let second = connection.sendFrame(request, version: version, timeoutMs: 60_000, expectsResponse: true)
        do {
            _ = try await BrokerConnection.await(first)
            XCTFail("must time out")
        } catch {
            XCTAssertEqual(error, .requestTimedOut(api: .listOffsets, timeoutMs: 300))
        }
        do {
            _ = try await BrokerConnection.await(second)
            XCTFail("must fail")
        } catch {
            XCTAssertEqual(error, .connectionClosed(address: broker.bootstrap))
        }
        await client.close()
        await broker.stop()
    }

    /// An answer that overtakes an earlier request's answer is a protocol violation: every
    /// pending request fails and the connection closes.
    func testOutOfOrderAnswersFailEveryPendingRequest() async throws {
        let held = LockedBox<DecodedRequest?>(nil)
        let broker = try await ScriptedBroker { request in
            guard case .listOffsets = request.request else { return nil }
            let answer = ListOffsetsResponse(
                topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -1, offset: 1)])])
            guard
                let earlier = held.withLock({ value -> DecodedRequest? in
                    defer { if value == nil { value = request } }
                    return value
                })
            else { return [] }
            return [.answer(request, answer), .answer(earlier, answer)]
        }
        let client = try client(broker)
        _ = try await client.topicInfo("t")
        let connection = try await client.leaderConnection(topic: "t", partition: 0)
        let request = ListOffsetsRequest(
            replicaId: -1, isolationLevel: 0,
            topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -1)])])
        let first = connection.sendFrame(request, version: 2, timeoutMs: 5_000, expectsResponse: true)
        let second = connection.sendFrame(request, version: 2, timeoutMs: 5_000, expectsResponse: true)
        for future in [first, second] {
            do {
                _ = try await BrokerConnection.await(future)
                XCTFail("must fail")
            } catch {
                guard case .protocolViolation = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertFalse(connection.isActive)
        await client.close()
        await broker.stop()
    }

    /// createTopic sends partitions, replication factor and configs; an existing topic is a
    /// typed error; deleteTopic and describeConfigs read their answers.
    func testAdminCallsCarryTheirArgumentsAndErrors() async throws {
        let created = LockedBox<Set<String>>([])
        let broker = try await ScriptedBroker { request in
            switch request.request {
            case .createTopics(let body):
                let topic = body.topics[0]
                let isNew = created.withLock { $0.insert(topic.name).inserted }
                return [
                    .answer(
                        request,
                        CreateTopicsResponse(topics: [
                            .init(
                                name: topic.name, errorCode: isNew ? .none : .topicAlreadyExists,
                                errorMessage: isNew ? nil : "exists")
                        ]))
                ]
            case .deleteTopics(let body):
                return [
                    .answer(
                        request,
                        DeleteTopicsResponse(responses: [
                            .init(name: body.topicNames[0], errorCode: .unknownTopicOrPartition)
                        ]))
                ]
            case .describeConfigs(let body):
                let name = body.resources[0].resourceName
                return [
                    .answer(
                        request,
                        DescribeConfigsResponse(results: [
                            .init(
                                errorMessage: nil, resourceType: 2, resourceName: name,
                                configs: [
                                    .init(
                                        name: "retention.ms", value: "1000", readOnly: false, configSource: 1,
                                        isSensitive: false, synonyms: []),
                                    .init(
                                        name: "cleanup.policy", value: "delete", readOnly: false, configSource: 5,
                                        isSensitive: false, synonyms: []),
                                ])
                        ]))
                ]
            default:
                return nil
            }
        }
        let client = try client(broker)
        try await client.createTopic("orders", partitions: 3, replicationFactor: 1, configs: ["retention.ms": "1000"])
        let sent = broker.requests.compactMap { if case .createTopics(let body) = $0.request { body } else { nil } }
        XCTAssertEqual(sent.first?.topics.first?.numPartitions, 3)
        XCTAssertEqual(sent.first?.topics.first?.replicationFactor, 1)
        XCTAssertEqual(sent.first?.topics.first?.configs, [.init(name: "retention.ms", value: "1000")])
        do {
            try await client.createTopic("orders")
            XCTFail("a second create must fail")
        } catch {
            XCTAssertEqual(error, .broker(.topicAlreadyExists, context: "exists"))
        }
        do {
            try await client.deleteTopic("missing")
            XCTFail("deleting a missing topic must fail")
        } catch {
            XCTAssertEqual(error, .unknownTopic("missing"))
        }
        let configs = try await client.describeConfigs(topic: "orders")
        XCTAssertEqual(configs.map(\.name), ["cleanup.policy", "retention.ms"])
        XCTAssertEqual(configs.map(\.isDefault), [true, false])
        await client.close()
        await broker.stop()
    }

    /// listOffsets by time sends the timestamp and maps the answer; -1 (no such record) becomes nil.
    func testListOffsetsByTimestamp() async throws {
        let broker = try await ScriptedBroker { request in
            guard case .listOffsets(let body) = request.request else { return nil }
            let asked = body.topics[0].partitions[0].timestamp
            return [
                .answer(
                    request,
                    ListOffsetsResponse(topics: [
                        .init(
                            name: "t",
                            partitions: [.init(partitionIndex: 0, timestamp: asked, offset: asked == 5_000 ? 42 : -1)])
                    ]))
            ]
        }
        let client = try client(broker)
        let found = try await client.listOffsets(topic: "t", partition: 0, .timestamp(5_000))
        let missing = try await client.listOffsets(topic: "t", partition: 0, .timestamp(9_000))
        XCTAssertEqual(found, Offset(42))
        XCTAssertNil(missing)
        await client.close()
        await broker.stop()
    }

    /// Awaits `body`, failing the test (instead of hanging) if it takes longer than `seconds`.
    private func withDeadline(
        _ seconds: Double,
        _ body: @escaping @Sendable () async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            XCTAssertTrue(finished, "did not finish within \(seconds) s")
        }
    }

    /// A partition keeps up to five produce requests in flight: the broker answers only once
    /// five are waiting, and twenty one-record batches still all get through, in sequence order.
    func testFiveRequestsInFlightPerPartition() async throws {
        let held = LockedBox<[(DecodedRequest, ProduceRequest)]>([])
        let mostHeld = LockedBox(0)
        let broker = try await ScriptedBroker { request in
            guard case .produce(let body) = request.request else { return nil }
            let release = held.withLock { waiting -> [(DecodedRequest, ProduceRequest)] in
                waiting.append((request, body))
                mostHeld.withLock { $0 = max($0, waiting.count) }
                guard waiting.count == 5 else { return [] }
                defer { waiting = [] }
                return waiting
            }
            return release.enumerated().map { index, entry in
                Self.produceAnswer(entry.0, entry.1, error: .none, base: Int64(index))
            }
        }
        let client = try client(broker)
        var configuration = ProducerConfiguration()
        configuration.batchBytesMax = 256
        let producer = try await KeelProducer(client: client, configuration: configuration)
        try await withDeadline(20) {
            for index in 0..<20 {
                let value = ByteBuffer(string: "\(index)-" + String(repeating: "v", count: 300))
                try await producer.enqueue(topic: "t", key: nil, value: value, partition: 0)
            }
            try await producer.flush()
        }
        XCTAssertEqual(mostHeld.value, 5)
        let sequences = try produceRequests(broker).map { try batchHeader($0).baseSequence }
        XCTAssertEqual(sequences, (0..<20).map { Int32($0) })
        await client.close()
        await broker.stop()
    }

    /// When the connection drops under a produce, the client reconnects and sends the same
    /// batch bytes again (same sequence), and the record gets the offset of the second attempt.
    func testDroppedConnectionResendsTheSameBatch() async throws {
        let attempts = LockedBox(0)
        let broker = try await ScriptedBroker { request in
            guard case .produce(let body) = request.request else { return nil }
            let attempt = attempts.withLock { count -> Int in
                count += 1
                return count
            }
            return attempt == 1 ? [.close] : [Self.produceAnswer(request, body, error: .none, base: 7)]
        }
        let client = try client(broker)
        let producer = try await KeelProducer(client: client)
        let offset = try await producer.send(topic: "t", key: ByteBuffer(string: "k"), value: ByteBuffer(string: "v"))
        XCTAssertEqual(offset, Offset(7))
        let produces = produceRequests(broker)
        XCTAssertEqual(produces.count, 2)
        XCTAssertEqual(
            produces[0].topicData.first?.partitionData.first?.records,
            produces[1].topicData.first?.partitionData.first?.records)
        await client.close()
        await broker.stop()
    }

    /// When the leader moves to another broker, NOT_LEADER_OR_FOLLOWER makes the producer and
    /// the consumer refresh metadata and follow it, over a connection to the new leader's node.
    func testProducerAndConsumerFollowTheLeaderToAnotherBroker() async throws {
        let leader = LockedBox<Int32>(1)
        let ports = LockedBox<[Int32: Int]>([:])
        let metadata: @Sendable (DecodedRequest) -> ScriptedReply = { request in
            var names: [String] = []
            if case .metadata(let body) = request.request { names = (body.topics ?? []).map(\.name) }
            let current = leader.value
            let known = ports.value
            return .answer(
                request,
                MetadataResponse(
                    brokers: known.keys.sorted().map {
                        .init(nodeId: $0, host: "127.0.0.1", port: Int32(known[$0] ?? 0), rack: nil)
                    },
                    clusterId: "scripted", controllerId: 1,
                    topics: names.map {
                        .init(
                            name: $0, isInternal: false,
                            partitions: [
                                .init(partitionIndex: 0, leaderId: current, replicaNodes: [1, 2], isrNodes: [1, 2])
                            ])
                    }))
        }
        // Node 1 leads at first, refuses the first produce and hands the partition to node 2.
        let stored = LockedBox<[ByteBuffer]>([])
        func script(id: Int32) -> ScriptedBroker.Script {
            { request in
                switch request.request {
                case .metadata:
                    return [metadata(request)]
                case .produce(let body):
                    guard id == 2 && leader.value == 2 else {
                        leader.withLock { $0 = 2 }
                        return [Self.produceAnswer(request, body, error: .notLeaderOrFollower, base: -1)]
                    }
                    if let records = body.topicData[0].partitionData[0].records {
                        stored.withLock { $0.append(records) }
                    }
                    return [Self.produceAnswer(request, body, error: .none, base: 0)]
                case .fetch(let body):
                    let wanted = body.topics[0].partitions[0]
                    let lead = leader.value == id
                    var records = ByteBuffer()
                    if lead, wanted.fetchOffset == 0 {
                        for var batch in stored.value { records.writeBuffer(&batch) }
                    }
                    return [
                        .answer(
                            request,
                            FetchResponse(
                                sessionId: 0,
                                responses: [
                                    .init(
                                        topic: body.topics[0].topic,
                                        partitions: [
                                            .init(
                                                partitionIndex: 0, errorCode: lead ? .none : .notLeaderOrFollower,
                                                highWatermark: 1, lastStableOffset: 1, logStartOffset: 0,
                                                abortedTransactions: nil, preferredReadReplica: -1,
                                                records: .bytes(records))
                                        ])
                                ]))
                    ]
                default:
                    return nil
                }
            }
        }
        let first = try await ScriptedBroker(script: script(id: 1))
        let second = try await ScriptedBroker(script: script(id: 2))
        ports.withLock { $0 = [1: first.port, 2: second.port] }
        let client = try client(first)
        let producer = try await KeelProducer(client: client)
        let offset = try await producer.send(topic: "moving", key: nil, value: ByteBuffer(string: "hello"))
        XCTAssertEqual(offset, .zero)
        XCTAssertEqual(produceRequests(first).count, 1, "refused once by the old leader")
        XCTAssertEqual(produceRequests(second).count, 1, "then sent to the new one")
        let fetched = try await client.fetch(topic: "moving", partition: 0, offset: .zero)
        XCTAssertEqual(fetched.records.map { $0.value.map { String(buffer: $0) } }, ["hello"])
        XCTAssertTrue(second.requests.contains { if case .fetch = $0.request { true } else { false } })
        await client.close()
        await first.stop()
        await second.stop()
    }

    /// Records without a key stick to one partition until its batch closes, then move on, so
    /// that null-key records still fill whole batches and spread over the partitions.
    func testNullKeysStickToAPartitionPerBatch() async throws {
        let broker = try await ScriptedBroker(partitions: 3) { request in
            guard case .produce(let body) = request.request else { return nil }
            return [Self.produceAnswer(request, body, error: .none, base: 0)]
        }
        let client = try client(broker)
        let producer = try await KeelProducer(client: client)
        var used: [Int32] = []
        for round in 0..<3 {
            for index in 0..<10 {
                try await producer.enqueue(topic: "t", key: nil, value: ByteBuffer(string: "\(round)-\(index)"))
            }
            try await producer.flush()
            let partitions = produceRequests(broker).dropFirst(round).map { $0.topicData[0].partitionData[0].index }
            XCTAssertEqual(partitions.count, 1, "one batch per round")
            used += partitions
        }
        XCTAssertEqual(Set(used).count, 3, "each batch went to the next partition: \(used)")
        await client.close()
        await broker.stop()
    }

    /// A Fetch answer holding only part of a batch (a broker that cuts at maxBytes) is an
    /// error that names the fix, not an endless refetch of the same offset.
    func testPartialBatchOnlyIsAnError() async throws {
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 1, key: nil, value: ByteBuffer(repeating: 7, count: 500))
        var whole = try builder.build()
        let cut = whole.readSlice(length: 100) ?? ByteBuffer()
        let broker = try await ScriptedBroker { request in
            guard case .fetch(let body) = request.request else { return nil }
            return [
                .answer(
                    request,
                    FetchResponse(
                        sessionId: 0,
                        responses: [
                            .init(
                                topic: body.topics[0].topic,
                                partitions: [
                                    .init(
                                        partitionIndex: 0, highWatermark: 1, lastStableOffset: 1, logStartOffset: 0,
                                        abortedTransactions: nil, preferredReadReplica: -1, records: .bytes(cut))
                                ])
                        ]))
            ]
        }
        let client = try client(broker)
        do {
            _ = try await client.fetch(topic: "t", partition: 0, offset: .zero, maxBytes: 100)
            XCTFail("a partial batch must not pass as an empty answer")
        } catch {
            guard case .invalidArgument(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("larger maxBytes"), message)
        }
        await client.close()
        await broker.stop()
    }
}
