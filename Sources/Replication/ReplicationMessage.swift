import Raft

/// A Raft message of one group, as it travels on the connection between two nodes.
public struct ReplicationMessage: Sendable {
    /// The partition whose group the message belongs to.
    public var group: GroupID
    /// The message.
    public var message: Message<BatchPayload>

    /// Wraps a message of `group`.
    public init(group: GroupID, message: Message<BatchPayload>) {
        self.group = group
        self.message = message
    }
}
