import NIOCore
import Raft
import Records

/// What travels on a peer connection: one group's Raft message, or the heartbeats of many groups coalesced.
public enum PeerFrame: Sendable {
    /// One message of one group.
    case message(ReplicationMessage)
    /// Heartbeats (or their answers) of many groups between two nodes, sent once per tick.
    case heartbeats(CoalescedHeartbeats)
    /// A request between two nodes' brokers, or its answer (forwarded controller commands); the body is the
    /// broker's to interpret.
    case rpc(PeerRPC)
}

/// A request from one node's broker to another's, or its answer: an opaque body matched by `id`.
public struct PeerRPC: Sendable {
    /// A request or the reply to one.
    public enum Kind: UInt8, Sendable {
        /// Asks the receiver to do something; it answers with a `.reply` carrying the same id.
        case request = 1
        /// Answers the sender's request `id`.
        case reply = 2
    }

    /// Request or reply.
    public var kind: Kind
    /// Chosen by the requester; the reply carries it back.
    public var id: UInt64
    /// The sending node.
    public var from: NodeID
    /// The receiving node.
    public var to: NodeID
    /// What the broker encoded (at most `ReplicationCodec.rpcBodyBytesMax` bytes).
    public var body: ByteBuffer

    /// Describes one request or reply.
    public init(kind: Kind, id: UInt64, from: NodeID, to: NodeID, body: ByteBuffer) {
        self.kind = kind
        self.id = id
        self.from = from
        self.to = to
        self.body = body
    }
}

/// Why bytes from a peer are not a frame.
public enum ReplicationCodecError: Error, Equatable, Sendable {
    /// The bytes end before the frame does.
    case truncated
    /// Bytes are left after the frame.
    case trailingBytes(Int)
    /// A kind byte names nothing.
    case unknownKind(field: String, value: UInt8)
    /// A field is out of its allowed range.
    case outOfRange(field: String)
    /// A topic name is not UTF-8.
    case invalidTopic
    /// An entry's batches do not match it.
    case invalidPayload(BatchPayloadError)
    /// A frame is larger than `frameBytesMax`.
    case frameTooLarge(Int)
}

/// The binary format of `PeerFrame`, big-endian, inside a length prefix.
///
/// ```
/// frame        := u32 length (bytes after it) | u8 kind | body
/// kind 1       := group | i64 incarnation | u64 from | u64 to | u64 term | u8 message kind | message body
/// kind 2       := u64 from | u64 to | u32 count | count x (group | i64 incarnation | u64 term | u8 beat kind
///                 | [i64 commit])
///                 beat kind 0 = heartbeat (with commit), 1 = heartbeat response (no commit)
/// kind 3       := u8 rpc kind (1 request, 2 reply) | u64 id | u64 from | u64 to | u32 body length | body
/// group        := u16 topic length | topic UTF-8 | i32 partition
/// message kind := 1 preVoteRequest: i64 lastIndex, u64 lastTerm
///                 2 preVoteResponse: u8 granted
///                 3 voteRequest: i64 lastIndex, u64 lastTerm, u8 transfer
///                 4 voteResponse: u8 granted
///                 5 append: i64 prevLastIndex, u64 prevTerm, i64 leaderCommit, u32 count, count x entry
///                 6 appendResponse: u8 0, i64 match | u8 1, i64 prevLastIndex, i64 hintIndex, u64 hintTerm
///                 7 heartbeat: i64 commit
///                 8 heartbeatResponse
///                 9 resetLog: i64 start, u64 prevTerm, i64 leaderCommit
///                10 timeoutNow
/// entry        := u64 term | i64 firstIndex | i64 lastIndex | u8 content
///                 content 0 = data: u32 byte count, the record batches (offsets and epoch final, CRC-checked
///                 on decode); content 1 = leaderChange (no bytes)
/// ```
///
/// Decoding checks every length against what is left and every number against its range, and validates each
/// entry's batches (CRC, offsets, epoch), so that whatever reaches the Raft core can be appended: garbage
/// throws, never traps.
public enum ReplicationCodec {
    /// The largest frame accepted, in bytes (a full append window of 1 MiB messages fits easily).
    public static let frameBytesMax = 64 << 20
    /// Entries per append message, at most.
    public static let entriesMax = 1 << 16
    /// Heartbeats per coalesced frame, at most.
    public static let heartbeatsMax = 1 << 20
    /// The largest body of a request or reply between brokers, in bytes.
    public static let rpcBodyBytesMax = 1 << 20

