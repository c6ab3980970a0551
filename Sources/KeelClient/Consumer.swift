import KafkaProtocol
import NIOCore
import Records

/// One record read from a partition.
public struct ConsumerRecord: Sendable, Equatable {
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The record's offset.
    public var offset: Offset
    /// Milliseconds since the epoch (CreateTime, or LogAppendTime if the batch says so).
    public var timestamp: Int64
    /// The key; nil is Kafka's null key.
    public var key: ByteBuffer?
    /// The value; nil is Kafka's null value.
    public var value: ByteBuffer?
    /// The headers, in order.
    public var headers: [RecordHeader]

    /// Creates a value with every field given.
    public init(
        topic: String,
        partition: Int32,
        offset: Offset,
        timestamp: Int64,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader]
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// What one Fetch of one partition returned.
public struct FetchResult: Sendable, Equatable {
    /// The records at or after the requested offset, in offset order (control records skipped).
    public var records: [ConsumerRecord]
    /// The partition's high watermark (one past the last committed offset).
    public var highWatermark: Offset
    /// The partition's log start offset.
    public var logStartOffset: Offset
    /// Where the next fetch should start: after the last batch returned (even one that held only
    /// control records), or the requested offset if nothing came.
    public var nextOffset: Offset
}

/// Which offset `listOffsets` looks up.
public enum OffsetSpec: Sendable, Equatable {
    /// The log start offset.
    case earliest
    /// The log end offset (the next offset to be written).
    case latest
    /// The first offset whose timestamp is at or after this many milliseconds since the epoch.
    case timestamp(Int64)
}

/// Turns the `records` bytes of a Fetch answer into consumer records.
enum FetchDecoder {
    /// Decodes every whole batch in `bytes` (a partial batch at the end, cut by max bytes, is
    /// ignored), skipping control batches and the records before `from`.
    ///
    /// - Returns: the records and the offset after the last whole batch (nil if there was none).
    static func decode(
        _ bytes: ByteBuffer,
        topic: String,
        partition: Int32,
        from fetchOffset: Offset
    ) throws(KeelClientError) -> (records: [ConsumerRecord], next: Offset?) {
        var records: [ConsumerRecord] = []
        var next: Offset?
        var index = bytes.readerIndex
        while bytes.writerIndex - index >= RecordBatchHeader.size {
            let header: RecordBatchHeader
            do {
                header = try RecordBatchHeader.read(from: bytes, at: index)
            } catch {
                throw .corruptBatch(error)
            }
            guard header.batchLength >= RecordBatchHeader.size - RecordBatchHeader.logOverhead else {
                throw .corruptBatch(.truncated(needed: RecordBatchHeader.size, available: header.totalSize))
            }
            guard bytes.writerIndex - index >= header.totalSize else { break }
            defer { index += header.totalSize }
            next = header.nextOffset
            if header.attributes.isControl || header.nextOffset <= fetchOffset { continue }
            let decoded: [Record]
            do {
                decoded = try RecordBatch.records(of: bytes, at: index)
            } catch {
                throw .corruptBatch(error)
            }
            records.reserveCapacity(records.count + decoded.count)
            for record in decoded {
                let offset = Offset(header.baseOffset &+ Int64(record.offsetDelta))
                guard offset >= fetchOffset else { continue }
                let timestamp =
                    header.attributes.isLogAppendTime
                    ? header.maxTimestamp : header.baseTimestamp &+ record.timestampDelta
                records.append(
                    ConsumerRecord(
                        topic: topic, partition: partition, offset: offset, timestamp: timestamp, key: record.key,
                        value: record.value, headers: record.headers))
            }
        }
        return (records, next)
    }
}

extension KeelClient {
    /// Fetches records of `topic`-`partition` from `offset`, waiting up to `maxWaitMs` for data.
    ///
    /// Retries retriable errors (refreshing the leader); OFFSET_OUT_OF_RANGE is thrown as
    /// `.broker(.offsetOutOfRange, …)`.
    public func fetch(
        topic: String,
        partition: Int32,
        offset: Offset,
        maxWaitMs: Int32 = 500,
        maxBytes: Int32 = 1024 * 1024
    ) async throws(KeelClientError) -> FetchResult {
        let request = FetchRequest(
            replicaId: -1, maxWaitMs: maxWaitMs, minBytes: 1, maxBytes: maxBytes, isolationLevel: 0, sessionId: 0,
            sessionEpoch: -1,
            topics: [
                .init(
                    topic: topic,
                    partitions: [
                        .init(
                            partition: partition, currentLeaderEpoch: -1, fetchOffset: offset.value, logStartOffset: -1,
                            partitionMaxBytes: maxBytes)
                    ])
            ],
            forgottenTopicsData: [], rackId: "")
        let timeoutMs = configuration.requestTimeoutMs + Int64(maxWaitMs)
        return try await withRetries { () async throws(KeelClientError) -> FetchResult in
            let connection = try await self.leaderConnection(topic: topic, partition: partition)
            let response = try await connection.send(request, timeoutMs: timeoutMs)
            guard response.errorCode == .none else { throw .broker(response.errorCode, context: "fetch") }
            guard
                let data = response.responses.first(where: { $0.topic == topic })?.partitions.first(where: {
                    $0.partitionIndex == partition
                })
            else { throw .protocolViolation("Fetch answer does not mention \(topic)-\(partition)") }
            guard data.errorCode == .none else {
                throw .broker(data.errorCode, context: "fetch \(topic)-\(partition) at \(offset)")
            }
            var decoded: (records: [ConsumerRecord], next: Offset?) = ([], nil)
            if case .bytes(let bytes) = data.records {
                decoded = try FetchDecoder.decode(bytes, topic: topic, partition: partition, from: offset)
                // Bytes but not one whole batch: a broker without KIP-74 cut a batch larger than
                // maxBytes, and asking again the same way would never make progress.
                if decoded.next == nil && bytes.readableBytes > 0 {
                    throw .invalidArgument(
                        "the record batch at \(topic)-\(partition) offset \(offset) is larger than maxBytes "
                            + "\(maxBytes); fetch with a larger maxBytes")
                }
            }
            return FetchResult(
                records: decoded.records, highWatermark: Offset(data.highWatermark),
                logStartOffset: Offset(data.logStartOffset), nextOffset: max(decoded.next ?? offset, offset))
        } onRetriable: { error in
            if error.invalidatesMetadata { self.invalidate(topic: topic) }
        }
    }

