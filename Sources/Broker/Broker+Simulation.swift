import LogStorage
import Raft
import Replication

// What the simulation (Sources/Simulation, the broker world) reads of a node to check Raft's safety properties
// after every step. Package-internal: no client or server path uses it.

/// One hosted replica's Raft and log state, read synchronously.
package struct ReplicaProbe {
    /// The group.
    package var group: GroupID
    /// True while it leads.
    package var isLeader: Bool
    /// The leader it knows of.
    package var leader: NodeID?
    /// Its current term.
    package var term: Term
    /// Its commit index (the high watermark minus one).
    package var commitIndex: LogIndex
    /// Its log (read it only on the replica's loop: the simulation runs every loop on one thread).
    package var log: PartitionLog
    /// The terms of its log's entries, as its Raft node sees them.
    package var reader: PartitionLogReader
    /// Why the replica stopped, if it did.
    package var failure: String?
}

extension Broker {
    /// Every replica this node hosts now (the controller's and each partition's), in group order.
    ///
    /// Only for a world whose event loops all run on the calling thread (`EmbeddedEventLoop`s): it reads each
    /// loop's replicas directly instead of hopping onto the loop.
    package func probeReplicas() -> [ReplicaProbe] {
        host.shards.flatMap { shard -> [ReplicaProbe] in
            let state = shard.state.value
            return state.order.compactMap { group -> ReplicaProbe? in
                switch state.slots[group]?.replica {
                case let partition as PartitionReplica: return Self.probe(partition.engine)
                case let controller as Controller: return Self.probe(controller.engine)
                default: return nil
                }
            }
        }
    }

    static func probe<Token>(_ engine: ReplicaEngine<Token>) -> ReplicaProbe {
        ReplicaProbe(
            group: engine.group, isLeader: engine.isLeader, leader: engine.leader, term: engine.term,
            commitIndex: engine.commitIndex, log: engine.log, reader: engine.reader, failure: engine.failure)
    }

    /// The cluster metadata this node has applied (its published view).
    package var appliedMetadata: ClusterMetadataState { view.withLock { $0.state } }
}