    /// Appends the length-prefixed frame to `buffer`.
    public static func encode(_ frame: PeerFrame, into buffer: inout ByteBuffer) {
        let lengthAt = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        switch frame {
        case .message(let envelope):
            buffer.writeInteger(UInt8(1))
            writeGroup(envelope.group, into: &buffer)
            buffer.writeInteger(envelope.incarnation)
            let message = envelope.message
            buffer.writeInteger(message.from.value)
            buffer.writeInteger(message.to.value)
            buffer.writeInteger(message.term.value)
            writeKind(message.kind, into: &buffer)
        case .heartbeats(let beats):
            buffer.writeInteger(UInt8(2))
            buffer.writeInteger(beats.from.value)
            buffer.writeInteger(beats.to.value)
            buffer.writeInteger(UInt32(beats.items.count))
            for item in beats.items {
                writeGroup(item.group, into: &buffer)
                buffer.writeInteger(item.incarnation)
                buffer.writeInteger(item.term.value)
                switch item.kind {
                case .heartbeat(let commit):
                    buffer.writeInteger(UInt8(0))
                    buffer.writeInteger(commit.value)
                case .response:
                    buffer.writeInteger(UInt8(1))
                }
            }
        case .rpc(let rpc):
            precondition(rpc.body.readableBytes <= rpcBodyBytesMax, "rpc body of \(rpc.body.readableBytes) bytes")
            buffer.writeInteger(UInt8(3))
            buffer.writeInteger(rpc.kind.rawValue)
            buffer.writeInteger(rpc.id)
            buffer.writeInteger(rpc.from.value)
            buffer.writeInteger(rpc.to.value)
            buffer.writeInteger(UInt32(rpc.body.readableBytes))
            buffer.writeImmutableBuffer(rpc.body)
        }
        buffer.setInteger(UInt32(buffer.writerIndex - lengthAt - 4), at: lengthAt)
    }

    /// The frame as `encode(into:)` lays it out, in pieces to write one after the other: an append's record
    /// batches are the entries' own buffers (the bytes the leader stored, or read back), not copies, so that
    /// sending an append to each follower copies no payload in user space (the socket write gathers the pieces
    /// with writev). Every other frame is one piece. The pieces concatenated are `encode(into:)`'s bytes.
    public static func encodeParts(_ frame: PeerFrame) -> [ByteBuffer] {
        guard case .message(let envelope) = frame,
            case .append(let prevLastIndex, let prevTerm, let entries, let leaderCommit) = envelope.message.kind
        else {
            var buffer = ByteBuffer()
            encode(frame, into: &buffer)
            return [buffer]
        }
        let allocator = ByteBufferAllocator()
        var parts: [ByteBuffer] = []
        parts.reserveCapacity(2 * entries.count + 1)
        var head = allocator.buffer(capacity: 96 + 32 * min(entries.count, 8))
        head.writeInteger(UInt32(0))  // the length, set at the end
        head.writeInteger(UInt8(1))
        writeGroup(envelope.group, into: &head)
        head.writeInteger(envelope.incarnation)
        head.writeInteger(envelope.message.from.value)
        head.writeInteger(envelope.message.to.value)
        head.writeInteger(envelope.message.term.value)
        head.writeInteger(UInt8(5))
        head.writeInteger(prevLastIndex.value)
        head.writeInteger(prevTerm.value)
        head.writeInteger(leaderCommit.value)
        head.writeInteger(UInt32(entries.count))
        var total = 0
        for entry in entries {
            head.writeInteger(entry.term.value)
            head.writeInteger(entry.firstIndex.value)
            head.writeInteger(entry.lastIndex.value)
            switch entry.content {
            case .data(let payload):
                head.writeInteger(UInt8(0))
                head.writeInteger(UInt32(payload.bytes.readableBytes))
                total += head.readableBytes + payload.bytes.readableBytes
                parts.append(head)
                parts.append(payload.bytes)
                head = allocator.buffer(capacity: 32)
            case .leaderChange:
                head.writeInteger(UInt8(1))
            }
        }
        if head.readableBytes > 0 {
            total += head.readableBytes
            parts.append(head)
        }
        parts[0].setInteger(UInt32(total - 4), at: parts[0].readerIndex)
        return parts
    }

