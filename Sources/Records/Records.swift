// Records: the Kafka record batch v2 ("magic 2") format, the unit Keel stores,
// replicates and serves.
//
// What this module owns: the 61-byte batch header, CRC-32C over attributes-to-end,
// records and their varints, control batches, and the LZ4 frame codec of the records
// section. What it must never do: decode a batch's records on a path that only moves
// batches (append, replicate, fetch). The broker reads the header, checks the CRC and
// rewrites `baseOffset` and `partitionLeaderEpoch`, which the CRC does not cover.
//
// Main types: `RecordBatchHeader` (a parsed header), `RecordBatch` (validation, the
// in-place rewrites on a ByteBuffer, `compress`, `records(of:)`), `CRC32C`,
// `RecordBatchBuilder` (encodes records straight into a new batch), `RecordReader`
// (decodes a batch's records one by one), `Record` / `RecordHeader`, `ControlRecord`,
// `LZ4Frame` (the records section codec) and the varints on `ByteBuffer` (`Varint`),
// which KafkaProtocol reuses for compact lengths and tagged fields.

import CCRC32C
import NIOCore

/// The position of a record in its partition: 0, 1, 2, … with no gaps inside a batch.
public struct Offset: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw Kafka offset.
    public var value: Int64

    /// Wraps a raw Kafka offset.
    @inlinable public init(_ value: Int64) { self.value = value }

    /// The offset `n` positions later.
    @inlinable public func advanced(by n: Int64) -> Offset { Offset(value + n) }

    @inlinable public static func < (lhs: Offset, rhs: Offset) -> Bool { lhs.value < rhs.value }

    /// The decimal value, as Kafka tools print it.
    public var description: String { String(value) }

    /// Offset 0, where every fresh partition starts.
    public static let zero = Offset(0)
}

/// CRC-32C (Castagnoli), the checksum of record batch v2.
public enum CRC32C {
    /// The checksum of `bytes`, continuing from `seed` (0 for a fresh checksum).
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        keel_crc32c(seed, bytes.baseAddress, bytes.count)
    }

    /// The checksum of the readable bytes in `range` of `buffer`.
    @inlinable
    public static func checksum(_ buffer: ByteBuffer, at index: Int, length: Int) -> UInt32 {
        buffer.withVeryUnsafeBytes { raw in
            keel_crc32c(0, raw.baseAddress.map { $0 + index }, length)
        }
    }

    /// Whether the CPU's crc32 instruction is in use.
    public static var usesHardware: Bool { keel_crc32c_hardware() != 0 }
}
