// A verbatim copy of `CrashWorkload` from Sources/keel-crash-writer/CrashWriter.swift:
// the crash test regenerates the batch the writer appended at each offset. (An
// executable target cannot be imported by a test here, so the pure function is copied;
// a mismatch would show up at once as a failing byte comparison.)

import LogStorage
import NIOCore
import Records

/// The deterministic content of the crash test's log.
enum CrashWorkload {
    /// The time the writer passes as `now` (the log never reads the clock).
    static let baseTimeMs: Int64 = 1_700_000_000_000

    /// The log configuration both sides use: small segments, so that rolls happen often.
    static let config = LogConfig(segmentBytesMax: 48 * 1024, indexIntervalBytes: 1024)

    /// SplitMix64, a tiny seeded generator.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The batch at `offset`: 1–5 records (an opaque payload of 0–599 bytes), epoch 1.
    static func batch(seed: UInt64, offset: Offset) -> ByteBuffer {
        var generator = Generator(state: seed ^ (UInt64(bitPattern: offset.value) &* 0xD6E8_FEB8_6659_FD93))
        let records = Int32(1 + generator.next() % 5)
        let payloadBytes = Int(generator.next() % 600)
        let header = RecordBatchHeader(
            baseOffset: offset.value,
            batchLength: Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + payloadBytes),
            partitionLeaderEpoch: 1,
            lastOffsetDelta: records - 1,
            baseTimestamp: baseTimeMs + offset.value,
            maxTimestamp: baseTimeMs + offset.value + Int64(records) - 1,
            recordsCount: records)
        var buffer = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + payloadBytes)
        header.write(to: &buffer)
        for _ in 0..<payloadBytes { buffer.writeInteger(UInt8(truncatingIfNeeded: generator.next())) }
        RecordBatch.updateCRC(in: &buffer, at: 0)
        return buffer
    }
}
