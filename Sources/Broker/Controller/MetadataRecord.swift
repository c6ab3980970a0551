import NIOCore
import Records

/// A node as the controller knows it: its id and the addresses clients and peers reach it at.
public struct NodeRegistration: Hashable, Sendable {
    /// The node id (`--id`).
    public var id: Int32
    /// The host clients connect to (Metadata's broker host).
    public var clientHost: String
    /// The port clients connect to.
    public var clientPort: Int32
    /// The host peers connect to (Raft traffic).
    public var clusterHost: String
    /// The port peers connect to.
    public var clusterPort: Int32
    /// A number the node draws at each start (from its seeded generator), as Kafka's incarnation id: a retried
    /// registration of one process changes nothing, while every restart is news and so writes a record (which also
    /// brings a restarted node's metadata replica up to date at once).
    public var incarnation: Int64

    /// Describes a node.
    public init(
        id: Int32, clientHost: String, clientPort: Int32, clusterHost: String, clusterPort: Int32,
        incarnation: Int64 = 0
    ) {
        self.id = id
        self.clientHost = clientHost
        self.clientPort = clientPort
        self.clusterHost = clusterHost
        self.clusterPort = clusterPort
        self.incarnation = incarnation
    }
}

/// One change to the cluster metadata: a record of the controller's log (group 0, `__cluster_metadata`-0).
public enum MetadataRecord: Hashable, Sendable {
    /// A node joined (or re-registered with new addresses).
    case nodeRegistered(NodeRegistration)
    /// A topic was created; `assignment[p]` lists partition p's replicas, the preferred leader first.
    case topicCreated(name: String, assignment: [[Int32]], overrides: [String: String])
    /// A topic was deleted.
    case topicDeleted(name: String)
    /// A topic's config overrides were replaced by `overrides` (the whole set, not a delta).
    case topicConfigChanged(name: String, overrides: [String: String])
    /// A partition's Raft group elected `leader` in `term` (informational: Metadata answers report it).
    case partitionLeaderChanged(topic: String, partition: Int32, leader: Int32, term: Int64)
    /// Producer ids below `nextBlockStart` are handed out; the next block starts there.
    case producerIdBlockAllocated(nextBlockStart: Int64)

    /// The record type, written as the record's key.
    public var type: MetadataRecordType {
        switch self {
        case .nodeRegistered: .nodeRegistered
        case .topicCreated: .topicCreated
        case .topicDeleted: .topicDeleted
        case .topicConfigChanged: .topicConfigChanged
        case .partitionLeaderChanged: .partitionLeaderChanged
        case .producerIdBlockAllocated: .producerIdBlockAllocated
        }
    }
}

/// The type code of a metadata record (the record key: 2 bytes, big-endian).
public struct MetadataRecordType: Hashable, Sendable, CustomStringConvertible {
    /// The code.
    public var code: UInt16

    /// Wraps a code.
    public init(_ code: UInt16) { self.code = code }

    /// `NodeRegistered`.
    public static let nodeRegistered = MetadataRecordType(1)
    /// `TopicCreated`.
    public static let topicCreated = MetadataRecordType(2)
    /// `TopicDeleted`.
    public static let topicDeleted = MetadataRecordType(3)
    /// `TopicConfigChanged`.
    public static let topicConfigChanged = MetadataRecordType(4)
    /// `PartitionLeaderChanged`.
    public static let partitionLeaderChanged = MetadataRecordType(5)
    /// `ProducerIdBlockAllocated`.
    public static let producerIdBlockAllocated = MetadataRecordType(6)

    /// The code in decimal.
    public var description: String { String(code) }
}

/// Why bytes are not a metadata record.
public enum MetadataRecordError: Error, Hashable, Sendable {
    /// The key is missing or not 2 bytes.
    case badKey
    /// The key names a type this version does not know.
    case unknownType(MetadataRecordType)
    /// The value's version byte is one this code does not read.
    case unsupportedVersion(type: MetadataRecordType, version: UInt8)
    /// The value ends inside a field.
    case truncated(type: MetadataRecordType)
    /// A field is out of range (a negative count, a length past a limit, invalid UTF-8, a duplicate key).
    case invalid(type: MetadataRecordType, reason: String)
    /// Bytes remain after the last field.
    case trailingBytes(type: MetadataRecordType, count: Int)
    /// The batch itself is malformed.
    case badBatch(String)
}

