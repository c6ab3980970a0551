import KafkaProtocol
import LogStorage
import NIOCore
import Records

// Produce, Fetch and ListOffsets: the data path.

extension Broker {
    // MARK: Produce

    /// A client batch checked and made ready to store, or the error to answer with.
    struct PreparedBatch: Sendable {
        var bytes: ByteBuffer
        var header: RecordBatchHeader
    }

    /// The outcome of `prepare`.
    enum Preparation {
        case ready(PreparedBatch)
        case refused(ErrorCode)
    }

    /// The checks Kafka makes on a produced partition's records, done on the connection's
    /// loop before the hop: exactly one magic-2 batch, no control or transactional batch,
    /// a valid CRC (CORRUPT_MESSAGE otherwise), a consistent record count; then LZ4
    /// compression when the topic asks for it and the producer did not compress.
    static func prepare(_ records: ByteBuffer?, config: TopicConfig) -> Preparation {
        guard let records, records.readableBytes > 0 else { return .refused(.invalidRecord) }
        let start = records.readerIndex
        let header: RecordBatchHeader
        do throws(RecordBatchError) {
            header = try RecordBatchHeader.read(from: records, at: start)
        } catch {
            return .refused(.corruptMessage)
        }
        guard header.totalSize >= RecordBatchHeader.size else { return .refused(.corruptMessage) }
        guard header.totalSize <= records.readableBytes else { return .refused(.corruptMessage) }
        guard header.totalSize == records.readableBytes else { return .refused(.invalidRecord) }
        guard !header.attributes.isControl, !header.attributes.isTransactional else { return .refused(.invalidRecord) }
        guard let codec = header.attributes.codec else { return .refused(.unsupportedCompressionType) }
        do throws(RecordBatchError) {
            _ = try RecordBatch.validate(records, at: start)
            try RecordBatch.validateClientBatch(header)
        } catch {
            if case .crcMismatch = error { return .refused(.corruptMessage) }
            return .refused(.invalidRecord)
        }
        var prepared = PreparedBatch(bytes: records, header: header)
        if config.compression == .lz4, codec == .none {
            do throws(RecordBatchError) {
                let compressed = try RecordBatch.compress(records, at: start, codec: .lz4)
                prepared = PreparedBatch(
                    bytes: compressed, header: try RecordBatchHeader.read(from: compressed, at: compressed.readerIndex))
            } catch {
                return .refused(.corruptMessage)
            }
        }
        guard prepared.header.totalSize <= config.maxMessageBytes else { return .refused(.messageTooLarge) }
        return .ready(prepared)
    }

