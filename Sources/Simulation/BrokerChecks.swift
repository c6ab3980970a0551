// The broker world's checks: Raft's safety properties in every group after every step, what clients saw, and
// at the end of a run the acknowledged records on every replica and the metadata on every node.
import Broker
import KafkaProtocol
import LogStorage
import NIOCore
import Raft
import Records
import Replication

/// What identifies a committed batch: its offsets, its term, its CRC (which covers everything but the offset and
/// the term).
struct BatchFact: Equatable, CustomStringConvertible {
    var base: Int64
    var last: Int64
    var epoch: Int32
    var crc: UInt32
    var isControl: Bool

    init(_ header: RecordBatchHeader) {
        base = header.baseOffset
        last = header.lastOffset.value
        epoch = header.partitionLeaderEpoch
        crc = header.crc
        isControl = header.attributes.isControl
    }

    /// The term the batch carries.
    var term: Term { Term(UInt64(bitPattern: Int64(epoch))) }

    var description: String { "\(base)...\(last)@\(epoch)\(isControl ? " control" : "") crc \(crc)" }
}

/// What the checks remember of one group.
final class GroupFacts {
    /// The leader of each term seen.
    var leaders: [Term: Int32] = [:]
    /// Every committed offset's batch.
    var committed: [Int64: BatchFact] = [:]
    /// Every committed batch by its last offset, with the term of the first replica seen to commit it.
    var batches: [Int64: (fact: BatchFact, observedTerm: Term)] = [:]
    /// Log matching: every batch seen at the end of some replica's log, committed or not, by last offset and term.
    var tails: [Int64: [Int32: BatchFact]] = [:]
}

/// A record a producer had acknowledged.
struct AcknowledgedBatch {
    var partition: Int32
    var baseOffset: Int64
    var values: [String]
    var atMs: Int64
}

/// One Raft group: a partition of one incarnation of its topic (a topic deleted and created again is a new
/// group, whose terms start again at 1), or the controller's.
struct GroupKey: Hashable, Comparable, CustomStringConvertible {
    var group: GroupID
    /// The topic's uid, as the replica's directory names it (empty for the controller).
    var uid: String

    static func < (a: GroupKey, b: GroupKey) -> Bool { (a.group, a.uid) < (b.group, b.uid) }

    var description: String { uid.isEmpty ? "\(group)" : "\(group) (uid \(uid))" }
}

final class SimChecks {
    var groups: [GroupKey: GroupFacts] = [:]
    /// The commit index each node's replica of each group showed last in its current life.
    var seenCommit: [Int: [GroupKey: Int64]] = [:]
    /// The log end each node's replica of each group showed last, to read its last batch only when it moved.
    var seenEnd: [Int: [GroupKey: Int64]] = [:]
    var leaderCount = 0
    var acknowledged: [AcknowledgedBatch] = []
    /// What the reader saw at each offset of each partition.
    var reads: [Int32: [Int64: String]] = [:]
    /// The high watermarks ListOffsets answered per partition, with the term of the leader that answered.
    var highWatermarks: [Int32: [(term: Term, offset: Int64, node: Int32, atMs: Int64)]] = [:]
    var producerIds: Set<Int64> = []

    /// The group a node's replica belongs to: its directory's topic uid tells the topic's incarnation (written
    /// before the replica opens, removed only after it closed).
    func key(of probe: ReplicaProbe, on node: BrokerNode) -> GroupKey {
        guard probe.group != Controller.group,
            let file = node.disk.entries["/data/\(probe.group)/topic.uid"]
        else { return GroupKey(group: probe.group, uid: "") }
        return GroupKey(group: probe.group, uid: String(decoding: file.data, as: UTF8.self).trimmingSuffix())
    }

    func facts(_ group: GroupKey) -> GroupFacts {
        if let known = groups[group] { return known }
        let made = GroupFacts()
        groups[group] = made
        return made
    }

    func nodeStarted(_ node: BrokerNode) {
        seenCommit[node.index] = [:]
        seenEnd[node.index] = [:]
    }

    // MARK: Client events

