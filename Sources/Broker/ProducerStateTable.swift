import KafkaProtocol
import Records

/// Idempotent producer state of one partition: for each producer id its epoch and the
/// metadata of its last 5 batches (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`,
/// matching at most 5 requests in flight per connection).
///
/// A pure value: `check` says what to do with a batch, `record` notes an appended one.
/// After a restart the table is rebuilt by feeding every stored batch header to `record`.
public struct ProducerStateTable: Sendable {
    /// What the table keeps of one appended batch.
    public struct BatchMetadata: Sendable, Equatable {
        /// The batch's `baseSequence`.
        public var firstSequence: Int32
        /// Its last sequence (`baseSequence + lastOffsetDelta`, wrapping past Int32.max to 0).
        public var lastSequence: Int32
        /// The offset the broker gave its first record.
        public var firstOffset: Offset
        /// The offset of its last record.
        public var lastOffset: Offset

        /// Creates the metadata of one batch.
        public init(firstSequence: Int32, lastSequence: Int32, firstOffset: Offset, lastOffset: Offset) {
            self.firstSequence = firstSequence
            self.lastSequence = lastSequence
            self.firstOffset = firstOffset
            self.lastOffset = lastOffset
        }
    }

    /// What to do with a batch from an idempotent producer.
    public enum Verdict: Sendable, Equatable {
        /// Append it.
        case append
        /// An exact retry of a batch already appended: answer with its original offsets, store nothing.
        case duplicate(BatchMetadata)
        /// Refuse it with this error (OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH).
        case reject(ErrorCode)
    }

    struct Entry: Sendable {
        var epoch: Int16
        var batches: [BatchMetadata]
    }

    /// Batches remembered per producer.
    public static let batchesRetained = 5

    var entries: [Int64: Entry] = [:]

    /// An empty table.
    public init() {}

    /// How many producers the table knows.
    public var producerCount: Int { entries.count }

    /// The last sequence of a batch: `first + lastOffsetDelta`, wrapping past Int32.max to 0 as Kafka does.
    public static func lastSequence(first: Int32, lastOffsetDelta: Int32) -> Int32 {
        if first > Int32.max - lastOffsetDelta { return lastOffsetDelta - (Int32.max - first) - 1 }
        return first + lastOffsetDelta
    }

    /// Judges a batch of `producerId` with `epoch` carrying sequences `firstSequence...lastSequence`.
    public func check(producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32) -> Verdict {
        guard let entry = entries[producerId] else {
            // Unknown producer (new, or its state was never seen here): accept, as Kafka does.
            return .append
        }
        if epoch < entry.epoch { return .reject(.invalidProducerEpoch) }
        if epoch > entry.epoch { return firstSequence == 0 ? .append : .reject(.outOfOrderSequenceNumber) }
        if let original = entry.batches.first(where: {
            $0.firstSequence == firstSequence && $0.lastSequence == lastSequence
        }) {
            return .duplicate(original)
        }
        guard let latest = entry.batches.last else { return .append }
        let expected = latest.lastSequence == Int32.max ? 0 : latest.lastSequence + 1
        return firstSequence == expected ? .append : .reject(.outOfOrderSequenceNumber)
    }

    /// Notes an appended batch (or, on recovery, a stored one). A newer epoch forgets the old batches.
    public mutating func record(producerId: Int64, epoch: Int16, batch: BatchMetadata) {
        var entry = entries[producerId] ?? Entry(epoch: epoch, batches: [])
        if epoch != entry.epoch {
            entry = Entry(epoch: epoch, batches: [])
        }
        entry.batches.append(batch)
        if entry.batches.count > Self.batchesRetained {
            entry.batches.removeFirst(entry.batches.count - Self.batchesRetained)
        }
        entries[producerId] = entry
    }

    /// Notes a stored batch header during recovery (non-idempotent and control batches are ignored).
    public mutating func recover(_ header: RecordBatchHeader) {
        guard header.producerId >= 0, header.baseSequence >= 0, !header.attributes.isControl else { return }
        record(
            producerId: header.producerId, epoch: header.producerEpoch,
            batch: BatchMetadata(
                firstSequence: header.baseSequence,
                lastSequence: Self.lastSequence(first: header.baseSequence, lastOffsetDelta: header.lastOffsetDelta),
                firstOffset: header.firstOffset, lastOffset: header.lastOffset))
    }
}
