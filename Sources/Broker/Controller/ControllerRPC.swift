import KafkaProtocol
import NIOCore
import Raft
import Replication

/// What one broker asks another over the cluster link (the body of a `PeerRPC`).
enum BrokerRPC: Equatable, Sendable {
    /// Run a command on the controller (the receiver is believed to lead group 0); the reply carries the result.
    case controllerCommand(ControllerCommand)
    /// The partitions the sender leads now, with their terms: the whole set, sent when it changes and now and
    /// then (no reply). Every node answers Metadata with what it heard.
    case leaderships([AnnouncedLeadership])
}

/// One partition a node announces it leads, with its in-sync replicas.
struct AnnouncedLeadership: Equatable, Sendable {
    var group: GroupID
    var term: Term
    var inSync: [NodeID] = []
}

/// Why an RPC body does not decode.
struct BrokerRPCError: Error, Equatable, CustomStringConvertible {
    var description: String
}

/// The binary layout of `BrokerRPC` bodies and of controller replies, big-endian:
///
/// ```
/// request      := u8 1 | command
///               | u8 2 | u32 count | count x (string topic | i32 partition | u64 term | u16 n | n x u64 in-sync node)
/// command      := u8 kind | fields
///                 1 createTopic: string name | i32 partitions | i16 replication factor | configs
///                 2 createTopicWithAssignment: string name | u32 n | n x (u32 m | m x i32) | configs
///                 3 deleteTopic: string name      4 alterConfig: string name | configs
///                 5 registerNode: i32 id | string host | i32 port | string host | i32 port | i64 incarnation
///                 6 allocateProducerIdBlock: i64 size
///                 7 reportPartitionLeader: string topic | i32 partition | i32 leader | i64 term
/// configs      := u32 count | count x (string name | string value)
/// string       := u16 length | UTF-8
/// reply        := u8 0 | u8 1 (done)
///               | u8 0 | u8 2 | u32 n | n x (u32 m | m x i32)      (topic created with this assignment)
///               | u8 0 | u8 3 | i64 lower | i64 upper               (producer id block)
///               | u8 1 | u8 error kind | i32 controller (-1 none) | string message
/// ```
///
/// Every count is checked against the bytes left before anything is allocated.
enum BrokerRPCCodec {
    static let stringBytesMax = 32 * 1024

    static func encode(_ rpc: BrokerRPC) -> ByteBuffer {
        var buffer = ByteBuffer()
        switch rpc {
        case .controllerCommand(let command):
            buffer.writeInteger(UInt8(1))
            write(command, into: &buffer)
        case .leaderships(let list):
            buffer.writeInteger(UInt8(2))
            buffer.writeInteger(UInt32(list.count))
            for entry in list {
                writeString(entry.group.topic, into: &buffer)
                buffer.writeInteger(entry.group.partition)
                buffer.writeInteger(entry.term.value)
                buffer.writeInteger(UInt16(min(entry.inSync.count, Int(UInt16.max))))
                for node in entry.inSync.prefix(Int(UInt16.max)) { buffer.writeInteger(node.value) }
            }
        }
        return buffer
    }

    static func decodeRequest(_ body: ByteBuffer) throws(BrokerRPCError) -> BrokerRPC {
        var body = body
        let rpc: BrokerRPC
        switch try read(UInt8.self, &body) {
        case 1:
            rpc = .controllerCommand(try readCommand(&body))
        case 2:
            let count = Int(try read(UInt32.self, &body))
            guard count * 16 <= body.readableBytes else { throw BrokerRPCError(description: "leadership count") }
            var list: [AnnouncedLeadership] = []
            list.reserveCapacity(count)
            for _ in 0..<count {
                let topic = try readString(&body)
                let partition = try read(Int32.self, &body)
                let term = try read(UInt64.self, &body)
                let nodes = Int(try read(UInt16.self, &body))
                guard nodes * 8 <= body.readableBytes else { throw BrokerRPCError(description: "in-sync count") }
                var inSync: [NodeID] = []
                for _ in 0..<nodes { inSync.append(NodeID(try read(UInt64.self, &body))) }
                guard partition >= 0, topic.utf8.count <= GroupID.topicBytesMax else {
                    throw BrokerRPCError(description: "leadership of \(topic)-\(partition)")
                }
                list.append(
                    AnnouncedLeadership(
                        group: GroupID(topic: topic, partition: partition), term: Term(term), inSync: inSync))
            }
            rpc = .leaderships(list)
        case let other:
            throw BrokerRPCError(description: "unknown request kind \(other)")
        }
        guard body.readableBytes == 0 else { throw BrokerRPCError(description: "\(body.readableBytes) bytes left") }
        return rpc
    }