    func producerIdGiven(_ id: Int64, world: BrokerWorld) {
        if !producerIds.insert(id).inserted { world.fail("producer id \(id) handed out twice") }
    }

    func acknowledged(partition: Int32, baseOffset: Int64, values: [String], world: BrokerWorld) {
        acknowledged.append(
            AcknowledgedBatch(partition: partition, baseOffset: baseOffset, values: values, atMs: world.nowMs))
        world.result.acknowledgedBatches += 1
        world.result.acknowledgedRecords += values.count
    }

    func read(partition: Int32, offset: Int64, value: String, world: BrokerWorld) {
        world.result.recordsRead += 1
        if let known = reads[partition]?[offset] {
            if known != value {
                world.fail("partition \(partition) offset \(offset) was read as \(known), now as \(value)")
            }
        } else {
            reads[partition, default: [:]][offset] = value
        }
    }

    /// KIP-207: the high watermark a leader answers is never below one that a leader of the same or an earlier
    /// term answered before (a deposed leader that does not know it yet may answer less).
    func highWatermarkListed(partition: Int32, _ offset: Int64, by node: BrokerNode, world: BrokerWorld) {
        let group = GroupID(topic: BrokerWorld.topic, partition: partition)
        guard let probe = node.life?.broker.probeReplicas().first(where: { $0.group == group }) else { return }
        let term = probe.term
        if let higher = highWatermarks[partition, default: []].first(where: { $0.term <= term && $0.offset > offset }) {
            world.fail(
                "ListOffsets of partition \(partition): n\(node.id), leader of term \(term), answered high watermark "
                    + "\(offset), below the \(higher.offset) that n\(higher.node), leader of term \(higher.term), "
                    + "answered at "
                    + "t=\(higher.atMs)")
            return
        }
        highWatermarks[partition, default: []].append((term, offset, node.id, world.nowMs))
    }

    // MARK: After every step

    func check(_ world: BrokerWorld) throws(InvariantViolation) {
        for node in world.nodes {
            guard let life = node.life else { continue }
            for probe in life.broker.probeReplicas() {
                try check(probe, on: node, world: world)
            }
        }
    }

    func check(_ probe: ReplicaProbe, on node: BrokerNode, world: BrokerWorld) throws(InvariantViolation) {
        let group = key(of: probe, on: node)
        if let failure = probe.failure {
            throw InvariantViolation(message: "n\(node.id): the replica of \(group) stopped: \(failure)")
        }
        let facts = facts(group)
        if probe.isLeader {
            if let known = facts.leaders[probe.term] {
                guard known == node.id else {
                    throw InvariantViolation(
                        message: "\(group): two leaders in term \(probe.term): n\(known) and n\(node.id)")
                }
            } else {
                facts.leaders[probe.term] = node.id
                leaderCount += 1
                world.log("check: n\(node.id) leads \(group) in term \(probe.term)")
                // Leader completeness: it holds every batch committed in an earlier term.
                for last in facts.batches.keys.sorted() {
                    let (fact, observed) = facts.batches[last]!
                    guard observed < probe.term, last >= probe.log.logStartOffset.value else { continue }
                    guard probe.reader.term(at: LogIndex(last)) == fact.term else {
                        throw InvariantViolation(
                            message: "\(group): n\(node.id) leads term \(probe.term) without the batch \(fact) "
                                + "committed by term \(observed)")
                    }
                }
            }
        }
        let commit = probe.commitIndex.value
        let last = probe.log.logEndOffset.value - 1
        if seenEnd[node.index]?[group] != last {
            seenEnd[node.index, default: [:]][group] = last
            if last >= probe.log.logStartOffset.value {
                try checkTail(probe, group, last: last, node: node, facts: facts)
            }
        }
        guard commit <= last else {
            throw InvariantViolation(message: "\(group): n\(node.id) commits \(commit) beyond its last offset \(last)")
        }
        let previous = seenCommit[node.index]?[group] ?? (probe.log.logStartOffset.value - 1)
        guard commit >= previous else {
            throw InvariantViolation(
                message: "\(group): n\(node.id) commit index moved back from \(previous) to \(commit)")
        }
        if commit > previous {
            try register(probe, group, from: previous + 1, through: commit, node: node, facts: facts)
            seenCommit[node.index, default: [:]][group] = commit
        }
        // The batch at the commit index keeps its term.
        if commit >= probe.log.logStartOffset.value, let fact = facts.committed[commit],
            probe.reader.term(at: probe.commitIndex) != fact.term
        {
            throw InvariantViolation(
                message:
                    "\(group): n\(node.id) holds term "
                    + "\(probe.reader.term(at: probe.commitIndex).map { "\($0)" } ?? "none") "
                    + "at its commit index \(commit), where \(fact) was committed")
        }
    }

