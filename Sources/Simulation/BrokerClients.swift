// The broker world's clients: an admin that creates the topic, idempotent producers, a reader, and the metadata
// cache they share. They talk to the brokers through `Broker.handle` and decode the encoded answers, as a Kafka
// client would; an answer from a node that died meanwhile is lost (its connection broke) and is retried.
//
// Callbacks only change client state; requests leave in `step`, once per world step, so that no broker is
// entered from inside another broker's loop.
import Broker
import KafkaProtocol
import LogStorage
import NIOCore
import Records

/// One batch a producer sends until it is acknowledged: the same bytes and sequence on every retry.
struct SimBatch {
    var sequence: Int32
    var values: [String]
    var bytes: ByteBuffer
    var firstSentMs: Int64
    var attempts = 0
}

/// One producer's stream of batches to one partition (one batch in flight at a time).
final class SimStream {
    let partition: Int32
    var nextSequence: Int32 = 0
    var batch: SimBatch?
    var inFlight = false
    var retryAtMs: Int64 = 0
    /// Batches acknowledged.
    var written = 0
    /// Batches acknowledged when the liveness phase started.
    var writtenAtHealing: Int?

    init(partition: Int32) { self.partition = partition }
}

/// An idempotent producer.
final class SimProducer {
    let index: Int
    /// Bumped when the producer starts over with a new id (its values stay unique).
    var generation = 0
    var producerId: Int64?
    var idInFlight = false
    var idRetryAtMs: Int64 = 0
    var streams: [SimStream]

    init(index: Int, partitions: Int32) {
        self.index = index
        streams = (0..<partitions).map { SimStream(partition: $0) }
    }
}

/// A consumer that commits its offsets in a group (as a standalone consumer: generation -1, no member id) and
/// reads them back: an acknowledged commit must never be forgotten, whichever node coordinates the group.
final class SimCommitter {
    static let group = "g"
    var coordinator: Int32?
    var findInFlight = false
    var commitInFlight = false
    var fetchInFlight = false
    var nextAtMs: Int64 = 0
    /// The next offset to commit (the committer commits 1, 2, 3, ... to partition 0 of the topic).
    var next: Int64 = 1
    /// The highest commit acknowledged.
    var acknowledged: Int64 = -1
    /// Commits acknowledged in the liveness phase.
    var acknowledgedSinceHealing = 0
}

/// A reader of one partition: fetches from its position on the leader, and asks for the high watermark.
final class SimReader {
    let partition: Int32
    var position: Int64 = 0
    var fetchInFlight = false
    var fetchAtMs: Int64 = 0
    var listInFlight = false
    var listAtMs: Int64 = 0

    init(partition: Int32) { self.partition = partition }
}

final class SimClients {
    unowned let world: BrokerWorld
    var correlationId: Int32 = 0
    var topicCreated = false
    var createInFlight = false
    var createRetryAtMs: Int64 = 0
    /// Partition → the leader Metadata named last.
    var leaders: [Int32: Int32] = [:]
    var metadataInFlight = false
    var metadataAtMs: Int64 = 0
    var producers: [SimProducer]
    var readers: [SimReader]
    var healed = false
    /// The scratch topic the admin creates and deletes over and over (replica directories come and go).
    var scratchWanted = false
    /// True once the controller confirmed `scratchWanted`.
    var scratchSettled = true
    var scratchInFlight = false
    var scratchAtMs: Int64 = 2_000
    var scratchChanges = 0
    /// Runs in some seeds only: its `__consumer_offsets` topic adds 16 groups.
    var committer: SimCommitter?

    init(world: BrokerWorld) {
        self.world = world
        let partitions = world.options.partitionCount
        producers = (0..<world.options.producerCount).map { SimProducer(index: $0, partitions: partitions) }
        readers = (0..<partitions).map { SimReader(partition: $0) }
        if world.chance(world.options.consumerGroupPercent) { committer = SimCommitter() }
    }

    var topic: String { BrokerWorld.topic }
    var nowMs: Int64 { world.nowMs }

    // MARK: Requests