    static func write(_ command: ControllerCommand, into buffer: inout ByteBuffer) {
        switch command {
        case .createTopic(let name, let partitions, let replicationFactor, let configs):
            buffer.writeInteger(UInt8(1))
            writeString(name, into: &buffer)
            buffer.writeInteger(partitions)
            buffer.writeInteger(replicationFactor)
            writeConfigs(configs, into: &buffer)
        case .createTopicWithAssignment(let name, let assignment, let configs):
            buffer.writeInteger(UInt8(2))
            writeString(name, into: &buffer)
            writeAssignment(assignment, into: &buffer)
            writeConfigs(configs, into: &buffer)
        case .deleteTopic(let name):
            buffer.writeInteger(UInt8(3))
            writeString(name, into: &buffer)
        case .alterConfig(let name, let configs):
            buffer.writeInteger(UInt8(4))
            writeString(name, into: &buffer)
            writeConfigs(configs, into: &buffer)
        case .registerNode(let node):
            buffer.writeInteger(UInt8(5))
            buffer.writeInteger(node.id)
            writeString(node.clientHost, into: &buffer)
            buffer.writeInteger(node.clientPort)
            writeString(node.clusterHost, into: &buffer)
            buffer.writeInteger(node.clusterPort)
            buffer.writeInteger(node.incarnation)
        case .allocateProducerIdBlock(let size):
            buffer.writeInteger(UInt8(6))
            buffer.writeInteger(size)
        case .reportPartitionLeader(let topic, let partition, let leader, let term):
            buffer.writeInteger(UInt8(7))
            writeString(topic, into: &buffer)
            buffer.writeInteger(partition)
            buffer.writeInteger(leader)
            buffer.writeInteger(term)
        }
    }

    static func readCommand(_ body: inout ByteBuffer) throws(BrokerRPCError) -> ControllerCommand {
        switch try read(UInt8.self, &body) {
        case 1:
            return .createTopic(
                name: try readString(&body), partitions: try read(Int32.self, &body),
                replicationFactor: try read(Int16.self, &body), configs: try readConfigs(&body))
        case 2:
            return .createTopicWithAssignment(
                name: try readString(&body), assignment: try readAssignment(&body), configs: try readConfigs(&body))
        case 3:
            return .deleteTopic(name: try readString(&body))
        case 4:
            return .alterConfig(name: try readString(&body), configs: try readConfigs(&body))
        case 5:
            return .registerNode(
                NodeRegistration(
                    id: try read(Int32.self, &body), clientHost: try readString(&body),
                    clientPort: try read(Int32.self, &body), clusterHost: try readString(&body),
                    clusterPort: try read(Int32.self, &body), incarnation: try read(Int64.self, &body)))
        case 6:
            return .allocateProducerIdBlock(size: try read(Int64.self, &body))
        case 7:
            return .reportPartitionLeader(
                topic: try readString(&body), partition: try read(Int32.self, &body),
                leader: try read(Int32.self, &body), term: try read(Int64.self, &body))
        case let other:
            throw BrokerRPCError(description: "unknown controller command \(other)")
        }
    }

    // MARK: Replies