    /// Log matching: the batch at the end of a replica's log is the same as every other batch with the same last
    /// offset and term, on any replica, committed or not.
    func checkTail(_ probe: ReplicaProbe, _ group: GroupKey, last: Int64, node: BrokerNode, facts: GroupFacts)
        throws(InvariantViolation)
    {
        let header: RecordBatchHeader
        do {
            let read = try probe.log.readVerified(from: Offset(last), maxBytes: 1)
            header = try RecordBatchHeader.read(from: read.bytes, at: read.bytes.readerIndex)
        } catch {
            throw InvariantViolation(message: "\(group): n\(node.id) cannot read its last batch at \(last): \(error)")
        }
        let fact = BatchFact(header)
        guard fact.last == last else {
            throw InvariantViolation(message: "\(group): n\(node.id)'s last batch \(fact) does not end at \(last)")
        }
        if let known = facts.tails[last]?[fact.epoch] {
            guard known == fact else {
                throw InvariantViolation(
                    message: "\(group): log matching: n\(node.id) holds \(fact), elsewhere the batch ending there in "
                        + "that term was \(known)")
            }
        } else {
            facts.tails[last, default: [:]][fact.epoch] = fact
        }
    }

    /// Reads the batches a replica newly commits and checks them against every replica's earlier commits.
    func register(
        _ probe: ReplicaProbe, _ group: GroupKey, from: Int64, through commit: Int64, node: BrokerNode,
        facts: GroupFacts
    ) throws(InvariantViolation) {
        var next = Offset(from)
        while next.value <= commit {
            let read: VerifiedRead
            do throws(LogError) {
                read = try probe.log.readVerified(from: next, maxBytes: 1 << 20, upTo: Offset(commit + 1))
            } catch {
                throw InvariantViolation(message: "\(group): n\(node.id) cannot read its committed \(next): \(error)")
            }
            guard read.batchCount > 0, read.nextOffset > next else {
                throw InvariantViolation(
                    message: "\(group): n\(node.id) has no batch at \(next) below its commit index \(commit)")
            }
            var index = read.bytes.readerIndex
            while index < read.bytes.writerIndex {
                let header: RecordBatchHeader
                do throws(RecordBatchError) {
                    header = try RecordBatchHeader.read(from: read.bytes, at: index)
                } catch {
                    throw InvariantViolation(message: "\(group): n\(node.id) holds a bad batch: \(error)")
                }
                let fact = BatchFact(header)
                for offset in max(fact.base, from)...fact.last {
                    if let known = facts.committed[offset] {
                        guard known == fact else {
                            throw InvariantViolation(
                                message: "\(group): committed offset \(offset) changed: n\(node.id) commits "
                                    + "\(fact), before it was \(known)")
                        }
                    } else {
                        facts.committed[offset] = fact
                    }
                }
                if facts.batches[fact.last] == nil { facts.batches[fact.last] = (fact, probe.term) }
                index += header.totalSize
            }
            next = read.nextOffset
        }
    }

    // MARK: Convergence and the end of a run

    /// The groups every node should host, by the metadata of the first node up: the controller's on every node,
    /// each partition's on its replicas.
    func expectedGroups(_ world: BrokerWorld) -> [(group: GroupID, replicas: [Int32])] {
        var expected: [(GroupID, [Int32])] = [(Controller.group, world.nodes.map(\.id))]
        guard let metadata = world.nodes.first(where: { $0.isUp })?.life?.broker.appliedMetadata else {
            return expected
        }
        for name in metadata.topicNames {
            guard let topic = metadata.topic(name) else { continue }
            for (partition, replicas) in topic.assignment.enumerated() {
                expected.append((GroupID(topic: name, partition: Int32(partition)), replicas))
            }
        }
        return expected
    }