    /// Sends a request to `node` and hands its decoded answer to `done`, or nil when the answer is lost.
    func send<R: KafkaRequestMessage>(
        _ body: R, version: Int16, to node: BrokerNode, _ wrap: (R) -> KafkaRequest,
        _ done: @escaping (R.Response?) -> Void
    ) {
        guard let life = node.life else { return done(nil) }
        correlationId += 1
        let header = RequestHeader(apiKey: R.apiKey, apiVersion: version, correlationId: correlationId, clientId: "sim")
        let incarnation = node.incarnation
        let world = self.world
        let answer = life.broker.handle(
            DecodedRequest(header: header, request: wrap(body)), clientHost: "sim", on: life.loop)
        answer.assumeIsolated().whenComplete { result in
            guard node.incarnation == incarnation, case .success(let response) = result else { return done(nil) }
            var frame: ByteBuffer
            switch response {
            case .frame(let bytes):
                frame = bytes
            case .fetch(let parts, let records):
                frame = ByteBuffer()
                for part in parts {
                    switch part {
                    case .bytes(let bytes):
                        frame.writeImmutableBuffer(bytes)
                    case .records(let length, let token):
                        var sent = 0
                        for slice in records[token] ?? [] {
                            guard let file = node.disk.entries[slice.file.path],
                                slice.position.value + slice.length.value <= file.data.count
                            else {
                                world.fail("n\(node.id) answered a fetch with a slice of \(slice.file.path) it lacks")
                                return done(nil)
                            }
                            frame.writeBytes(
                                file.data[slice.position.value..<slice.position.value + slice.length.value])
                            sent += slice.length.value
                        }
                        guard sent == length else {
                            world.fail("n\(node.id) promised \(length) fetch bytes and has \(sent)")
                            return done(nil)
                        }
                    }
                }
            case .none, .close:
                return done(nil)
            }
            frame.moveReaderIndex(forwardBy: 4)
            world.result.mix(world.nowMs)
            world.result.mix(frame.readableBytesView)
            do {
                done(try KafkaResponseDecoder.decode(R.Response.self, frame: frame, version: version).body)
            } catch {
                world.fail("n\(node.id) answered \(R.apiKey) with a frame that does not decode: \(error)")
                done(nil)
            }
        }
    }

    /// A node that is up, drawn at random (nil when none is).
    func randomLiveNode() -> BrokerNode? {
        let up = world.nodes.filter { $0.isUp }
        return up.isEmpty ? nil : up[world.uniform(0...up.count - 1)]
    }

    /// The node Metadata named leader of `partition`, if it is up.
    func leaderNode(of partition: Int32) -> BrokerNode? {
        guard let id = leaders[partition], id >= 1, Int(id) <= world.nodes.count else { return nil }
        let node = world.nodes[Int(id) - 1]
        return node.isUp ? node : nil
    }

    /// Forgets what Metadata said of `partition` and asks again soon.
    func refreshMetadata(_ partition: Int32?) {
        if let partition { leaders[partition] = nil }
        metadataAtMs = min(metadataAtMs, nowMs + 50)
    }

    // MARK: A step

    func step() {
        stepAdmin()
        stepScratch()
        stepMetadata()
        for producer in producers { stepProducer(producer) }
        for reader in readers { stepReader(reader) }
        if let committer { stepCommitter(committer) }
    }

    func livenessStarted() {
        healed = true
        for producer in producers {
            for stream in producer.streams { stream.writtenAtHealing = stream.written }
        }
    }

    /// True once every producer has an id and, since the healing, one more batch acknowledged per partition,
    /// with nothing pending.
    var allAcknowledged: Bool {
        scratchSettled && (committer?.acknowledgedSinceHealing ?? 1) > 0
            && producers.allSatisfy { producer in
                producer.producerId != nil
                    && producer.streams.allSatisfy { $0.batch == nil && $0.written > ($0.writtenAtHealing ?? Int.max) }
            }
    }

    var pendingDescription: String {
        var parts: [String] = []
        if !topicCreated { parts.append("topic not created") }
        if let committer, committer.acknowledgedSinceHealing == 0 {
            parts.append(
                "no offset commit acknowledged since healing (coordinator "
                    + "\(committer.coordinator.map { "n\($0)" } ?? "unknown"))"
            )
        }
        if !scratchSettled {
            parts.append("\(BrokerWorld.scratchTopic) not yet \(scratchWanted ? "created" : "deleted")")
        }
        for producer in producers {
            guard producer.producerId != nil else {
                parts.append("producer \(producer.index) has no id")
                continue
            }
            for stream in producer.streams {
                if let batch = stream.batch {
                    parts.append(
                        "producer \(producer.index) partition \(stream.partition) seq \(batch.sequence) pending since "
                            + "t=\(batch.firstSentMs) (\(batch.attempts) attempts)")
                } else if stream.written <= (stream.writtenAtHealing ?? Int.max) {
                    parts.append("producer \(producer.index) partition \(stream.partition) wrote nothing since healing")
                }
            }
        }
        return parts.isEmpty ? "no batch pending" : parts.joined(separator: ", ")
    }

