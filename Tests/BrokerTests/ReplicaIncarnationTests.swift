// A topic deleted and created again under the same name is a new Raft group: the replica host hands a replica
// only the messages of its own incarnation (the topic's uid), and stamps its own on what it sends.
import LogStorage
import Logging
import NIOCore
import NIOEmbedded
import Raft
import Records
import Replication
import Synchronization
import XCTest

@testable import Broker

final class ReplicaIncarnationTests: XCTestCase {
    /// A replica that only counts what reaches it.
    final class CountingReplica: HostedReplica, @unchecked Sendable {
        var received: [Message<BatchPayload>] = []
        var leader: NodeID? { nil }
        var term: Term { Term(1) }
        var isLeader: Bool { false }
        func tick(now: Milliseconds) {}
        func receive(_ message: Message<BatchPayload>, now: Milliseconds) { received.append(message) }
        func completeFlush(_ request: FlushRequest, error: FileIOError?) {}
        func campaign() {}
        func peerUnreachable(_ peer: NodeID) {}
        func transferLeadership(to target: NodeID) throws(TransferError) {}
        func close() {}
        var followerProgress: (logEnd: Offset, followers: [NodeID: Offset])? { nil }
        func status(voters: [NodeID]) -> ReplicaStatus {
            ReplicaStatus(
                group: GroupID(topic: "t", partition: 0), isLeader: false, leader: nil, term: term, voters: voters,
                highWatermark: Offset(0), logStartOffset: Offset(0), logEndOffset: Offset(0), followerEndOffsets: nil,
                failure: nil)
        }
    }

    /// Frames the host sends, kept.
    final class KeptFrames: PeerTransport {
        let frames = Mutex<[PeerFrame]>([])
        func send(_ frame: PeerFrame, to peer: NodeID) { frames.withLock { $0.append(frame) } }
        func isConnected(to peer: NodeID) -> Bool { true }
    }

    struct Clock: BrokerClock {
        func now() -> Milliseconds { Milliseconds(1_700_000_000_000) }
    }

    struct NoBlocking: BlockingExecutor {
        func run<Value: Sendable>(on loop: any EventLoop, _ work: @escaping @Sendable () throws -> Value)
            -> EventLoopFuture<Value>
        { loop.makeCompletedFuture(withResultOf: work) }
    }

    /// A replica of the topic of uid 7 takes a heartbeat of uid 7 and drops one of uid 6 (a replica of the deleted
    /// topic, left on a node that was away); what it sends carries uid 7.
    func testMessagesOfAnotherIncarnationOfTheTopicAreDropped() throws {
        let loop = EmbeddedEventLoop()
        let peers = KeptFrames()
        let host = ReplicaHost(
            nodeID: NodeID(1), timings: RaftTimings(), seed: 1, group: loop, peers: peers, blocking: NoBlocking(),
            io: PosixFileIO(), clock: Clock(), logger: Logger(label: "test"), onLeadershipChange: { _ in })
        let group = GroupID(topic: "t", partition: 0)
        let replica = CountingReplica()
        let started = host.start(on: loop)
        loop.run()
        try started.wait()
        let added = host.addGroup(group, voters: [NodeID(1), NodeID(2)], campaign: false, incarnation: 7) { _ in
            replica
        }
        loop.run()
        try added.wait()

        func heartbeat(_ incarnation: Int64) -> ReplicationMessage {
            ReplicationMessage(
                group: group, incarnation: incarnation,
                message: Message(from: NodeID(2), to: NodeID(1), term: Term(3), kind: .heartbeat(commit: .none)))
        }
        host.deliver([heartbeat(6)], from: NodeID(2))
        loop.run()
        XCTAssertTrue(replica.received.isEmpty, "a message of the deleted topic's group never reaches the new one")
        host.deliver([heartbeat(7)], from: NodeID(2))
        loop.run()
        XCTAssertEqual(replica.received.count, 1)

        let transport = host.shard(for: group).state.value.transport
        transport.send(
            ReplicationMessage(
                group: group,
                message: Message(from: NodeID(1), to: NodeID(2), term: Term(3), kind: .voteResponse(granted: true))))
        guard case .message(let sent)? = peers.frames.withLock({ $0.last }) else { return XCTFail("a message sent") }
        XCTAssertEqual(sent.incarnation, 7)

        let closed = host.shutdown(on: loop)
        loop.run()
        try closed.wait()
    }
}