    /// Decodes the next whole frame from `buffer`, moving its reader index past it; nil (and nothing consumed)
    /// when the frame is not complete yet.
    public static func decodeFrame(from buffer: inout ByteBuffer) throws(ReplicationCodecError) -> PeerFrame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= frameBytesMax else { throw .frameTooLarge(Int(length)) }
        guard buffer.readableBytes >= 4 + Int(length),
            var body = buffer.getSlice(at: buffer.readerIndex + 4, length: Int(length))
        else { return nil }
        let frame = try decodeBody(&body)
        guard body.readableBytes == 0 else { throw .trailingBytes(body.readableBytes) }
        buffer.moveReaderIndex(forwardBy: 4 + Int(length))
        return frame
    }

    static func writeGroup(_ group: GroupID, into buffer: inout ByteBuffer) {
        let topic = Array(group.topic.utf8)
        precondition(topic.count <= GroupID.topicBytesMax, "topic name longer than \(GroupID.topicBytesMax) bytes")
        buffer.writeInteger(UInt16(topic.count))
        buffer.writeBytes(topic)
        buffer.writeInteger(group.partition)
    }

    static func writeKind(_ kind: MessageKind<BatchPayload>, into buffer: inout ByteBuffer) {
        switch kind {
        case .preVoteRequest(let lastIndex, let lastTerm):
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(lastIndex.value)
            buffer.writeInteger(lastTerm.value)
        case .preVoteResponse(let granted):
            buffer.writeInteger(UInt8(2))
            buffer.writeInteger(UInt8(granted ? 1 : 0))
        case .voteRequest(let lastIndex, let lastTerm, let transfer):
            buffer.writeInteger(UInt8(3))
            buffer.writeInteger(lastIndex.value)
            buffer.writeInteger(lastTerm.value)
            buffer.writeInteger(UInt8(transfer ? 1 : 0))
        case .voteResponse(let granted):
            buffer.writeInteger(UInt8(4))
            buffer.writeInteger(UInt8(granted ? 1 : 0))
        case .append(let prevLastIndex, let prevTerm, let entries, let leaderCommit):
            buffer.writeInteger(UInt8(5))
            buffer.writeInteger(prevLastIndex.value)
            buffer.writeInteger(prevTerm.value)
            buffer.writeInteger(leaderCommit.value)
            buffer.writeInteger(UInt32(entries.count))
            for entry in entries {
                buffer.writeInteger(entry.term.value)
                buffer.writeInteger(entry.firstIndex.value)
                buffer.writeInteger(entry.lastIndex.value)
                switch entry.content {
                case .data(let payload):
                    buffer.writeInteger(UInt8(0))
                    buffer.writeInteger(UInt32(payload.bytes.readableBytes))
                    buffer.writeImmutableBuffer(payload.bytes)
                case .leaderChange:
                    buffer.writeInteger(UInt8(1))
                }
            }
        case .appendResponse(let response):
            buffer.writeInteger(UInt8(6))
            switch response {
            case .accepted(let match):
                buffer.writeInteger(UInt8(0))
                buffer.writeInteger(match.value)
            case .rejected(let prevLastIndex, let hintIndex, let hintTerm):
                buffer.writeInteger(UInt8(1))
                buffer.writeInteger(prevLastIndex.value)
                buffer.writeInteger(hintIndex.value)
                buffer.writeInteger(hintTerm.value)
            }
        case .heartbeat(let commit):
            buffer.writeInteger(UInt8(7))
            buffer.writeInteger(commit.value)
        case .heartbeatResponse:
            buffer.writeInteger(UInt8(8))
        case .resetLog(let start, let prevTerm, let leaderCommit):
            buffer.writeInteger(UInt8(9))
            buffer.writeInteger(start.value)
            buffer.writeInteger(prevTerm.value)
            buffer.writeInteger(leaderCommit.value)
        case .timeoutNow:
            buffer.writeInteger(UInt8(10))
        }
    }

    // MARK: Decoding

    static func decodeBody(_ body: inout ByteBuffer) throws(ReplicationCodecError) -> PeerFrame {
        switch try read(UInt8.self, &body) {
        case 1:
            let group = try readGroup(&body)
            let incarnation = try read(Int64.self, &body)
            let from = NodeID(try read(UInt64.self, &body))
            let to = NodeID(try read(UInt64.self, &body))
            let term = try readTerm(&body, "term")
            let kind = try readKind(&body)
            return .message(
                ReplicationMessage(
                    group: group, incarnation: incarnation,
                    message: Message(from: from, to: to, term: term, kind: kind)))
        case 2:
            let from = NodeID(try read(UInt64.self, &body))
            let to = NodeID(try read(UInt64.self, &body))
            let count = Int(try read(UInt32.self, &body))
            guard count <= heartbeatsMax, count * 23 <= body.readableBytes else { throw .outOfRange(field: "count") }
            var items: [HeartbeatItem] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                let group = try readGroup(&body)
                let incarnation = try read(Int64.self, &body)
                let term = try readTerm(&body, "term")
                switch try read(UInt8.self, &body) {
                case 0:
                    items.append(
                        HeartbeatItem(
                            group: group, incarnation: incarnation, term: term,
                            kind: .heartbeat(commit: try readIndex(&body, "commit"))))
                case 1: items.append(HeartbeatItem(group: group, incarnation: incarnation, term: term, kind: .response))
                case let other: throw .unknownKind(field: "heartbeat", value: other)
                }
            }
            return .heartbeats(CoalescedHeartbeats(from: from, to: to, items: items))
        case 3:
            let rawKind = try read(UInt8.self, &body)
            guard let kind = PeerRPC.Kind(rawValue: rawKind) else { throw .unknownKind(field: "rpc", value: rawKind) }
            let id = try read(UInt64.self, &body)
            let from = NodeID(try read(UInt64.self, &body))
            let to = NodeID(try read(UInt64.self, &body))
            let length = Int(try read(UInt32.self, &body))
            guard length <= rpcBodyBytesMax else { throw .outOfRange(field: "rpc body length") }
            guard let bytes = body.readSlice(length: length) else { throw .truncated }
            return .rpc(PeerRPC(kind: kind, id: id, from: from, to: to, body: bytes))
        case let other:
            throw .unknownKind(field: "frame", value: other)
        }
    }

    static func read<T: FixedWidthInteger>(_: T.Type, _ body: inout ByteBuffer) throws(ReplicationCodecError) -> T {
        guard let value = body.readInteger(as: T.self) else { throw .truncated }
        return value
    }

    static func readBool(_ body: inout ByteBuffer, _ field: String) throws(ReplicationCodecError) -> Bool {
        switch try read(UInt8.self, &body) {
        case 0: return false
        case 1: return true
        default: throw .outOfRange(field: field)
        }
    }

    /// A term: at most `Term.max` (Int32.max), since terms are stored as a batch's partitionLeaderEpoch.
    static func readTerm(_ body: inout ByteBuffer, _ field: String) throws(ReplicationCodecError) -> Term {
        let value = try read(UInt64.self, &body)
        guard value <= Term.max.value else { throw .outOfRange(field: field) }
        return Term(value)
    }

    /// A log index: -1 (before offset 0) up to `LogIndex.max`.
    static func readIndex(_ body: inout ByteBuffer, _ field: String) throws(ReplicationCodecError) -> LogIndex {
        let value = try read(Int64.self, &body)
        guard value >= -1, value <= LogIndex.max.value else { throw .outOfRange(field: field) }
        return LogIndex(value)
    }

    static func readGroup(_ body: inout ByteBuffer) throws(ReplicationCodecError) -> GroupID {
        let length = Int(try read(UInt16.self, &body))
        guard length <= GroupID.topicBytesMax else { throw .outOfRange(field: "topic length") }
        guard let bytes = body.readBytes(length: length) else { throw .truncated }
        guard let topic = String(validating: bytes, as: UTF8.self) else { throw .invalidTopic }
        let partition = try read(Int32.self, &body)
        guard partition >= 0 else { throw .outOfRange(field: "partition") }
        return GroupID(topic: topic, partition: partition)
    }

    static func readKind(_ body: inout ByteBuffer) throws(ReplicationCodecError) -> MessageKind<BatchPayload> {
        switch try read(UInt8.self, &body) {
        case 1:
            return .preVoteRequest(
                lastIndex: try readIndex(&body, "lastIndex"), lastTerm: try readTerm(&body, "lastTerm"))
        case 2:
            return .preVoteResponse(granted: try readBool(&body, "granted"))
        case 3:
            return .voteRequest(
                lastIndex: try readIndex(&body, "lastIndex"), lastTerm: try readTerm(&body, "lastTerm"),
                transfer: try readBool(&body, "transfer"))
        case 4:
            return .voteResponse(granted: try readBool(&body, "granted"))
        case 5:
            let prevLastIndex = try readIndex(&body, "prevLastIndex")
            let prevTerm = try readTerm(&body, "prevTerm")
            let leaderCommit = try readIndex(&body, "leaderCommit")
            let count = Int(try read(UInt32.self, &body))
            guard count <= entriesMax, count * 25 <= body.readableBytes else { throw .outOfRange(field: "entry count") }
            var entries: [Entry<BatchPayload>] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let term = try readTerm(&body, "entry term")
                let firstIndex = try readIndex(&body, "firstIndex")
                let lastIndex = try readIndex(&body, "lastIndex")
                guard firstIndex >= .zero, firstIndex <= lastIndex, term > .zero else {
                    throw .outOfRange(field: "entry range")
                }
                switch try read(UInt8.self, &body) {
                case 0:
                    let length = Int(try read(UInt32.self, &body))
                    guard let bytes = body.readSlice(length: length) else { throw .truncated }
                    let payload: BatchPayload
                    do throws(BatchPayloadError) {
                        payload = try BatchPayload(
                            validating: bytes, firstIndex: firstIndex, lastIndex: lastIndex, term: term)
                    } catch {
                        throw .invalidPayload(error)
                    }
                    entries.append(
                        Entry(term: term, firstIndex: firstIndex, lastIndex: lastIndex, content: .data(payload)))
                case 1:
                    guard firstIndex == lastIndex else { throw .outOfRange(field: "leader change range") }
                    entries.append(
                        Entry(term: term, firstIndex: firstIndex, lastIndex: lastIndex, content: .leaderChange))
                case let other:
                    throw .unknownKind(field: "entry content", value: other)
                }
            }
            return .append(
                prevLastIndex: prevLastIndex, prevTerm: prevTerm, entries: entries, leaderCommit: leaderCommit)
        case 6:
            switch try read(UInt8.self, &body) {
            case 0:
                return .appendResponse(.accepted(match: try readIndex(&body, "match")))
            case 1:
                return .appendResponse(
                    .rejected(
                        prevLastIndex: try readIndex(&body, "prevLastIndex"),
                        hintIndex: try readIndex(&body, "hintIndex"), hintTerm: try readTerm(&body, "hintTerm")))
            case let other:
                throw .unknownKind(field: "append response", value: other)
            }
        case 7:
            return .heartbeat(commit: try readIndex(&body, "commit"))
        case 8:
            return .heartbeatResponse
        case 9:
            let start = try readIndex(&body, "start")
            guard start >= .zero else { throw .outOfRange(field: "start") }
            return .resetLog(
                start: start, prevTerm: try readTerm(&body, "prevTerm"),
                leaderCommit: try readIndex(&body, "leaderCommit"))
        case 10:
            return .timeoutNow
        case let other:
            throw .unknownKind(field: "message", value: other)
        }
    }
}