    // MARK: Admin and metadata

    func stepAdmin() {
        guard !topicCreated, !createInFlight, nowMs >= createRetryAtMs, let node = randomLiveNode() else { return }
        createInFlight = true
        let request = CreateTopicsRequest(
            topics: [
                .init(
                    name: topic, numPartitions: world.options.partitionCount, replicationFactor: 3, assignments: [],
                    configs: [])
            ], timeoutMs: 5_000, validateOnly: false)
        world.log("admin: CreateTopics \(topic) to n\(node.id)")
        send(request, version: 3, to: node, { .createTopics($0) }) { answer in
            self.createInFlight = false
            let code = answer?.topics.first?.errorCode
            self.world.log("admin: CreateTopics answered \(code.map { "\($0)" } ?? "nothing")")
            if code == ErrorCode.none || code == .topicAlreadyExists {
                self.topicCreated = true
                self.refreshMetadata(nil)
            } else {
                self.createRetryAtMs = self.nowMs + 200
            }
        }
    }

    /// Every few seconds of the faulty phase the admin flips the scratch topic: creates it (and writes a batch to
    /// it) or deletes it, retrying until the controller says it is done. It stays as it is after the healing.
    func stepScratch() {
        guard topicCreated, !scratchInFlight, nowMs >= scratchAtMs, let node = randomLiveNode() else { return }
        if scratchSettled {
            guard !healed else { return }
            scratchWanted.toggle()
            scratchSettled = false
        }
        scratchInFlight = true
        let name = BrokerWorld.scratchTopic
        let retry: (String) -> Void = { outcome in
            self.scratchInFlight = false
            self.world.log("admin: \(name) \(outcome)")
            self.scratchAtMs = self.nowMs + 200
        }
        let settled: (String) -> Void = { outcome in
            self.scratchInFlight = false
            self.scratchSettled = true
            self.scratchChanges += 1
            self.world.log("admin: \(name) \(outcome)")
            self.scratchAtMs = self.nowMs + Int64(self.world.uniform(1_000...4_000))
        }
        if scratchWanted {
            world.log("admin: CreateTopics \(name) to n\(node.id)")
            let request = CreateTopicsRequest(
                topics: [.init(name: name, numPartitions: 1, replicationFactor: 3, assignments: [], configs: [])],
                timeoutMs: 3_000, validateOnly: false)
            send(request, version: 3, to: node, { .createTopics($0) }) { answer in
                let code = answer?.topics.first?.errorCode
                if code == ErrorCode.none || code == .topicAlreadyExists {
                    settled("created (\(code!))")
                    self.writeScratch(to: node)
                } else {
                    retry("creation answered \(code.map { "\($0)" } ?? "nothing")")
                }
            }
        } else {
            world.log("admin: DeleteTopics \(name) to n\(node.id)")
            send(DeleteTopicsRequest(topicNames: [name], timeoutMs: 3_000), version: 1, to: node, { .deleteTopics($0) })
            {
                answer in
                let code = answer?.responses.first?.errorCode
                if code == ErrorCode.none || code == .unknownTopicOrPartition {
                    settled("deleted (\(code!))")
                } else {
                    retry("deletion answered \(code.map { "\($0)" } ?? "nothing")")
                }
            }
        }
    }

    /// One plain acks=1 batch to the scratch topic, on whichever node answers (so that its directories hold data
    /// when it is deleted); nothing is checked of it.
    func writeScratch(to node: BrokerNode) {
        var builder = RecordBatchBuilder(baseTimestamp: SimClock.epochMs + nowMs)
        builder.append(timestamp: SimClock.epochMs + nowMs, key: nil, value: ByteBuffer(string: "scratch"))
        guard let bytes = try? builder.build() else { return }
        let request = ProduceRequest(
            transactionalId: nil, acks: 1, timeoutMs: 1_000,
            topicData: [.init(name: BrokerWorld.scratchTopic, partitionData: [.init(index: 0, records: bytes)])])
        send(request, version: 7, to: node, { .produce($0) }) { _ in }
    }

