// Replicas of several groups on three nodes in one process, over real TCP on loopback and real files: the
// ReplicaHost + PeerNetwork pair that a broker runs, with a node shut down and restarted over its directories.
@testable import Broker
@testable import BrokerServer
import Foundation
import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Raft
import Records
import Replication
import Synchronization
import XCTest

/// One node of a test cluster: its loops, blocking pool, cluster links and replicas.
final class PeerTestNode: Sendable {
    let id: NodeID
    let directory: String
    let loops: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    let network: PeerNetwork
    let host: ReplicaHost
    /// Every leadership change the host reported, in order.
    let leadershipChanges = LeadershipLog()

    init(id: NodeID, voters: VoterList, directory: String, clusterID: String = "test-cluster") {
        self.id = id
        self.directory = directory
        loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        var logger = Logger(label: "node-\(id)")
        logger.logLevel = .info
        let listen = voters.addresses[id] ?? PeerAddress(host: "127.0.0.1", port: 0)
        network = PeerNetwork(
            config: PeerNetworkConfig(
                nodeID: id, clusterID: clusterID, voters: voters, listen: listen, reconnectBackoffMsMin: 20,
                reconnectBackoffMsMax: 200, handshakeTimeoutMsMax: 2000),
            group: loops, logger: logger)
        let leadershipChanges = self.leadershipChanges
        host = ReplicaHost(
            nodeID: id, timings: RaftTimings(tickIntervalMs: 20), seed: id.value &* 7919, group: loops,
            peers: network, blocking: ThreadPoolExecutor(pool: pool), io: PosixFileIO(), clock: SystemClock(),
            logger: logger, onLeadershipChange: { change in leadershipChanges.append(change) })
    }

    func start(groups: [GroupID], voters: [NodeID]) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await host.start(on: loops.next()).get()
        let host = self.host
        try await network.start { frames, peer in
            var envelopes: [ReplicationMessage] = []
            for frame in frames {
                switch frame {
                case .message(let envelope): envelopes.append(envelope)
                case .heartbeats(let beats): envelopes += beats.split()
                case .rpc: break
                }
            }
            host.deliver(envelopes, from: peer)
        }
        for group in groups {
            try await addGroup(group, voters: voters, directory: directory + "/\(group)", logConfig: LogConfig(segmentBytesMax: 8192)).get()
        }
    }

    func addGroup(_ group: GroupID, voters: [NodeID], directory: String, logConfig: LogConfig) -> EventLoopFuture<Void> {
        var logger = Logger(label: "node-\(id)")
        logger.logLevel = .info
        let logging = logger
        return host.addGroup(group, voters: voters, campaign: false) { context in
            try PartitionReplica(
                group: group, directory: directory, logConfig: logConfig, io: PosixFileIO(), context: context,
                clock: SystemClock(), logger: logging)
        }
    }

    func stop() async {
        _ = try? await host.shutdown(on: loops.next()).get()
        await network.shutdown()
        try? await pool.shutdownGracefully()
        try? await loops.shutdownGracefully()
    }

    func status(_ group: GroupID) async -> ReplicaStatus? {
        try? await host.withReplica(group) { $0.status(voters: []) }.get()
    }

    /// The groups hosted now.
    func groups() async -> [GroupID] {
        (try? await host.statuses(on: loops.next()).get().map(\.group)) ?? []
    }

    /// Appends `batch` on this node's replica of `group` and waits for its commit (acks=all).
    func propose(_ batch: ByteBuffer, to group: GroupID, waitForCommit: Bool) -> EventLoopFuture<AppendOutcome> {
        let loop = host.loop(for: group)
        return host.withReplica(group) { replica -> PartitionHandle in
            guard let partition = replica as? PartitionReplica else { throw TestFailure("not a partition") }
            return PartitionHandle(group: group, loop: loop, replica: NIOLoopBound(partition, eventLoop: loop))
        }.flatMap { handle in
            handle.flatRun(on: loop) { replica -> EventLoopFuture<AppendOutcome> in
                guard let header = try? RecordBatchHeader.read(from: batch, at: batch.readerIndex) else {
                    return loop.makeSucceededFuture(AppendOutcome.failure(.corruptMessage))
                }
                return replica.append(batch, header: header, acks: waitForCommit ? -1 : 1, timeoutMs: 3000)
            }
        }.flatMapThrowing { (outcome: AppendOutcome) -> AppendOutcome in
            guard outcome.errorCode == .none else { throw TestFailure("append refused: \(outcome.errorCode)") }
            return outcome
        }
    }

    /// The committed bytes of the group's log, CRC-checked.
    func committedBytes(_ group: GroupID) async throws -> [UInt8] {
        try await host.withReplica(group) { replica -> [UInt8] in
            guard let engine = (replica as? PartitionReplica)?.engine else { return [] }
            guard engine.log.logStartOffset < engine.highWatermark else { return [] }
            let read = try engine.readVerified(from: engine.log.logStartOffset, maxBytes: Int.max / 2)
            return Array(read.bytes.readableBytesView)
        }.get()
    }
}