    func probes(of group: GroupID, _ world: BrokerWorld) -> [(node: BrokerNode, probe: ReplicaProbe)] {
        world.nodes.compactMap { node in
            guard let probe = node.life?.broker.probeReplicas().first(where: { $0.group == group }) else { return nil }
            return (node, probe)
        }
    }

    /// Every group has one leader that all its replicas follow, with its whole log committed and as much committed
    /// on every replica; every node is caught up and has applied the same metadata.
    func converged(_ world: BrokerWorld) -> Bool {
        let lives = world.nodes.compactMap(\.life)
        guard lives.count == world.nodes.count, lives.allSatisfy({ $0.broker.isCaughtUp }) else { return false }
        let metadata = lives.map { $0.broker.appliedMetadata }
        guard metadata.allSatisfy({ $0 == metadata[0] }), metadata[0].topic(BrokerWorld.topic) != nil else {
            return false
        }
        guard (try? checkDirectories(world, metadata[0])) != nil else { return false }
        for (group, replicas) in expectedGroups(world) {
            let found = probes(of: group, world)
            guard found.map({ $0.node.id }) == replicas.sorted(),
                let leader = found.first(where: { $0.probe.isLeader })?.probe
            else { return false }
            // The leader's whole log is committed, and every follower has committed as much. A follower may still
            // hold an uncommitted tail of an earlier term that the leader lacks: Raft cuts it at the next append,
            // and until then nobody reads it.
            let commit = leader.commitIndex
            guard commit.value == leader.log.logEndOffset.value - 1 else { return false }
            for (_, probe) in found {
                guard probe.leader == leader.leader, probe.term == leader.term, probe.commitIndex == commit else {
                    return false
                }
            }
        }
        return true
    }

    func describeGroups(_ world: BrokerWorld) -> String {
        var directories = ""
        if let metadata = world.nodes.first?.life?.broker.appliedMetadata {
            do throws(InvariantViolation) {
                try checkDirectories(world, metadata)
            } catch {
                directories = error.message + "; "
            }
        }
        return directories
            + expectedGroups(world).map { group, _ in
                let replicas = probes(of: group, world).map { node, probe in
                    "n\(node.id) "
                        + (probe.isLeader ? "leader " : "follower of \(probe.leader.map { "n\($0)" } ?? "none") ")
                        + "t\(probe.term) commit \(probe.commitIndex) end \(probe.log.logEndOffset)"
                }
                return "\(group): " + replicas.joined(separator: ", ")
            }.joined(separator: "; ")
    }

    /// Every acknowledged record is on every replica exactly once at its acknowledged offset; every record read
    /// is there too; the metadata says what the admin asked for.
    func finalCheck(_ world: BrokerWorld) throws(InvariantViolation) {
        let metadata = world.nodes[0].life!.broker.appliedMetadata
        guard let topic = metadata.topic(BrokerWorld.topic), topic.partitionCount == world.options.partitionCount,
            topic.assignment.allSatisfy({ Set($0).count == 3 })
        else {
            throw InvariantViolation(
                message: "the topic is not as created: \(String(describing: metadata.topic(BrokerWorld.topic)))")
        }
        guard metadata.nodeIds == world.nodes.map(\.id) else {
            throw InvariantViolation(message: "registered nodes \(metadata.nodeIds)")
        }
        try checkDirectories(world, metadata)
        for partition in 0..<world.options.partitionCount {
            let group = GroupID(topic: BrokerWorld.topic, partition: partition)
            let acks = acknowledged.filter { $0.partition == partition }
            for (node, probe) in probes(of: group, world) {
                let (values, counts) = try records(of: probe, node: node)
                for ack in acks {
                    for (k, value) in ack.values.enumerated() {
                        let offset = ack.baseOffset + Int64(k)
                        guard values[offset] == value else {
                            throw InvariantViolation(
                                message: "\(group): \(value), acknowledged at \(offset) at t=\(ack.atMs), is not there "
                                    + "on n\(node.id) (found \(values[offset] ?? "nothing"))")
                        }
                        guard counts[value] == 1 else {
                            throw InvariantViolation(
                                message: "\(group): \(value) is stored \(counts[value] ?? 0) times on n\(node.id)")
                        }
                    }
                }
                for (offset, value) in (reads[partition] ?? [:]).sorted(by: { $0.key < $1.key }) {
                    guard values[offset] == value else {
                        throw InvariantViolation(
                            message: "\(group): the reader saw \(value) at \(offset); n\(node.id) holds "
                                + "\(values[offset] ?? "nothing") there")
                    }
                }
            }
        }
    }

