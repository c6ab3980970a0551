import Foundation
import NIOCore
import Records
import XCTest

/// A small seeded generator (SplitMix64), so that every randomized test replays from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed of a randomized test: `KEEL_SEED` from the environment, or a fresh one. Printed either way.
func testSeed(_ name: String) -> UInt64 {
    let environment = ProcessInfo.processInfo.environment
    let seed = environment["KEEL_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
    print("\(name): seed \(seed) (replay with KEEL_SEED=\(seed))")
    return seed
}

/// The bytes of a file under Tests/RecordsTests/Fixtures.
func fixtureBytes(_ path: String) throws -> ByteBuffer {
    guard let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
        throw FixtureMissing(path: "Fixtures")
    }
    let data = try Data(contentsOf: root.appendingPathComponent(path))
    return ByteBuffer(bytes: data)
}

struct FixtureMissing: Error { let path: String }

func fixtureJSON<T: Decodable>(_ path: String, as type: T.Type) throws -> T {
    let bytes = try fixtureBytes(path)
    return try JSONDecoder().decode(T.self, from: Data(bytes.readableBytesView))
}

func buffer(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

func bytes(_ buffer: ByteBuffer?) -> [UInt8]? { buffer.map { Array($0.readableBytesView) } }

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        out.append(UInt8(hex[index..<next], radix: 16) ?? 0)
        index = next
    }
    return out
}

func randomBytes(_ count: Int, using rng: inout some RandomNumberGenerator) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

/// Records of varied shapes: null key, null value, empty value, headers with null and empty values.
func sampleRecords() -> [(timestamp: Int64, key: ByteBuffer?, value: ByteBuffer?, headers: [RecordHeader])] {
    [
        (1_000, buffer("k0"), buffer("v0"), []),
        (1_001, nil, buffer("null key"), [RecordHeader(key: "h", value: buffer("x"))]),
        (1_002, buffer("tombstone"), nil, []),
        (
            999, buffer("k3"), ByteBuffer(),
            [RecordHeader(key: "null", value: nil), RecordHeader(key: "", value: ByteBuffer())]
        ),
        (1_500, buffer(String(repeating: "payload ", count: 40)), buffer(String(repeating: "v", count: 200)), []),
    ]
}

/// An uncompressed or LZ4 batch of `sampleRecords()`.
func sampleBatch(codec: CompressionCodec = .none, baseOffset: Int64 = 0) throws -> ByteBuffer {
    var builder = RecordBatchBuilder()
    for record in sampleRecords() {
        builder.append(timestamp: record.timestamp, key: record.key, value: record.value, headers: record.headers)
    }
    return try builder.build(codec: codec, baseOffset: Offset(baseOffset))
}

/// The value of a JSON field that holds bytes: null, a string (hex or text), or a
/// `{"length", "crc32c"}` digest for long values.
enum ExpectedBytes: Decodable, Equatable {
    case null
    case string(String)
    case digest(length: Int, crc32c: UInt32)

    private struct Digest: Decodable {
        let length: Int
        let crc32c: UInt32
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else {
            let digest = try container.decode(Digest.self)
            self = .digest(length: digest.length, crc32c: digest.crc32c)
        }
    }

    /// Checks `actual` against this expectation; strings are hex when `hex`, UTF-8 text otherwise.
    func check(_ actual: ByteBuffer?, hex: Bool, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        switch self {
        case .null:
            XCTAssertNil(actual, "\(what) should be null", file: file, line: line)
        case .string(let string):
            let expected = hex ? hexBytes(string) : Array(string.utf8)
            XCTAssertEqual(bytes(actual), expected, what, file: file, line: line)
        case .digest(let length, let crc):
            guard let actual else { return XCTFail("\(what) is null", file: file, line: line) }
            XCTAssertEqual(actual.readableBytes, length, "\(what) length", file: file, line: line)
            XCTAssertEqual(
                CRC32C.checksum(actual, at: actual.readerIndex, length: actual.readableBytes), crc, "\(what) CRC",
                file: file, line: line)
        }
    }
}

struct ExpectedRecordHeader: Decodable {
    let key: String
    let value: ExpectedBytes
}

struct ExpectedRecord: Decodable {
    let timestamp: Int64?
    let timestampDelta: Int64?
    let offsetDelta: Int32?
    let key: ExpectedBytes
    let value: ExpectedBytes
    let headers: [ExpectedRecordHeader]

    func check(_ record: Record, hex: Bool, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        if let timestampDelta { XCTAssertEqual(record.timestampDelta, timestampDelta, "\(what) timestampDelta") }
        if let offsetDelta { XCTAssertEqual(record.offsetDelta, offsetDelta, "\(what) offsetDelta") }
        XCTAssertEqual(record.attributes, 0, "\(what) attributes", file: file, line: line)
        key.check(record.key, hex: hex, "\(what) key", file: file, line: line)
        value.check(record.value, hex: hex, "\(what) value", file: file, line: line)
        XCTAssertEqual(record.headers.map(\.key), headers.map(\.key), "\(what) header keys", file: file, line: line)
        for (actual, expected) in zip(record.headers, headers) {
            expected.value.check(actual.value, hex: hex, "\(what) header \(expected.key)", file: file, line: line)
        }
    }
}