/// Fails unless `body` throws `expected`.
func XCTAssertThrowsAsync<Value>(
    _ body: @autoclosure () async throws -> Value, _ expected: ReplicaHostError, line: UInt = #line
) async {
    do {
        _ = try await body()
        XCTFail("no error, expected \(expected)", line: line)
    } catch {
        XCTAssertEqual(error as? ReplicaHostError, expected, line: line)
    }
}

/// Leadership changes a host reported.
final class LeadershipLog: Sendable {
    let changes = Mutex<[LeadershipChange]>([])

    func append(_ change: LeadershipChange) { changes.withLock { $0.append(change) } }
    var all: [LeadershipChange] { changes.withLock { $0 } }
}

/// Free loopback ports: bound all at once, then released for the nodes to bind.
func freePorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { for fd in sockets { close(fd) } }
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        sockets.append(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw TestFailure("bind: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return ports
}

/// Polls `condition` every 10 ms until it holds or `seconds` pass.
func waitUntilAsync(_ what: String, seconds: Double, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try await !condition() {
        guard Date() < deadline else { throw TestFailure("timed out after \(seconds) s waiting for \(what)") }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
}

/// Three nodes hosting the same groups, with helpers to find leaders and produce.
final class PeerTestCluster {
    let ports: [Int]
    let voters: VoterList
    let root: String
    let groups: [GroupID]
    var nodes: [NodeID: PeerTestNode] = [:]

    var ids: [NodeID] { voters.nodeIDs }

    init(groups: [GroupID]) throws {
        ports = try freePorts(3)
        voters = try VoterList.parse(ports.enumerated().map { "\($0.offset + 1)@127.0.0.1:\($0.element)" }
            .joined(separator: ","))
        root = try makeTemporaryDirectory("peer")
        self.groups = groups
    }

    func start(_ id: NodeID, clusterID: String = "test-cluster") async throws {
        let node = PeerTestNode(id: id, voters: voters, directory: root + "/node-\(id)", clusterID: clusterID)
        nodes[id] = node
        try await node.start(groups: groups, voters: ids)
    }

    func stop(_ id: NodeID) async {
        await nodes.removeValue(forKey: id)?.stop()
    }

    func stopAll() async {
        for id in Array(nodes.keys) { await stop(id) }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// The node that leads `group` with every live node agreeing on it, if any.
    func leader(of group: GroupID) async -> NodeID? {
        var leader: NodeID?
        for (id, node) in nodes {
            guard let status = await node.status(group) else { return nil }
            if status.isLeader { leader = id }
        }
        guard let leader else { return nil }
        for node in nodes.values {
            guard let status = await node.status(group), status.leader == leader else { return nil }
        }
        return leader
    }

    func waitForLeader(of group: GroupID, seconds: Double = 8) async throws -> NodeID {
        var found: NodeID?
        try await waitUntilAsync("a leader of \(group)", seconds: seconds) {
            found = await leader(of: group)
            return found != nil
        }
        guard let found else { throw TestFailure("no leader of \(group)") }
        return found
    }

    /// Produces `batch` with acks=all on the group's leader, retrying through leader changes until `seconds` pass.
    func produceCommitted(_ group: GroupID, _ tag: String, seconds: Double = 8) async throws -> AppendOutcome {
        let deadline = Date().addingTimeInterval(seconds)
        var lastError: (any Error)?
        while Date() < deadline {
            if let leader = await leader(of: group), let node = nodes[leader] {
                do {
                    return try await withDeadline(seconds: 3, node.propose(
                        try peerBatch(tag), to: group, waitForCommit: true))
                } catch {
                    lastError = error
                }
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw TestFailure("no commit of \(tag) on \(group): \(lastError.map { "\($0)" } ?? "no leader")")
    }

    /// Waits until every live node holds the same committed log of `group`, with nothing uncommitted, and
    /// returns its bytes.
    func converged(_ group: GroupID, seconds: Double = 8) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        try await waitUntilAsync("replicas of \(group) to converge", seconds: seconds) {
            var statuses: [ReplicaStatus] = []
            for node in nodes.values {
                guard let status = await node.status(group) else { return false }
                statuses.append(status)
            }
            guard let first = statuses.first,
                statuses.allSatisfy({
                    $0.highWatermark == first.highWatermark && $0.logEndOffset == first.highWatermark
                })
            else { return false }
            var all: [[UInt8]] = []
            for node in nodes.values { all.append(try await node.committedBytes(group)) }
            guard all.allSatisfy({ $0 == all[0] }) else { return false }
            bytes = all[0]
            return true
        }
        return bytes
    }
}

/// Fails a future that has not completed within `seconds`.
func withDeadline<Value: Sendable>(seconds: Double, _ future: EventLoopFuture<Value>) async throws -> Value {
    let promise = future.eventLoop.makePromise(of: Value.self)
    future.cascade(to: promise)
    let timeout = future.eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
        promise.fail(TestFailure("no answer within \(seconds) s"))
    }
    defer { timeout.cancel() }
    return try await promise.futureResult.get()
}

/// A producer's batch of two records whose values are `"<tag>/<r>"`.
func peerBatch(_ tag: String) throws -> ByteBuffer {
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    for r in 0..<2 {
        builder.append(timestamp: 1_700_000_000_000, key: nil, value: ByteBuffer(string: "\(tag)/\(r)"))
    }
    return try builder.build()
}

final class PeerNetworkTests: XCTestCase {
    let groups = [
        GroupID(topic: "orders", partition: 0), GroupID(topic: "orders", partition: 1),
        GroupID(topic: "audit", partition: 0),
    ]

    /// Three nodes elect a leader per group, commit on it, survive the death of one node, and the restarted node
    /// catches up byte for byte.
    func testGroupsReplicateOverTCPAndSurviveANodeRestart() async throws {
        let cluster = try PeerTestCluster(groups: groups)
        do {
            for id in cluster.ids { try await cluster.start(id) }
            for group in groups {
                _ = try await cluster.waitForLeader(of: group)
                for k in 0..<5 { _ = try await cluster.produceCommitted(group, "\(group)/a\(k)") }
            }
            for group in groups {
                let bytes = try await cluster.converged(group)
                XCTAssertGreaterThan(bytes.count, 0)
            }

            // The leader of the first group dies; the others elect a new leader everywhere and go on committing.
            let victim = try await cluster.waitForLeader(of: groups[0])
            await cluster.stop(victim)
            for group in groups {
                let leader = try await cluster.waitForLeader(of: group)
                XCTAssertNotEqual(leader, victim)
                for k in 0..<5 { _ = try await cluster.produceCommitted(group, "\(group)/b\(k)") }
            }

            // It comes back over the same directories and catches up.
            try await cluster.start(victim)
            for group in groups {
                _ = try await cluster.produceCommitted(group, "\(group)/c")
                let bytes = try await cluster.converged(group, seconds: 10)
                let values = try peerValues(bytes)
                for k in 0..<5 {
                    XCTAssertTrue(values.contains("\(group)/a\(k)/0"), "\(group): a\(k) lost")
                    XCTAssertTrue(values.contains("\(group)/b\(k)/1"), "\(group): b\(k) lost")
                }
                XCTAssertTrue(values.contains("\(group)/c/0"))
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A node about to stop hands its leaderships to the other voters, which go on committing without an election
    /// timeout.
    func testLeadershipsAreHandedAwayBeforeAShutdown() async throws {
        let cluster = try PeerTestCluster(groups: Array(groups.prefix(2)))
        do {
            for id in cluster.ids { try await cluster.start(id) }
            let leaving = try await cluster.waitForLeader(of: groups[0])
            guard let node = cluster.nodes[leaving] else { throw TestFailure("node \(leaving) is not running") }
            _ = try await cluster.produceCommitted(groups[0], "before")
            let stillLed = try await node.host.transferLeadershipsAway(timeoutMs: 5000, on: node.loops.next()).get()
            XCTAssertEqual(stillLed, [])
            for group in groups.prefix(2) {
                let leader = try await cluster.waitForLeader(of: group)
                XCTAssertNotEqual(leader, leaving)
                // Both the leaving node and the new leader reported the change.
                let heard = node.leadershipChanges.all.last { $0.group == group }
                XCTAssertEqual(heard?.leader, leader)
                XCTAssertEqual(heard?.isLocal, false)
                let told = cluster.nodes[leader]?.leadershipChanges.all.last { $0.group == group }
                XCTAssertEqual(told?.isLocal, true)
            }
            await cluster.stop(leaving)
            _ = try await cluster.produceCommitted(groups[0], "after")
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// Groups come and go while the nodes run: a group added everywhere elects and commits, and a removed group
    /// (closed even with a flush in flight) is gone while the other groups carry on.
    func testGroupsAreAddedAndRemovedWhileRunning() async throws {
        let kept = groups[0]
        let added = GroupID(topic: "added", partition: 3)
        let cluster = try PeerTestCluster(groups: [kept])
        do {
            for id in cluster.ids { try await cluster.start(id) }
            _ = try await cluster.produceCommitted(kept, "kept")
            for node in cluster.nodes.values {
                try await node.addGroup(
                    added, voters: cluster.ids, directory: node.directory + "/\(added)", logConfig: LogConfig()
                ).get()
            }
            let first = cluster.nodes[NodeID(1)]
            let twice = first?.addGroup(added, voters: cluster.ids, directory: "/nonexistent", logConfig: LogConfig())
            await XCTAssertThrowsAsync(try await twice?.get(), .groupExists(added))
            let elsewhere = GroupID(topic: "elsewhere", partition: 0)
            let stranger = first?.addGroup(
                elsewhere, voters: [NodeID(2), NodeID(3)], directory: "/nonexistent", logConfig: LogConfig())
            await XCTAssertThrowsAsync(
                try await stranger?.get(), .openFailed(elsewhere, "node 1 is not among its voters [2, 3]"))
            _ = try await cluster.produceCommitted(added, "added")
            _ = try await cluster.converged(added)

            // Appends without waiting, then removal at once: the engine closes after its flush.
            let leader = try await cluster.waitForLeader(of: added)
            for k in 0..<5 {
                let node = cluster.nodes[leader]
                _ = try? await node?.propose(try peerBatch("late\(k)"), to: added, waitForCommit: false).get()
            }
            for node in cluster.nodes.values {
                try await withDeadline(seconds: 5, node.host.removeGroup(added))
                let hosted = await node.groups()
                XCTAssertEqual(hosted, [kept])
                do {
                    _ = try await node.host.withReplica(added) { _ in () }.get()
                    XCTFail("status of a removed group")
                } catch {
                    XCTAssertEqual(error as? ReplicaHostError, .unknownGroup(added))
                }
            }
            _ = try await cluster.produceCommitted(kept, "still")
            let values = try peerValues(try await cluster.converged(kept))
            XCTAssertEqual(values, ["kept/0", "kept/1", "still/0", "still/1"])
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A node started with another cluster id is refused by both of its peers, which still form a majority and
    /// commit.
    func testANodeOfAnotherClusterIsRefused() async throws {
        let group = GroupID(topic: "refused", partition: 0)
        let cluster = try PeerTestCluster(groups: [group])
        do {
            try await cluster.start(NodeID(1))
            try await cluster.start(NodeID(2))
            try await cluster.start(NodeID(3), clusterID: "someone-else")
            let stranger = cluster.nodes.removeValue(forKey: NodeID(3))
            _ = try await cluster.produceCommitted(group, "majority")
            for id in [NodeID(1), NodeID(2)] {
                XCTAssertFalse(cluster.nodes[id]?.network.isConnected(to: NodeID(3)) ?? true)
            }
            XCTAssertEqual(stranger?.network.isConnected(to: NodeID(1)), false)
            XCTAssertEqual(stranger?.network.isConnected(to: NodeID(2)), false)
            await stranger?.stop()
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// Garbage, a stranger's hello and an oversized frame on a node's cluster port each close only that connection;
    /// the node keeps committing.
    func testGarbageOnTheClusterPortClosesOnlyThatConnection() async throws {
        let group = GroupID(topic: "garbage", partition: 0)
        let cluster = try PeerTestCluster(groups: [group])
        do {
            for id in cluster.ids { try await cluster.start(id) }
            _ = try await cluster.produceCommitted(group, "before")

            let client = MultiThreadedEventLoopGroup.singleton
            let target = cluster.ports[2]
            var strangerHello = ByteBuffer()
            PeerHello(nodeID: NodeID(1), clusterID: "another-cluster").encode(into: &strangerHello)
            var oversized = ByteBuffer()
            PeerHello(nodeID: NodeID(1), clusterID: "test-cluster").encode(into: &oversized)
            oversized.writeInteger(UInt32(1 << 30))
            oversized.writeInteger(UInt8(1))
            let inputs: [ByteBuffer] = [
                ByteBuffer(string: "GET / HTTP/1.1\r\nHost: keel\r\n\r\n"), strangerHello,
                ByteBuffer(bytes: [UInt8](repeating: 0xff, count: 4096)),
            ]
            for input in inputs {
                let channel = try await ClientBootstrap(group: client).connect(host: "127.0.0.1", port: target).get()
                try await channel.writeAndFlush(input).get()
                try await withDeadline(seconds: 5, channel.closeFuture)
            }
            // An oversized frame from a voter that passed the handshake: the link closes, and node 1 redials.
            let channel = try await ClientBootstrap(group: client).connect(host: "127.0.0.1", port: target).get()
            try await channel.writeAndFlush(oversized).get()
            try await withDeadline(seconds: 5, channel.closeFuture)

            _ = try await cluster.produceCommitted(group, "after")
            let values = try peerValues(try await cluster.converged(group))
            XCTAssertTrue(values.contains("before/0"))
            XCTAssertTrue(values.contains("after/1"))
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// The voters parser takes `id@host:port` lists and refuses bad ones with a one-line message naming the fault.
    /// A peer that completed the handshake and then went silent (as when a partition drops its packets and TCP
    /// keeps the connection up) gets keepalives, and its link is closed after the silence limit so that it is
    /// dialed afresh: frames do not wait for TCP's backed-off retransmissions once the network heals.
    func testALinkThatGoesSilentIsClosed() async throws {
        let group = GroupID(topic: "silent", partition: 0)
        let cluster = try PeerTestCluster(groups: [group])
        do {
            try await cluster.start(NodeID(3))
            final class ByteCount: Sendable { let value = Mutex(0) }
            let received = ByteCount()
            final class Counter: ChannelInboundHandler, Sendable {
                typealias InboundIn = ByteBuffer
                let received: ByteCount
                init(_ received: ByteCount) { self.received = received }
                func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                    let bytes = unwrapInboundIn(data).readableBytes
                    received.value.withLock { $0 += bytes }
                }
            }
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Counter(received)) }
                }
                .connect(host: "127.0.0.1", port: cluster.ports[2]).get()
            var hello = ByteBuffer()
            PeerHello(nodeID: NodeID(1), clusterID: "test-cluster").encode(into: &hello)
            try await channel.writeAndFlush(hello).get()
            var answer = ByteBuffer()
            PeerHello(nodeID: NodeID(3), clusterID: "test-cluster").encode(into: &answer)
            // Node 3 answers the hello, then sends keepalives; this end sends nothing more.
            try await waitUntilAsync("keepalives after the hello", seconds: 10) {
                received.value.withLock { $0 } > answer.readableBytes
            }
            try await withDeadline(seconds: 15, channel.closeFuture) as Void
            XCTAssertFalse(cluster.nodes[NodeID(3)]?.network.isConnected(to: NodeID(1)) ?? true)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    func testVotersParser() throws {
        let list = try VoterList.parse("1@127.0.0.1:19092, 2@node-b:19093,3@[::1]:19094")
        XCTAssertEqual(list.nodeIDs, [NodeID(1), NodeID(2), NodeID(3)])
        XCTAssertEqual(list.addresses[NodeID(2)], PeerAddress(host: "node-b", port: 19093))
        XCTAssertEqual(list.addresses[NodeID(3)], PeerAddress(host: "::1", port: 19094))
        XCTAssertEqual(list.description, "1@127.0.0.1:19092,2@node-b:19093,3@[::1]:19094")
        XCTAssertEqual(try PeerAddress.parse("0.0.0.0:0", allowPortZero: true).port, 0)

        let bad: [(String, VotersError)] = [
            ("", .empty),
            (" , ", .empty),
            ("1@a:1,", .badEntry("")),
            ("127.0.0.1:19092", .badEntry("127.0.0.1:19092")),
            ("x@127.0.0.1:19092", .badNodeID("x")),
            ("0@127.0.0.1:19092", .badNodeID("0")),
            ("1@127.0.0.1", .badAddress("127.0.0.1", "expected host:port")),
            ("1@127.0.0.1:0", .badAddress("127.0.0.1:0", "the port must be a number from 1 to 65535")),
            ("1@127.0.0.1:70000", .badAddress("127.0.0.1:70000", "the port must be a number from 1 to 65535")),
            ("1@:19092", .badAddress(":19092", "the host is empty")),
            ("1@::1:19092", .badAddress("::1:19092", "an IPv6 host needs brackets: [::1]:19092")),
            ("1@a:1,1@b:2", .duplicateNodeID(NodeID(1))),
            ("1@a:1,2@a:1", .duplicateAddress(PeerAddress(host: "a", port: 1))),
        ]
        for (input, expected) in bad {
            XCTAssertThrowsError(try VoterList.parse(input), "'\(input)'") { error in
                XCTAssertEqual(error as? VotersError, expected, "'\(input)'")
                let line = "\(error)"
                XCTAssertTrue(line.hasPrefix("--voters: "), line)
                XCTAssertFalse(line.contains("\n"), line)
            }
        }
        let config = PeerNetworkConfig(
            nodeID: NodeID(4), clusterID: "c", voters: list, listen: PeerAddress(host: "127.0.0.1", port: 0))
        XCTAssertThrowsError(try config.validate()) { error in
            XCTAssertEqual("\(error)", "cluster configuration: --voters: this node's id 4 is not in the list")
        }
    }

    /// The connection decoder, fed a hello and two frames one byte at a time, yields exactly them, and refuses a
    /// frame over its limit before buffering it.
    func testPeerDecoderTakesOneByteAtATime() throws {
        var stamped = try peerBatch("x")
        RecordBatch.setPartitionLeaderEpoch(1, in: &stamped, at: stamped.readerIndex)
        let payload = try BatchPayload(validating: stamped, firstIndex: .zero, lastIndex: LogIndex(1), term: Term(1))
        let entry = Entry(term: Term(1), firstIndex: .zero, lastIndex: LogIndex(1), content: .data(payload))
        let group = GroupID(topic: "orders", partition: 2)
        let append = PeerFrame.message(
            ReplicationMessage(
                group: group,
                message: Message(
                    from: NodeID(1), to: NodeID(2), term: Term(1),
                    kind: .append(
                        prevLastIndex: .none, prevTerm: .zero,
                        entries: [entry], leaderCommit: .none))))
        let beats = PeerFrame.heartbeats(
            CoalescedHeartbeats(
                from: NodeID(1), to: NodeID(2),
                items: [HeartbeatItem(group: group, term: Term(1), kind: .heartbeat(commit: LogIndex(1)))]))
        var wire = ByteBuffer()
        PeerHello(nodeID: NodeID(1), clusterID: "c").encode(into: &wire)
        var frames = ByteBuffer()
        ReplicationCodec.encode(append, into: &frames)
        ReplicationCodec.encode(beats, into: &frames)
        wire.writeImmutableBuffer(frames)

        let channel = EmbeddedChannel(handler: ByteToMessageHandler(PeerFrameDecoder(frameBytesMax: 1 << 20)))
        for byte in wire.readableBytesView { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        guard case .hello(let hello)? = try channel.readInbound(as: PeerInbound.self) else {
            return XCTFail("no hello")
        }
        XCTAssertEqual(hello, PeerHello(nodeID: NodeID(1), clusterID: "c"))
        var reencoded = ByteBuffer()
        while let inbound = try channel.readInbound(as: PeerInbound.self) {
            guard case .frame(let frame) = inbound else { return XCTFail("a second hello") }
            ReplicationCodec.encode(frame, into: &reencoded)
        }
        XCTAssertEqual(reencoded, frames)
        _ = try channel.finish()

        let limited = EmbeddedChannel(handler: ByteToMessageHandler(PeerFrameDecoder(frameBytesMax: 1024)))
        var big = ByteBuffer()
        PeerHello(nodeID: NodeID(1), clusterID: "c").encode(into: &big)
        big.writeInteger(UInt32(1025))
        XCTAssertThrowsError(try limited.writeInbound(big)) { error in
            XCTAssertEqual(error as? PeerProtocolError, .frameTooLarge(1025))
        }
        _ = try? limited.finish()
    }

    /// A hello survives being fed one byte at a time, and bytes that are not a hello are refused.
    func testHelloDecodesByteByByteAndRefusesGarbage() throws {
        var encoded = ByteBuffer()
        PeerHello(nodeID: NodeID(7), clusterID: "keel-prod").encode(into: &encoded)
        var fed = ByteBuffer()
        var decoded: PeerHello?
        for byte in encoded.readableBytesView {
            XCTAssertNil(decoded)
            fed.writeInteger(byte)
            decoded = try PeerHello.decode(from: &fed)
        }
        XCTAssertEqual(decoded, PeerHello(nodeID: NodeID(7), clusterID: "keel-prod"))
        XCTAssertEqual(fed.readableBytes, 0)

        var http = ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")
        XCTAssertThrowsError(try PeerHello.decode(from: &http))
        var wrongMagic = ByteBuffer()
        wrongMagic.writeInteger(UInt32(16))
        wrongMagic.writeRepeatingByte(0, count: 16)
        XCTAssertThrowsError(try PeerHello.decode(from: &wrongMagic))
    }
}

/// Every record value in the batches of `bytes`, control batches skipped.
func peerValues(_ bytes: [UInt8]) throws -> [String] {
    var buffer = ByteBuffer(bytes: bytes)
    var values: [String] = []
    while buffer.readableBytes > 0 {
        let header = try RecordBatchHeader.read(from: buffer, at: buffer.readerIndex)
        guard let batch = buffer.getSlice(at: buffer.readerIndex, length: header.totalSize) else {
            throw TestFailure("truncated batch")
        }
        if !header.attributes.isControl {
            values += try RecordBatch.records(of: batch).map { $0.value.map { String(buffer: $0) } ?? "" }
        }
        buffer.moveReaderIndex(forwardBy: header.totalSize)
    }
    return values
}
