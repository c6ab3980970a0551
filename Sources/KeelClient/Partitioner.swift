import NIOCore

/// Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`.
///
/// The same key lands on the same partition as with Kafka's Java client and librdkafka's
/// `murmur2_random` partitioner, so Keel producers and other producers agree.
public enum Partitioner {
    /// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, little-endian 4-byte
    /// blocks, tail bytes folded in as Java's fall-through switch does.
    public static func murmur2<Bytes: Collection>(_ data: Bytes) -> Int32 where Bytes.Element == UInt8 {
        let m: UInt32 = 0x5bd1_e995
        let length = data.count
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: length)
        var index = data.startIndex
        var remaining = length
        while remaining >= 4 {
            var k = UInt32(data[index])
            index = data.index(after: index)
            k |= UInt32(data[index]) << 8
            index = data.index(after: index)
            k |= UInt32(data[index]) << 16
            index = data.index(after: index)
            k |= UInt32(data[index]) << 24
            index = data.index(after: index)
            k = k &* m
            k ^= k >> 24
            k = k &* m
            h = h &* m
            h ^= k
            remaining -= 4
        }
        if remaining > 0 {
            // Java's switch falls through: byte 2 (if any), byte 1 (if any), byte 0, then multiply.
            let b0 = UInt32(data[index])
            if remaining >= 2 {
                let b1 = UInt32(data[data.index(index, offsetBy: 1)])
                if remaining >= 3 { h ^= UInt32(data[data.index(index, offsetBy: 2)]) << 16 }
                h ^= b1 << 8
            }
            h ^= b0
            h = h &* m
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    /// The partition for a record with `key` in a topic of `partitionCount` partitions.
    public static func partition(forKey key: ByteBuffer, partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        let hash = murmur2(key.readableBytesView)
        return (hash & 0x7fff_ffff) % partitionCount
    }
}
