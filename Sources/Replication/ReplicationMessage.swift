import Raft

/// A Raft message of one group, as it travels on the connection between two nodes.
public struct ReplicationMessage: Sendable {
    /// The partition whose group the message belongs to.
    public var group: GroupID
    /// Which incarnation of the group: a topic deleted and created again under the same name is a new group
    /// (the broker uses the topic's uid). A replica takes messages of its own incarnation only, so that a replica
    /// of a deleted topic, left on a node that was away, can never vote in or lead the new topic's group.
    public var incarnation: Int64
    /// The message.
    public var message: Message<BatchPayload>

    /// Wraps a message of `group`.
    public init(group: GroupID, incarnation: Int64 = 0, message: Message<BatchPayload>) {
        self.group = group
        self.incarnation = incarnation
        self.message = message
    }
}