    func produce(_ request: ProduceRequest, correlationId: Int32, version: Int16, on loop: any EventLoop)
        -> EventLoopFuture<BrokerResponse>
    {
        let acks = request.acks
        var futures: [EventLoopFuture<AppendOutcome>] = []
        let (caughtUp, configs) = view.withLock { ($0.caughtUp, $0.topicConfigs) }
        for topic in request.topicData {
            let config = configs[topic.name]
            for data in topic.partitionData {
                let outcome: EventLoopFuture<AppendOutcome>
                if ![0, 1, -1].contains(acks) {
                    outcome = loop.makeSucceededFuture(.failure(.invalidRequiredAcks))
                } else if topic.name == OffsetsTopic.name {
                    // Only the group coordinators write the internal topic (Kafka answers the same).
                    outcome = loop.makeSucceededFuture(.failure(.invalidTopicException))
                } else if request.transactionalId != nil {
                    // Transactions come with the group coordinator.
                    outcome = loop.makeSucceededFuture(.failure(.invalidRequest))
                } else if let config, let handle = partition(topic.name, data.index) {
                    switch Self.prepare(data.records, config: config) {
                    case .refused(let code):
                        outcome = loop.makeSucceededFuture(.failure(code))
                    case .ready(let batch):
                        let timeoutMs = request.timeoutMs
                        outcome = handle.flatRun(on: loop) {
                            $0.append(batch.bytes, header: batch.header, acks: acks, timeoutMs: timeoutMs)
                        }
                    }
                } else {
                    outcome = loop.makeSucceededFuture(
                        .failure(partitionMissingCode(topic: topic.name, partition: data.index, caughtUp: caughtUp)))
                }
                futures.append(outcome)
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: loop).map { outcomes in
            var next = 0
            var failures: [String] = []
            let responses = request.topicData.map { topic in
                ProduceResponse.TopicResponse(
                    name: topic.name,
                    partitionResponses: topic.partitionData.map { data in
                        let outcome = outcomes[next]
                        next += 1
                        if outcome.errorCode != .none {
                            failures.append("\(topic.name)-\(data.index): \(outcome.errorCode)")
                        }
                        return .init(
                            index: data.index, errorCode: outcome.errorCode, baseOffset: outcome.baseOffset,
                            logAppendTimeMs: -1, logStartOffset: outcome.logStartOffset)
                    })
            }
            if acks == 0 {
                return failures.isEmpty
                    ? .none : .close(reason: "acks=0 produce failed: " + failures.joined(separator: ", "))
            }
            return .frame(
                KafkaResponseEncoder.encodeFrame(
                    ProduceResponse(responses: responses), version: version, correlationId: correlationId))
        }
    }

    /// The error for a partition this node has no open replica of: NOT_LEADER_OR_FOLLOWER when the partition
    /// exists (the client refreshes its metadata and goes to the leader; also while a replica opens, and before
    /// this node has caught up with the metadata), UNKNOWN_TOPIC_OR_PARTITION when it does not.
    func partitionMissingCode(topic: String, partition: Int32, caughtUp: Bool? = nil) -> ErrorCode {
        let (known, current) = view.withLock { view in
            (view.state.replicas(topic: topic, partition: partition) != nil, caughtUp ?? view.caughtUp)
        }
        return known || !current ? .notLeaderOrFollower : .unknownTopicOrPartition
    }

    // MARK: Fetch

    func fetch(_ request: FetchRequest, correlationId: Int32, on loop: any EventLoop) -> EventLoopFuture<BrokerResponse>
    {
        let targets = request.topics.flatMap { topic in
            topic.partitions.map { asked in
                let handle = partition(topic.topic, asked.partition)
                return FetchOperation.Target(
                    request: asked, handle: handle,
                    missing: handle == nil ? partitionMissingCode(topic: topic.topic, partition: asked.partition) : .none)
            }
        }
        let operation = FetchOperation(
            broker: self, request: request, correlationId: correlationId, targets: targets, loop: loop)
        operation.start()
        return operation.promise.futureResult
    }

    // MARK: ListOffsets

    func listOffsets(_ request: ListOffsetsRequest, on loop: any EventLoop) -> EventLoopFuture<ListOffsetsResponse> {
        typealias Answer = (errorCode: ErrorCode, timestamp: Int64, offset: Int64)
        var futures: [EventLoopFuture<ListOffsetsResponse.Topic.Partition>] = []
        for topic in request.topics {
            for asked in topic.partitions {
                let index = asked.partitionIndex
                guard let handle = partition(topic.name, index) else {
                    let code = partitionMissingCode(topic: topic.name, partition: index)
                    futures.append(
                        loop.makeSucceededFuture(
                            .init(partitionIndex: index, errorCode: code, timestamp: -1, offset: -1)))
                    continue
                }
                let timestamp = asked.timestamp
                futures.append(
                    handle.run(on: loop) { engine in
                        let answer = engine.listOffset(timestamp: timestamp)
                        return ListOffsetsResponse.Topic.Partition(
                            partitionIndex: index, errorCode: answer.errorCode, timestamp: answer.timestamp,
                            offset: answer.offset)
                    })
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: loop).map { answers in
            var next = 0
            return ListOffsetsResponse(
                topics: request.topics.map { topic in
                    .init(
                        name: topic.name,
                        partitions: topic.partitions.map { _ in
                            defer { next += 1 }
                            return answers[next]
                        })
                })
        }
    }
}

/// One Fetch request while it waits: it reads every partition, and unless `min_bytes`
/// are there (or an error, or `max_wait_ms` passed) it waits for any of the partitions'
/// high watermarks to move, then reads again. Confined to the connection's event loop.
final class FetchOperation {
    struct Target: Sendable {
        var request: FetchRequest.Topic.Partition
        var handle: PartitionHandle?
        /// Why there is no handle.
        var missing: ErrorCode
    }

    let broker: Broker
    let request: FetchRequest
    let correlationId: Int32
    let targets: [Target]
    let loop: any EventLoop
    let promise: EventLoopPromise<BrokerResponse>
    private var timedOut = false
    private var finished = false
    private var timer: Scheduled<Void>?
    /// The id of the current wait, nil while reading.
    private var waitId: UInt64?

    init(broker: Broker, request: FetchRequest, correlationId: Int32, targets: [Target], loop: any EventLoop) {
        self.broker = broker
        self.request = request
        self.correlationId = correlationId
        self.targets = targets
        self.loop = loop
        self.promise = loop.makePromise()
    }

    func start() {
        if request.maxWaitMs > 0 {
            timer = loop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(request.maxWaitMs))) {
                self.timedOut = true
                self.wake(self.waitId)
            }
        }
        read()
    }

