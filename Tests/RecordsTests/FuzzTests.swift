import NIOCore
import Records
import XCTest

final class FuzzTests: XCTestCase {
    /// Applies 1–4 random mutations: bit flips, byte overwrites, truncation, insertion, duplication of a range.
    private func mutate(_ input: ByteBuffer, using rng: inout SplitMix64) -> ByteBuffer {
        var bytes = Array(input.readableBytesView)
        for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 2: bytes[at] = [0x00, 0x7F, 0x80, 0xFF][Int.random(in: 0..<4, using: &rng)]
            case 3: bytes.removeSubrange(at...)
            case 4: bytes.insert(contentsOf: randomBytes(Int.random(in: 1...16, using: &rng), using: &rng), at: at)
            default:
                let end = min(bytes.count, at + Int.random(in: 1...32, using: &rng))
                bytes.insert(contentsOf: bytes[at..<end], at: Int.random(in: 0...bytes.count, using: &rng))
            }
        }
        return ByteBuffer(bytes: bytes)
    }

    /// Decodes everything it can from `batch`; only errors may come out, never a trap.
    private func decodeEverything(_ batch: ByteBuffer) {
        _ = try? RecordBatch.validate(batch, at: 0)
        _ = try? RecordBatch.records(of: batch, decompressedBytesMax: 1 << 20)
        guard var reader = try? RecordReader(batch: batch, at: 0, decompressedBytesMax: 1 << 20) else { return }
        while let record = try? reader.next() {
            if let headers = try? ControlRecord(parsing: record) { _ = headers.type.description }
        }
    }

    /// Randomly mutated batches (uncompressed and LZ4, with the CRC fixed up half the time so that
    /// the record decoder is reached) and LZ4 frames give errors or records, and never crash.
    func testMutatedBatchesAndFramesNeverCrashTheDecoders() throws {
        var rng = SplitMix64(seed: testSeed("testMutatedBatchesAndFramesNeverCrashTheDecoders"))
        let seeds = [
            try sampleBatch(), try sampleBatch(codec: .lz4),
            RecordBatchBuilder.controlBatch(
                ControlRecord(type: .abort), value: ControlRecord.endTransactionMarkerValue(coordinatorEpoch: 1),
                timestamp: 0, isTransactional: true),
            try fixtureBytes("kcat/lz4-keys-headers.bin"), try fixtureBytes("python/mixed-lz4-python-default.bin"),
            try fixtureBytes("python/many-lz4-checksums.bin"),
        ]
        var decodedRecords = 0
        for iteration in 0..<2000 {
            let original = seeds[iteration % seeds.count]
            var batch = mutate(original, using: &rng)
            if Bool.random(using: &rng), batch.readableBytes >= RecordBatchHeader.size,
                let length: Int32 = batch.getInteger(at: 8), Int(length) + 12 <= batch.readableBytes, length >= 49
            {
                RecordBatch.updateCRC(in: &batch, at: 0)
            }
            decodeEverything(batch)
            if let records = try? RecordBatch.records(of: batch, decompressedBytesMax: 1 << 20) {
                decodedRecords += records.count
            }
            // The LZ4 frame alone, mutated in its own right.
            if original.getInteger(at: RecordBatchHeader.attributesOffset, as: Int16.self).map({ $0 & 7 }) == 3 {
                let frame = original.getSlice(at: 61, length: original.readableBytes - 61) ?? ByteBuffer()
                _ = try? LZ4Frame.decompress(mutate(frame, using: &rng), outputBytesMax: 1 << 20)
            }
        }
        print("fuzz: \(decodedRecords) records decoded from mutated batches")
    }
}