    /// Looks up an offset of `topic`-`partition`; nil when no record has a timestamp at or after the one given.
    public func listOffsets(topic: String, partition: Int32, _ spec: OffsetSpec) async throws(KeelClientError)
        -> Offset?
    {
        let timestamp: Int64 =
            switch spec {
            case .earliest: -2
            case .latest: -1
            case .timestamp(let ms): ms
            }
        let request = ListOffsetsRequest(
            replicaId: -1, isolationLevel: 0,
            topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: timestamp)])])
        return try await withRetries { () async throws(KeelClientError) -> Offset? in
            let connection = try await self.leaderConnection(topic: topic, partition: partition)
            let response = try await connection.send(request, timeoutMs: self.configuration.requestTimeoutMs)
            guard
                let answer = response.topics.first(where: { $0.name == topic })?.partitions.first(where: {
                    $0.partitionIndex == partition
                })
            else { throw .protocolViolation("ListOffsets answer does not mention \(topic)-\(partition)") }
            guard answer.errorCode == .none else {
                throw .broker(answer.errorCode, context: "list offsets of \(topic)-\(partition)")
            }
            return answer.offset < 0 ? nil : Offset(answer.offset)
        } onRetriable: { error in
            if error.invalidatesMetadata { self.invalidate(topic: topic) }
        }
    }

    /// A consumer of one partition from `offset`; see `PartitionConsumer`.
    public nonisolated func partitionConsumer(
        topic: String,
        partition: Int32,
        from offset: Offset,
        maxWaitMs: Int32 = 500,
        maxBytes: Int32 = 1024 * 1024,
        idleTimeoutMs: Int64? = nil
    ) -> PartitionConsumer {
        PartitionConsumer(
            client: self, topic: topic, partition: partition, offset: offset, maxWaitMs: maxWaitMs, maxBytes: maxBytes,
            idleTimeoutMs: idleTimeoutMs)
    }
}

/// The records of one partition from a starting offset, as an AsyncSequence (no consumer group).
///
/// Each iterator fetches from the leader with long polls of `maxWaitMs` and yields records in
/// offset order. It ends (returns nil) only when `idleTimeoutMs` is set and that long has passed
/// with no record, or when the task is cancelled.
public struct PartitionConsumer: AsyncSequence, Sendable {
    /// Yields `ConsumerRecord`s.
    public typealias Element = ConsumerRecord
    /// Iteration throws `KeelClientError`.
    public typealias Failure = KeelClientError

    let client: KeelClient
    let topic: String
    let partition: Int32
    let offset: Offset
    let maxWaitMs: Int32
    let maxBytes: Int32
    let idleTimeoutMs: Int64?

    /// Starts iterating from the consumer's offset.
    public func makeAsyncIterator() -> Iterator {
        Iterator(consumer: self, position: offset)
    }

    /// Fetches ahead and hands out one record at a time.
    public struct Iterator: AsyncIteratorProtocol, Sendable {
        /// Yields `ConsumerRecord`s.
        public typealias Element = ConsumerRecord
        /// Iteration throws `KeelClientError`.
        public typealias Failure = KeelClientError

        let consumer: PartitionConsumer
        /// The offset of the next fetch.
        public private(set) var position: Offset
        private var buffered: [ConsumerRecord] = []
        private var nextIndex = 0

        init(consumer: PartitionConsumer, position: Offset) {
            self.consumer = consumer
            self.position = position
        }

        /// The next record, fetching as needed; nil after `idleTimeoutMs` without records or on cancellation.
        public mutating func next() async throws(KeelClientError) -> ConsumerRecord? {
            let clock = ContinuousClock()
            let idleSince = clock.now
            while nextIndex >= buffered.count {
                if Task.isCancelled { return nil }
                if let idle = consumer.idleTimeoutMs, clock.now - idleSince >= .milliseconds(idle) { return nil }
                var wait = consumer.maxWaitMs
                if let idle = consumer.idleTimeoutMs {
                    let left = Duration.milliseconds(idle) - (clock.now - idleSince)
                    let leftMs = Swift.max(
                        1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
                    wait = Int32(Swift.min(Int64(wait), leftMs))
                }
                let result = try await consumer.client.fetch(
                    topic: consumer.topic, partition: consumer.partition, offset: position, maxWaitMs: wait,
                    maxBytes: consumer.maxBytes)
                buffered = result.records
                nextIndex = 0
                position = result.nextOffset
            }
            let record = buffered[nextIndex]
            nextIndex += 1
            return record
        }

        /// `AsyncIteratorProtocol`: as `next()`.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(KeelClientError)
            -> ConsumerRecord?
        {
            try await next()
        }
    }
}