    func stepMetadata() {
        guard !metadataInFlight, nowMs >= metadataAtMs, let node = randomLiveNode() else { return }
        metadataInFlight = true
        let request = MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false)
        send(request, version: 4, to: node, { .metadata($0) }) { answer in
            self.metadataInFlight = false
            // Asked again soon while a leader is unknown, else once a second.
            self.metadataAtMs = self.nowMs + 1_000
            guard let answer, let described = answer.topics.first(where: { $0.name == self.topic }),
                described.errorCode == .none
            else {
                self.metadataAtMs = self.nowMs + 100
                return
            }
            for partition in described.partitions {
                if partition.leaderId >= 0 {
                    self.leaders[partition.partitionIndex] = partition.leaderId
                } else {
                    self.leaders[partition.partitionIndex] = nil
                    self.metadataAtMs = self.nowMs + 100
                }
            }
        }
    }

    // MARK: Producers

    func stepProducer(_ producer: SimProducer) {
        guard let producerId = producer.producerId else {
            guard !producer.idInFlight, nowMs >= producer.idRetryAtMs, let node = randomLiveNode() else { return }
            producer.idInFlight = true
            send(
                InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 60_000), version: 1, to: node,
                {
                    .initProducerId($0)
                }
            ) { answer in
                producer.idInFlight = false
                guard let answer, answer.errorCode == .none, answer.producerId >= 0 else {
                    producer.idRetryAtMs = self.nowMs + 100
                    return
                }
                producer.producerId = answer.producerId
                self.world.log("producer \(producer.index): id \(answer.producerId) from n\(node.id)")
                self.world.checks.producerIdGiven(answer.producerId, world: self.world)
            }
            return
        }
        guard topicCreated else { return }
        // Now and then a producer starts over as a new one (a restarted application): a new id, sequences from
        // 0; ids come from blocks that nodes reserve from the controller, and must never repeat.
        if !healed, producer.streams.allSatisfy({ $0.batch == nil }), world.chance(per10k: 20) {
            world.log("producer \(producer.index): starts over with a new id")
            producer.producerId = nil
            producer.generation += 1
            for stream in producer.streams { stream.nextSequence = 0 }
            return
        }
        for stream in producer.streams where !stream.inFlight && nowMs >= stream.retryAtMs {
            if stream.batch == nil {
                let quota = healed ? (stream.writtenAtHealing ?? 0) + 1 : world.options.batchesPerPartitionMax
                guard stream.written < quota, healed || world.chance(5) else { continue }
                stream.batch = makeBatch(producer, stream, producerId: producerId)
            }
            guard let node = leaderNode(of: stream.partition) else {
                refreshMetadata(stream.partition)
                stream.retryAtMs = nowMs + 50
                continue
            }
            produce(producer, stream, to: node)
        }
    }

    func makeBatch(_ producer: SimProducer, _ stream: SimStream, producerId: Int64) -> SimBatch? {
        let count = world.uniform(1...3)
        let values = (0..<count).map {
            "p\(producer.index).\(producer.generation).\(stream.partition).\(Int(stream.nextSequence) + $0)"
        }
        var builder = RecordBatchBuilder(baseTimestamp: SimClock.epochMs + nowMs)
        for value in values {
            builder.append(timestamp: SimClock.epochMs + nowMs, key: nil, value: ByteBuffer(string: value))
        }
        let bytes: ByteBuffer
        do {
            bytes = try builder.build(producerId: producerId, producerEpoch: 0, baseSequence: stream.nextSequence)
        } catch {
            world.fail("cannot build a batch: \(error)")
            return nil
        }
        return SimBatch(sequence: stream.nextSequence, values: values, bytes: bytes, firstSentMs: nowMs)
    }

    func produce(_ producer: SimProducer, _ stream: SimStream, to node: BrokerNode) {
        guard var batch = stream.batch else { return }
        batch.attempts += 1
        stream.batch = batch
        stream.inFlight = true
        let partition = stream.partition
        let request = ProduceRequest(
            transactionalId: nil, acks: -1, timeoutMs: 2_000,
            topicData: [.init(name: topic, partitionData: [.init(index: partition, records: batch.bytes)])])
        world.log("producer \(producer.index): partition \(partition) seq \(batch.sequence) to n\(node.id)")
        send(request, version: 7, to: node, { .produce($0) }) { answer in
            stream.inFlight = false
            guard let answer else {
                // The connection broke: librdkafka retries the same batch once it knows the leader again.
                self.world.log("producer \(producer.index): partition \(partition) seq \(batch.sequence) lost")
                stream.retryAtMs = self.nowMs + 100
                self.refreshMetadata(partition)
                return
            }
            guard let result = answer.responses.first?.partitionResponses.first, answer.responses.count == 1,
                result.index == partition
            else {
                self.world.fail("n\(node.id) answered a produce of partition \(partition) with \(answer)")
                return
            }
            self.world.log(
                "producer \(producer.index): partition \(partition) seq \(batch.sequence) answered "
                    + "\(result.errorCode) offset \(result.baseOffset) by n\(node.id)")
            switch result.errorCode {
            case .none:
                stream.batch = nil
                stream.written += 1
                stream.nextSequence += Int32(batch.values.count)
                stream.retryAtMs = self.nowMs + Int64(self.world.uniform(0...100))
                self.world.checks.acknowledged(
                    partition: partition, baseOffset: result.baseOffset, values: batch.values, world: self.world)
            case .notLeaderOrFollower, .leaderNotAvailable, .unknownTopicOrPartition:
                stream.retryAtMs = self.nowMs + 100
                self.refreshMetadata(partition)
            case .requestTimedOut, .notEnoughReplicas, .kafkaStorageError:
                stream.retryAtMs = self.nowMs + 100
                self.refreshMetadata(nil)
            default:
                self.world.fail(
                    "producer \(producer.index) (id \(producer.producerId ?? -1)): partition \(partition) batch seq "
                        + "\(batch.sequence) (attempt \(batch.attempts)) answered \(result.errorCode) by n\(node.id)")
            }
        }
    }

    // MARK: The committer

    func stepCommitter(_ committer: SimCommitter) {
        guard topicCreated, !committer.findInFlight, !committer.commitInFlight, !committer.fetchInFlight,
            nowMs >= committer.nextAtMs
        else { return }
        let group = SimCommitter.group
        let rediscover = {
            committer.coordinator = nil
            committer.nextAtMs = self.nowMs + 100
        }
        guard let id = committer.coordinator, world.nodes[Int(id) - 1].isUp else {
            guard let node = randomLiveNode() else { return }
            committer.findInFlight = true
            send(FindCoordinatorRequest(key: group, keyType: 0), version: 1, to: node, { .findCoordinator($0) }) {
                answer in
                committer.findInFlight = false
                committer.nextAtMs = self.nowMs + 100
                guard let answer, answer.errorCode == .none, answer.nodeId >= 1,
                    Int(answer.nodeId) <= self.world.nodes.count
                else { return }
                committer.coordinator = answer.nodeId
            }
            return
        }
        let node = world.nodes[Int(id) - 1]
        if world.chance(50) {
            let offset = committer.next
            committer.next += 1
            committer.commitInFlight = true
            let request = OffsetCommitRequest(
                groupId: group, generationId: -1, memberId: "", retentionTimeMs: -1,
                topics: [
                    .init(
                        name: topic,
                        partitions: [.init(partitionIndex: 0, committedOffset: offset, committedMetadata: nil)])
                ])
            send(request, version: 3, to: node, { .offsetCommit($0) }) { answer in
                committer.commitInFlight = false
                committer.nextAtMs = self.nowMs + Int64(self.world.uniform(50...300))
                guard let answer else { return rediscover() }
                let code = answer.topics.first?.partitions.first?.errorCode
                self.world.log("committer: offset \(offset) answered \(code.map { "\($0)" } ?? "nothing") by n\(id)")
                switch code {
                case .none?:
                    committer.acknowledged = max(committer.acknowledged, offset)
                    if self.healed { committer.acknowledgedSinceHealing += 1 }
                case .notCoordinator?, .coordinatorNotAvailable?, .coordinatorLoadInProgress?, .requestTimedOut?,
                    .notLeaderOrFollower?:
                    rediscover()
                default:
                    self.world.fail(
                        "committer: offset \(offset) answered \(code.map { "\($0)" } ?? "nothing") by n\(id)")
                }
            }
        } else {
            let floor = committer.acknowledged
            committer.fetchInFlight = true
            let request = OffsetFetchRequest(groupId: group, topics: [.init(name: topic, partitionIndexes: [0])])
            send(request, version: 3, to: node, { .offsetFetch($0) }) { answer in
                committer.fetchInFlight = false
                committer.nextAtMs = self.nowMs + Int64(self.world.uniform(50...300))
                guard let answer else { return rediscover() }
                guard answer.errorCode == .none, let found = answer.topics.first?.partitions.first,
                    found.errorCode == .none
                else { return rediscover() }
                if found.committedOffset < floor {
                    self.world.fail(
                        "OffsetFetch from n\(id), the coordinator, answered \(found.committedOffset), but commit "
                            + "\(floor) was acknowledged")
                }
            }
        }
    }

    // MARK: The reader

    func stepReader(_ reader: SimReader) {
        guard topicCreated, let node = leaderNode(of: reader.partition) else { return }
        let partition = reader.partition
        if !reader.fetchInFlight, nowMs >= reader.fetchAtMs {
            reader.fetchInFlight = true
            let position = reader.position
            let request = FetchRequest(
                replicaId: -1, maxWaitMs: world.chance(50) ? 0 : 200, minBytes: 1, maxBytes: 1 << 20,
                isolationLevel: 0, sessionId: 0, sessionEpoch: -1,
                topics: [
                    .init(
                        topic: topic,
                        partitions: [
                            .init(
                                partition: partition, currentLeaderEpoch: -1, fetchOffset: position,
                                logStartOffset: -1, partitionMaxBytes: 1 << 16)
                        ])
                ], forgottenTopicsData: [], rackId: "")
            send(request, version: 11, to: node, { .fetch($0) }) { answer in
                reader.fetchInFlight = false
                reader.fetchAtMs = self.nowMs + Int64(self.world.uniform(50...300))
                guard let answer else { return }
                guard let data = answer.responses.first?.partitions.first, data.partitionIndex == partition else {
                    self.world.fail("n\(node.id) answered a fetch of partition \(partition) with \(answer)")
                    return
                }
                switch data.errorCode {
                case .none:
                    self.noteFetched(data, reader: reader, from: node, position: position)
                case .notLeaderOrFollower, .unknownTopicOrPartition:
                    self.refreshMetadata(partition)
                default:
                    self.world.fail(
                        "reader of partition \(partition) at \(position): n\(node.id) answered \(data.errorCode) "
                            + "(high watermark \(data.highWatermark), log start \(data.logStartOffset))")
                }
            }
        }
        if !reader.listInFlight, nowMs >= reader.listAtMs {
            reader.listInFlight = true
            let request = ListOffsetsRequest(
                replicaId: -1, isolationLevel: 0,
                topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: -1)])])
            send(request, version: 2, to: node, { .listOffsets($0) }) { answer in
                reader.listInFlight = false
                reader.listAtMs = self.nowMs + Int64(self.world.uniform(100...500))
                guard let answer, let found = answer.topics.first?.partitions.first else { return }
                switch found.errorCode {
                case .none:
                    self.world.checks.highWatermarkListed(
                        partition: partition, found.offset, by: node, world: self.world)
                case .notLeaderOrFollower, .unknownTopicOrPartition, .offsetNotAvailable:
                    self.refreshMetadata(partition)
                default:
                    self.world.fail("ListOffsets of partition \(partition): n\(node.id) answered \(found.errorCode)")
                }
            }
        }
    }

    func noteFetched(
        _ data: FetchResponse.TopicResponse.PartitionData, reader: SimReader, from node: BrokerNode, position: Int64
    ) {
        guard case .bytes(let bytes) = data.records else { return }
        var index = bytes.readerIndex
        var next = position
        while index < bytes.writerIndex {
            let header: RecordBatchHeader
            let records: [Record]
            do {
                header = try RecordBatchHeader.read(from: bytes, at: index)
                records = header.attributes.isControl ? [] : try RecordBatch.records(of: bytes, at: index)
            } catch {
                world.fail("a batch fetched from n\(node.id) at \(next) does not decode: \(error)")
                return
            }
            guard header.baseOffset <= next, header.lastOffset.value >= next else {
                world.fail(
                    "fetch of partition \(data.partitionIndex) at \(next) from n\(node.id) returned batch "
                        + "\(header.baseOffset)...\(header.lastOffset.value)")
                return
            }
            for record in records {
                let offset = header.baseOffset + Int64(record.offsetDelta)
                guard offset >= position else { continue }
                let value = record.value.map { String(buffer: $0) } ?? ""
                world.checks.read(partition: data.partitionIndex, offset: offset, value: value, world: world)
            }
            next = header.lastOffset.value + 1
            index += header.totalSize
        }
        guard next <= data.highWatermark || next == position else {
            world.fail(
                "fetch from n\(node.id) returned offsets up to \(next - 1) past its high watermark "
                    + "\(data.highWatermark)"
            )
            return
        }
        reader.position = next
    }
}