    /// Every node hosts exactly the replicas the metadata assigns it, and its data directory holds exactly their
    /// directories (none left behind by a deleted topic), each naming its topic's incarnation.
    func checkDirectories(_ world: BrokerWorld, _ metadata: ClusterMetadataState) throws(InvariantViolation) {
        let expected = expectedGroups(world)
        for node in world.nodes {
            let wanted = expected.filter { $0.replicas.contains(node.id) }.map(\.group)
            let hosted = node.life?.broker.probeReplicas().map(\.group) ?? []
            guard hosted == wanted.sorted() else {
                throw InvariantViolation(
                    message: "n\(node.id) hosts \(hosted), the metadata assigns it \(wanted.sorted())")
            }
            let prefix = "/data/"
            var found = Set<String>()
            for path in node.disk.entries.keys.sorted() where path.hasPrefix(prefix) {
                let rest = path.dropFirst(prefix.count)
                guard let slash = rest.firstIndex(of: "/") else { continue }
                found.insert(String(rest[..<slash]))
            }
            let names = Set(wanted.map(\.description))
            guard found == names else {
                throw InvariantViolation(
                    message: "n\(node.id)'s data directory holds \(found.sorted()), it hosts \(names.sorted())")
            }
            for group in wanted where group != Controller.group {
                guard let topic = metadata.topic(group.topic) else { continue }
                let path = "\(prefix)\(group)/topic.uid"
                let identity = node.disk.entries[path].map { String(decoding: $0.data, as: UTF8.self) }
                guard identity == "\(topic.uid)\n" else {
                    throw InvariantViolation(
                        message: "n\(node.id): \(path) says \(identity ?? "nothing"), the topic's uid is \(topic.uid)")
                }
            }
        }
    }

    /// Every record of a replica's committed log: value by offset, and how often each value occurs.
    func records(of probe: ReplicaProbe, node: BrokerNode) throws(InvariantViolation)
        -> (values: [Int64: String], counts: [String: Int])
    {
        var values: [Int64: String] = [:]
        var counts: [String: Int] = [:]
        var next = probe.log.logStartOffset
        let end = Offset(probe.commitIndex.value + 1)
        while next < end {
            let read: VerifiedRead
            do throws(LogError) {
                read = try probe.log.readVerified(from: next, maxBytes: 1 << 20, upTo: end)
            } catch {
                throw InvariantViolation(message: "\(probe.group): n\(node.id) cannot read \(next): \(error)")
            }
            guard read.nextOffset > next else { break }
            var index = read.bytes.readerIndex
            while index < read.bytes.writerIndex {
                do {
                    let header = try RecordBatchHeader.read(from: read.bytes, at: index)
                    if !header.attributes.isControl {
                        for record in try RecordBatch.records(of: read.bytes, at: index) {
                            let value = record.value.map { String(buffer: $0) } ?? ""
                            values[header.baseOffset + Int64(record.offsetDelta)] = value
                            counts[value, default: 0] += 1
                        }
                    }
                    index += header.totalSize
                } catch {
                    throw InvariantViolation(message: "\(probe.group): n\(node.id) holds a bad batch: \(error)")
                }
            }
            next = read.nextOffset
        }
        return (values, counts)
    }
}

extension String {
    /// Without trailing newlines.
    func trimmingSuffix() -> String {
        var copy = self
        while copy.last == "\n" { copy.removeLast() }
        return copy
    }
}