    private func read() {
        waitId = nil
        let reads = targets.map { target -> EventLoopFuture<PartitionRead> in
            guard let handle = target.handle else {
                return loop.makeSucceededFuture(.failure(target.missing))
            }
            let offset = Offset(target.request.fetchOffset)
            let maxBytes = Int(max(0, target.request.partitionMaxBytes))
            return handle.run(on: loop) { $0.read(from: offset, maxBytes: maxBytes) }
        }
        EventLoopFuture.whenAllSucceed(reads, on: loop).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let reads): self.decide(reads)
            case .failure: self.finish(self.targets.map { _ in .failure(.unknownServerError) })
            }
        }
    }

    private func decide(_ reads: [PartitionRead]) {
        let total = reads.reduce(0) { $0 + $1.byteCount }
        let failed = reads.contains { $0.errorCode != .none }
        if timedOut || failed || total >= Int(request.minBytes) || request.maxWaitMs <= 0 {
            finish(reads)
            return
        }
        let id = broker.waitIds.wrappingAdd(1, ordering: .relaxed).newValue
        waitId = id
        for (target, read) in zip(targets, reads) {
            guard let handle = target.handle else { continue }
            let wake = loop.makePromise(of: Void.self)
            let seen = read.highWatermark
            let replica = handle.replica
            handle.loop.execute { replica.value.waitForHighWatermark(above: seen, id: id, promise: wake) }
            wake.futureResult.assumeIsolated().whenComplete { _ in self.wake(id) }
        }
    }

    /// A watched high watermark moved, or the timer fired: stop waiting and read again.
    private func wake(_ id: UInt64?) {
        guard !finished, let id, id == waitId else { return }
        waitId = nil
        cancelWaits(id)
        read()
    }

    private func cancelWaits(_ id: UInt64) {
        for target in targets {
            guard let handle = target.handle else { continue }
            let replica = handle.replica
            handle.loop.execute { replica.value.cancelWait(id: id) }
        }
    }

    private func finish(_ reads: [PartitionRead]) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        var next = 0
        var token = 0
        var total = 0
        var records: [Int: [LogSlice]] = [:]
        let responses = request.topics.map { topic in
            FetchResponse.TopicResponse(
                topic: topic.topic,
                partitions: topic.partitions.map { asked in
                    let read = reads[next]
                    next += 1
                    var data = FetchRecords.bytes(ByteBuffer())
                    let bytes = read.byteCount
                    // The first batch goes whatever its size (KIP-74); after it, max_bytes holds.
                    if bytes > 0, total == 0 || total + bytes <= Int(request.maxBytes) {
                        records[token] = read.slices
                        data = .deferred(length: bytes, token: token)
                        token += 1
                        total += bytes
                    }
                    return .init(
                        partitionIndex: asked.partition, errorCode: read.errorCode,
                        highWatermark: read.highWatermark.value, lastStableOffset: read.highWatermark.value,
                        logStartOffset: read.logStartOffset.value, abortedTransactions: nil, preferredReadReplica: -1,
                        records: data)
                })
        }
        let parts = FetchResponse(sessionId: 0, responses: responses).encodeFrameParts(correlationId: correlationId)
        promise.succeed(.fetch(parts: parts, records: records))
    }
}