    static func encodeReply(_ result: Result<ControllerReply, ControllerError>) -> ByteBuffer {
        var buffer = ByteBuffer()
        switch result {
        case .success(.done):
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt8(1))
        case .success(.topicCreated(let assignment)):
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt8(2))
            writeAssignment(assignment, into: &buffer)
        case .success(.producerIdBlock(let range)):
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt8(3))
            buffer.writeInteger(range.lowerBound)
            buffer.writeInteger(range.upperBound)
        case .failure(let error):
            buffer.writeInteger(UInt8(1))
            let (kind, controller, message): (UInt8, Int32, String)
            switch error {
            case .notController(let known): (kind, controller, message) = (1, known ?? -1, "")
            case .invalidTopic(let m): (kind, controller, message) = (2, -1, m)
            case .topicAlreadyExists(let m): (kind, controller, message) = (3, -1, m)
            case .unknownTopic(let m): (kind, controller, message) = (4, -1, m)
            case .invalidPartitions(let m): (kind, controller, message) = (5, -1, m)
            case .invalidReplicationFactor(let m): (kind, controller, message) = (6, -1, m)
            case .invalidConfig(let m): (kind, controller, message) = (7, -1, m)
            case .invalidRequest(let m): (kind, controller, message) = (8, -1, m)
            case .failed(let m): (kind, controller, message) = (9, -1, m)
            }
            buffer.writeInteger(kind)
            buffer.writeInteger(controller)
            writeString(message, into: &buffer)
        }
        return buffer
    }

    static func decodeReply(_ body: ByteBuffer) throws(BrokerRPCError) -> Result<ControllerReply, ControllerError> {
        var body = body
        let result: Result<ControllerReply, ControllerError>
        switch try read(UInt8.self, &body) {
        case 0:
            switch try read(UInt8.self, &body) {
            case 1: result = .success(.done)
            case 2: result = .success(.topicCreated(assignment: try readAssignment(&body)))
            case 3:
                let lower = try read(Int64.self, &body)
                let upper = try read(Int64.self, &body)
                guard lower <= upper else { throw BrokerRPCError(description: "producer id block \(lower)..<\(upper)") }
                result = .success(.producerIdBlock(lower..<upper))
            case let other: throw BrokerRPCError(description: "unknown reply kind \(other)")
            }
        case 1:
            let kind = try read(UInt8.self, &body)
            let controller = try read(Int32.self, &body)
            let message = try readString(&body)
            switch kind {
            case 1: result = .failure(.notController(controller: controller < 0 ? nil : controller))
            case 2: result = .failure(.invalidTopic(message))
            case 3: result = .failure(.topicAlreadyExists(message))
            case 4: result = .failure(.unknownTopic(message))
            case 5: result = .failure(.invalidPartitions(message))
            case 6: result = .failure(.invalidReplicationFactor(message))
            case 7: result = .failure(.invalidConfig(message))
            case 8: result = .failure(.invalidRequest(message))
            case 9: result = .failure(.failed(message))
            default: throw BrokerRPCError(description: "unknown error kind \(kind)")
            }
        case let other:
            throw BrokerRPCError(description: "unknown reply \(other)")
        }
        guard body.readableBytes == 0 else { throw BrokerRPCError(description: "\(body.readableBytes) bytes left") }
        return result
    }

    // MARK: Fields

    static func read<T: FixedWidthInteger>(_: T.Type, _ body: inout ByteBuffer) throws(BrokerRPCError) -> T {
        guard let value = body.readInteger(as: T.self) else { throw BrokerRPCError(description: "truncated") }
        return value
    }

    static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        var bytes = Array(string.utf8)
        if bytes.count > stringBytesMax { bytes = Array(bytes.prefix(stringBytesMax)) }
        buffer.writeInteger(UInt16(bytes.count))
        buffer.writeBytes(bytes)
    }

    static func readString(_ body: inout ByteBuffer) throws(BrokerRPCError) -> String {
        let length = Int(try read(UInt16.self, &body))
        guard let bytes = body.readBytes(length: length) else { throw BrokerRPCError(description: "truncated string") }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw BrokerRPCError(description: "a string is not UTF-8")
        }
        return string
    }

    static func writeConfigs(_ configs: [String: String], into buffer: inout ByteBuffer) {
        let sorted = configs.sorted { $0.key < $1.key }
        buffer.writeInteger(UInt32(sorted.count))
        for (name, value) in sorted {
            writeString(name, into: &buffer)
            writeString(value, into: &buffer)
        }
    }

    static func readConfigs(_ body: inout ByteBuffer) throws(BrokerRPCError) -> [String: String] {
        let count = Int(try read(UInt32.self, &body))
        guard count * 4 <= body.readableBytes else { throw BrokerRPCError(description: "config count") }
        var configs: [String: String] = [:]
        for _ in 0..<count {
            let name = try readString(&body)
            configs[name] = try readString(&body)
        }
        return configs
    }

    static func writeAssignment(_ assignment: [[Int32]], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(assignment.count))
        for replicas in assignment {
            buffer.writeInteger(UInt32(replicas.count))
            for node in replicas { buffer.writeInteger(node) }
        }
    }

    static func readAssignment(_ body: inout ByteBuffer) throws(BrokerRPCError) -> [[Int32]] {
        let count = Int(try read(UInt32.self, &body))
        guard count * 4 <= body.readableBytes else { throw BrokerRPCError(description: "partition count") }
        var assignment: [[Int32]] = []
        assignment.reserveCapacity(count)
        for _ in 0..<count {
            let replicas = Int(try read(UInt32.self, &body))
            guard replicas * 4 <= body.readableBytes else { throw BrokerRPCError(description: "replica count") }
            var list: [Int32] = []
            list.reserveCapacity(replicas)
            for _ in 0..<replicas { list.append(try read(Int32.self, &body)) }
            assignment.append(list)
        }
        return assignment
    }
}