/// The metadata record codec: record key = type, record value = a versioned binary body.
///
/// Key: the type code, 2 bytes, unsigned big-endian (`MetadataRecordType`).
///
/// Value: 1 byte version (always 1 today), then the fields of the type, all big-endian, no padding:
///
/// | type | fields after the version byte |
/// | --- | --- |
/// | 1 NodeRegistered | id i32, clientHost str, clientPort i32, clusterHost str, clusterPort i32, incarnation i64 |
/// | 2 TopicCreated | name str, partitions i32, per partition (replicas i32, that many node ids i32), overrides map |
/// | 3 TopicDeleted | name str |
/// | 4 TopicConfigChanged | name str, overrides map |
/// | 5 PartitionLeaderChanged | topic str, partition i32, leader i32 (-1: none), term i64 |
/// | 6 ProducerIdBlockAllocated | nextBlockStart i64 |
///
/// `str` is a u16 byte length then that many bytes of UTF-8 (at most `stringBytesMax`); `map` is a u32 count then
/// that many (key str, value str) pairs in ascending key order, so that equal records encode to equal bytes.
/// A decoder refuses counts above `countMax`, lengths past the end, and trailing bytes; a reader of version 1
/// refuses any other version (a future version must bump it and keep reading 1).
public enum MetadataRecordCodec {
    /// The value version this code writes and reads.
    public static let version: UInt8 = 1
    /// The longest string field, in bytes.
    public static let stringBytesMax = 32 * 1024
    /// The largest count of partitions, replicas of a partition, or config entries.
    public static let countMax: Int32 = 100_000

    /// The record key of `record`.
    public static func key(_ record: MetadataRecord) -> ByteBuffer {
        var key = ByteBuffer()
        key.writeInteger(record.type.code)
        return key
    }

