import NIOCore
import Records

/// A topic and one of its partitions.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    /// The topic name.
    public var topic: String
    /// The partition index.
    public var partition: Int32

    /// Creates a value with every field given.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// `topic-partition`.
    public var description: String { "\(topic)-\(partition)" }
}

/// A batch that stopped taking records: its builder, and who waits for each record's offset.
struct ClosedBatch<Waiter> {
    var topicPartition: TopicPartition
    var builder: RecordBatchBuilder
    var waiters: [(offsetDelta: Int32, waiter: Waiter)]
    /// Uncompressed batch size, for buffer accounting.
    var bytes: Int
    var recordCount: Int32 { builder.count }
}

/// The producer's batching state, one open batch per partition, with no I/O and no clock.
///
/// Records are encoded straight into the open batch's `RecordBatchBuilder` (no per-record
/// allocation beyond the buffer growing). A batch closes when the next record would take it
/// past `batchBytesMax` (a lone record larger than that still gets its own batch), when it
/// reaches `batchBytesMax`, when its linger time is up (`closeExpired`), or on flush
/// (`closeAll`). The caller owns the clock: times are milliseconds it passes in.
struct RecordAccumulator<Waiter> {
    struct OpenBatch {
        var builder: RecordBatchBuilder
        var waiters: [(offsetDelta: Int32, waiter: Waiter)]
        var createdAtMs: Int64
        var generation: Int
    }

    /// What `append` did.
    struct AppendOutcome {
        /// Batches that closed because of this append, in the order they closed.
        var closed: [ClosedBatch<Waiter>] = []
        /// Set when the record started a new open batch: arm its linger timer with this generation.
        var startedGeneration: Int?
        /// Bytes the record added to its batch (with the header, for a new batch).
        var addedBytes = 0
    }

    let batchBytesMax: Int
    private(set) var open: [TopicPartition: OpenBatch] = [:]
    private var generations = 0

    init(batchBytesMax: Int) {
        precondition(batchBytesMax > RecordBatchHeader.size, "batchBytesMax must exceed the batch header")
        self.batchBytesMax = batchBytesMax
    }

    /// An upper bound of the bytes one record adds to a batch.
    static func recordBytesEstimate(key: ByteBuffer?, value: ByteBuffer?, headers: [RecordHeader]) -> Int {
        var bytes = Record.overheadBytesMax + (key?.readableBytes ?? 0) + (value?.readableBytes ?? 0)
        for header in headers {
            bytes += 10 + header.key.utf8.count + (header.value?.readableBytes ?? 0)
        }
        return bytes
    }

    /// Appends one record to `partition`'s open batch, opening or closing batches as needed.
    mutating func append(
        to partition: TopicPartition,
        timestamp: Int64,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader],
        waiter: Waiter?,
        nowMs: Int64
    ) -> AppendOutcome {
        var outcome = AppendOutcome()
        let estimate = Self.recordBytesEstimate(key: key, value: value, headers: headers)
        if let current = open[partition], current.builder.count > 0,
            current.builder.uncompressedBatchBytes + estimate > batchBytesMax
        {
            if let closed = close(partition) { outcome.closed.append(closed) }
        }
        if open[partition] == nil {
            generations += 1
            // Room for a whole batch up front (as Kafka's BufferPool does): no regrowth while appending.
            let capacity = max(batchBytesMax, RecordBatchHeader.size + estimate)
            open[partition] = OpenBatch(
                builder: RecordBatchBuilder(capacity: capacity), waiters: [], createdAtMs: nowMs,
                generation: generations)
            outcome.startedGeneration = generations
        }
        // Mutate in place so the builder's buffer stays uniquely referenced (no copy on append).
        let before = outcome.startedGeneration == nil ? open[partition]!.builder.uncompressedBatchBytes : 0
        open[partition]!.builder.append(timestamp: timestamp, key: key, value: value, headers: headers)
        outcome.addedBytes = open[partition]!.builder.uncompressedBatchBytes - before
        if let waiter {
            let delta = open[partition]!.builder.lastOffsetDelta
            open[partition]!.waiters.append((delta, waiter))
        }
        if open[partition]!.builder.uncompressedBatchBytes >= batchBytesMax, let closed = close(partition) {
            outcome.closed.append(closed)
        }
        return outcome
    }

    /// Closes `partition`'s open batch, if any.
    mutating func close(_ partition: TopicPartition) -> ClosedBatch<Waiter>? {
        guard let batch = open.removeValue(forKey: partition) else { return nil }
        return ClosedBatch(
            topicPartition: partition, builder: batch.builder, waiters: batch.waiters,
            bytes: batch.builder.uncompressedBatchBytes)
    }

    /// Closes `partition`'s open batch if it is still the one of `generation` (its linger timer fired).
    mutating func close(_ partition: TopicPartition, generation: Int) -> ClosedBatch<Waiter>? {
        guard open[partition]?.generation == generation else { return nil }
        return close(partition)
    }

    /// Closes every open batch older than `lingerMs` at `nowMs`.
    mutating func closeExpired(nowMs: Int64, lingerMs: Int64) -> [ClosedBatch<Waiter>] {
        let due = open.filter { nowMs - $0.value.createdAtMs >= lingerMs }.keys.sorted {
            $0.description < $1.description
        }
        return due.compactMap { close($0) }
    }

    /// Closes every open batch (flush).
    mutating func closeAll() -> [ClosedBatch<Waiter>] {
        open.keys.sorted { $0.description < $1.description }.compactMap { close($0) }
    }
}

/// Idempotent-producer sequence numbers per partition (Kafka's `TransactionManager` numbering).
///
/// A batch's base sequence is the partition's next sequence when the batch is first sent;
/// retries keep it, so the broker recognises a duplicate. Sequences wrap from `Int32.max` to 0
/// as Kafka's `DefaultRecordBatch.incrementSequence` does.
struct SequenceNumbers {
    private var next: [TopicPartition: Int32] = [:]

    /// The next sequence of `partition` (0 for a partition never written).
    func peek(_ partition: TopicPartition) -> Int32 { next[partition] ?? 0 }

    /// Takes `count` sequences for a batch of `partition`; returns its base sequence.
    mutating func assign(_ partition: TopicPartition, count: Int32) -> Int32 {
        let base = peek(partition)
        next[partition] = Self.increment(base, by: count)
        return base
    }

    /// Sets the next sequence of `partition` (after batches were dropped and the rest renumbered).
    mutating func reset(_ partition: TopicPartition, to sequence: Int32) {
        next[partition] = sequence
    }

    /// `sequence + count`, wrapping past `Int32.max` to 0.
    static func increment(_ sequence: Int32, by count: Int32) -> Int32 {
        let sum = Int64(sequence) + Int64(count)
        return sum > Int64(Int32.max) ? Int32(sum - Int64(Int32.max) - 1) : Int32(sum)
    }
}
