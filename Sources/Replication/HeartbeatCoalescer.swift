import Raft

/// One group's heartbeat (or answer) inside a coalesced frame.
public struct HeartbeatItem: Equatable, Sendable {
    /// Heartbeat or answer.
    public enum Kind: Equatable, Sendable {
        /// A leader's heartbeat carrying the commit index the follower may apply.
        case heartbeat(commit: LogIndex)
        /// A follower's answer.
        case response
    }

    /// The group.
    public var group: GroupID
    /// The group's incarnation (`ReplicationMessage.incarnation`).
    public var incarnation: Int64
    /// The sender's term in that group.
    public var term: Term
    /// Heartbeat or answer.
    public var kind: Kind

    /// Builds an item.
    public init(group: GroupID, incarnation: Int64 = 0, term: Term, kind: Kind) {
        self.group = group
        self.incarnation = incarnation
        self.term = term
        self.kind = kind
    }
}

/// The heartbeats (and answers) of many groups from one node to another, sent as one frame per tick.
public struct CoalescedHeartbeats: Sendable, Equatable {
    /// The sending node.
    public var from: NodeID
    /// The receiving node.
    public var to: NodeID
    /// One item per group (several when a group beat more than once in the tick).
    public var items: [HeartbeatItem]

    /// Builds a frame.
    public init(from: NodeID, to: NodeID, items: [HeartbeatItem]) {
        self.from = from
        self.to = to
        self.items = items
    }

    /// Splits the frame back into one Raft message per group, in order.
    public func split() -> [ReplicationMessage] {
        items.map { item in
            let kind: MessageKind<BatchPayload>
            switch item.kind {
            case .heartbeat(let commit): kind = .heartbeat(commit: commit)
            case .response: kind = .heartbeatResponse
            }
            return ReplicationMessage(
                group: item.group, incarnation: item.incarnation,
                message: Message(from: from, to: to, term: item.term, kind: kind))
        }
    }
}

/// Merges the heartbeats that a node's many groups send to one peer into a single frame per peer and tick
/// (DESIGN.md: "Heartbeats of many groups are coalesced into one message per node pair and tick").
///
/// The shell passes every outgoing message through `route`: heartbeats and their answers are kept, anything
/// else comes straight back to be sent. After ticking every engine, `flush` returns one frame per peer. The
/// receiver calls `CoalescedHeartbeats.split()` and hands each message to its group's engine. Delaying a
/// heartbeat until the end of the tick is harmless: Raft tolerates any delay and reordering.
public struct HeartbeatCoalescer: Sendable {
    var pending: [NodeID: CoalescedHeartbeats] = [:]

    /// Nothing pending.
    public init() {}

    /// Heartbeats waiting for `flush`.
    public var pendingCount: Int { pending.values.reduce(0) { $0 + $1.items.count } }

    /// Keeps a heartbeat or heartbeat answer for the next `flush` (returning nil), or gives any other message
    /// back as a frame to send now.
    public mutating func route(_ envelope: ReplicationMessage) -> PeerFrame? {
        let message = envelope.message
        let kind: HeartbeatItem.Kind
        switch message.kind {
        case .heartbeat(let commit): kind = .heartbeat(commit: commit)
        case .heartbeatResponse: kind = .response
        default: return .message(envelope)
        }
        let item = HeartbeatItem(
            group: envelope.group, incarnation: envelope.incarnation, term: message.term, kind: kind)
        if pending[message.to] == nil {
            pending[message.to] = CoalescedHeartbeats(from: message.from, to: message.to, items: [])
        }
        pending[message.to]!.items.append(item)
        return nil
    }

    /// One frame per peer holding everything kept since the last call, in peer order.
    public mutating func flush() -> [PeerFrame] {
        let frames = pending.keys.sorted().map { PeerFrame.heartbeats(pending[$0]!) }
        pending = [:]
        return frames
    }
}