    /// The record value of `record`.
    public static func value(_ record: MetadataRecord) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeInteger(version)
        switch record {
        case .nodeRegistered(let node):
            out.writeInteger(node.id)
            writeString(node.clientHost, to: &out)
            out.writeInteger(node.clientPort)
            writeString(node.clusterHost, to: &out)
            out.writeInteger(node.clusterPort)
            out.writeInteger(node.incarnation)
        case .topicCreated(let name, let assignment, let overrides):
            writeString(name, to: &out)
            out.writeInteger(Int32(assignment.count))
            for replicas in assignment {
                out.writeInteger(Int32(replicas.count))
                for node in replicas { out.writeInteger(node) }
            }
            writeMap(overrides, to: &out)
        case .topicDeleted(let name):
            writeString(name, to: &out)
        case .topicConfigChanged(let name, let overrides):
            writeString(name, to: &out)
            writeMap(overrides, to: &out)
        case .partitionLeaderChanged(let topic, let partition, let leader, let term):
            writeString(topic, to: &out)
            out.writeInteger(partition)
            out.writeInteger(leader)
            out.writeInteger(term)
        case .producerIdBlockAllocated(let nextBlockStart):
            out.writeInteger(nextBlockStart)
        }
        return out
    }

    /// Decodes one record from its key and value; throws on anything malformed.
    public static func decode(key: ByteBuffer?, value: ByteBuffer?) throws(MetadataRecordError) -> MetadataRecord {
        guard let key, key.readableBytes == 2, let code = key.getInteger(at: key.readerIndex, as: UInt16.self) else {
            throw .badKey
        }
        let type = MetadataRecordType(code)
        guard var body = value else { throw .truncated(type: type) }
        let reader = FieldReader(type: type)
        let version = try reader.integer(&body, as: UInt8.self)
        let record: MetadataRecord
        switch type {
        case .nodeRegistered, .topicCreated, .topicDeleted, .topicConfigChanged, .partitionLeaderChanged,
            .producerIdBlockAllocated:
            guard version == Self.version else { throw .unsupportedVersion(type: type, version: version) }
        default:
            throw .unknownType(type)
        }
        switch type {
        case .nodeRegistered:
            record = .nodeRegistered(
                NodeRegistration(
                    id: try reader.integer(&body), clientHost: try reader.string(&body),
                    clientPort: try reader.integer(&body), clusterHost: try reader.string(&body),
                    clusterPort: try reader.integer(&body), incarnation: try reader.integer(&body)))
        case .topicCreated:
            let name = try reader.string(&body)
            let partitions = try reader.count(&body)
            var assignment: [[Int32]] = []
            assignment.reserveCapacity(min(partitions, 1024))
            for _ in 0..<partitions {
                let replicas = try reader.count(&body)
                var nodes: [Int32] = []
                for _ in 0..<replicas { nodes.append(try reader.integer(&body)) }
                assignment.append(nodes)
            }
            record = .topicCreated(name: name, assignment: assignment, overrides: try reader.map(&body))
        case .topicDeleted:
            record = .topicDeleted(name: try reader.string(&body))
        case .topicConfigChanged:
            record = .topicConfigChanged(name: try reader.string(&body), overrides: try reader.map(&body))
        case .partitionLeaderChanged:
            record = .partitionLeaderChanged(
                topic: try reader.string(&body), partition: try reader.integer(&body),
                leader: try reader.integer(&body), term: try reader.integer(&body))
        default:
            record = .producerIdBlockAllocated(nextBlockStart: try reader.integer(&body))
        }
        guard body.readableBytes == 0 else { throw .trailingBytes(type: type, count: body.readableBytes) }
        return record
    }

    /// One uncompressed record batch (base offset 0; the replica stamps offsets and term) holding `records`.
    public static func batch(_ records: [MetadataRecord], timestamp: Int64) -> ByteBuffer {
        precondition(!records.isEmpty, "a metadata batch holds at least one record")
        var builder = RecordBatchBuilder(baseTimestamp: timestamp)
        for record in records { builder.append(timestamp: timestamp, key: key(record), value: value(record)) }
        do {
            return try builder.build()
        } catch {
            // Uncompressed building fails only on a broken invariant (no codec is involved).
            preconditionFailure("building an uncompressed metadata batch failed: \(error)")
        }
    }

    /// The records of one metadata batch (validated, CRC-checked) with their offsets; a control batch has none.
    public static func records(ofBatch bytes: ByteBuffer) throws(MetadataRecordError)
        -> [(offset: Int64, record: MetadataRecord)]
    {
        let header: RecordBatchHeader
        let records: [Record]
        do throws(RecordBatchError) {
            header = try RecordBatchHeader.read(from: bytes, at: bytes.readerIndex)
            if header.attributes.isControl { return [] }
            records = try RecordBatch.records(of: bytes)
        } catch {
            throw .badBatch("\(error)")
        }
        var result: [(Int64, MetadataRecord)] = []
        result.reserveCapacity(records.count)
        for record in records {
            result.append(
                (header.baseOffset &+ Int64(record.offsetDelta), try decode(key: record.key, value: record.value)))
        }
        return result
    }

    static func writeString(_ string: String, to out: inout ByteBuffer) {
        let bytes = Array(string.utf8)
        precondition(bytes.count <= stringBytesMax, "a metadata string is longer than \(stringBytesMax) bytes")
        out.writeInteger(UInt16(bytes.count))
        out.writeBytes(bytes)
    }

    static func writeMap(_ map: [String: String], to out: inout ByteBuffer) {
        out.writeInteger(UInt32(map.count))
        for (key, value) in map.sorted(by: { $0.key < $1.key }) {
            writeString(key, to: &out)
            writeString(value, to: &out)
        }
    }

    /// Bounds-checked field reads that throw `MetadataRecordError`.
    struct FieldReader {
        let type: MetadataRecordType

        func integer<T: FixedWidthInteger>(_ body: inout ByteBuffer, as: T.Type = T.self)
            throws(MetadataRecordError) -> T
        {
            guard let value = body.readInteger(as: T.self) else { throw .truncated(type: type) }
            return value
        }

        func count(_ body: inout ByteBuffer) throws(MetadataRecordError) -> Int {
            let count: Int32 = try integer(&body)
            guard (0...MetadataRecordCodec.countMax).contains(count) else {
                throw .invalid(type: type, reason: "count \(count) outside 0...\(MetadataRecordCodec.countMax)")
            }
            return Int(count)
        }

        func string(_ body: inout ByteBuffer) throws(MetadataRecordError) -> String {
            let length = Int(try integer(&body, as: UInt16.self))
            guard length <= MetadataRecordCodec.stringBytesMax else {
                throw .invalid(type: type, reason: "string of \(length) bytes")
            }
            guard let bytes = body.readBytes(length: length) else { throw .truncated(type: type) }
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw .invalid(type: type, reason: "string is not UTF-8")
            }
            return string
        }

        func map(_ body: inout ByteBuffer) throws(MetadataRecordError) -> [String: String] {
            let count = try integer(&body, as: UInt32.self)
            guard count <= UInt32(MetadataRecordCodec.countMax) else {
                throw .invalid(type: type, reason: "map of \(count) entries")
            }
            var map: [String: String] = [:]
            var previous: String?
            for _ in 0..<count {
                let key = try string(&body)
                guard previous.map({ $0 < key }) ?? true else {
                    throw .invalid(type: type, reason: "map keys out of order or repeated at \(key)")
                }
                previous = key
                map[key] = try string(&body)
            }
            return map
        }
    }
}
