import KafkaProtocol
import NIOCore
import XCTest

@testable import ConsumerGroups

/// A seeded world of clients that join, sync, heartbeat, commit, leave, restart and go quiet at random against
/// one coordinator, with invariants checked after every event.
struct GroupWorld {
    struct Client {
        var name: String
        var instanceId: String?
        var memberId = ""
        var generation: Int32 = -1
        var isLeader = false
        var members: [String] = []
    }

    var coordinator = GroupCoordinator()
    var random: SeededGenerator
    var now: Milliseconds = 0
    var log: [GroupRecord] = []
    var clients: [Client]
    var nextToken: UInt64 = 0
    var owner: [RequestToken: Int] = [:]
    var answers: [RequestToken: Int] = [:]
    var generations: [String: Int32] = [:]
    var failures: [String] = []
    /// How often each state was seen after an event, and how many replies succeeded per API (coverage).
    var statesSeen: [GroupStateName: Int] = [:]
    var successes: [String: Int] = [:]

    init(seed: UInt64) {
        random = SeededGenerator(seed: seed)
        clients = (1...5).map { Client(name: "c\($0)", instanceId: $0 <= 2 ? "i\($0)" : nil) }
    }

    mutating func token(for client: Int) -> RequestToken {
        nextToken += 1
        let token = RequestToken(nextToken)
        owner[token] = client
        return token
    }

    mutating func step() {
        let index = Int.random(in: 0..<clients.count, using: &random)
        let client = clients[index]
        let effects: GroupEffects
        // A client without a member id mostly joins, as real clients do.
        let roll = client.memberId.isEmpty && Bool.random(using: &random) ? 0 : Int.random(in: 0..<100, using: &random)
        switch roll {
        case 0..<12:
            // c5 prefers roundrobin, and now and then a client changes its mind (a metadata change).
            let flip = (index == 4) != (Int.random(in: 0..<10, using: &random) == 0)
            let protocols = flip ? ["roundrobin", "range"] : ["range", "roundrobin"]
            let request = JoinGroupRequest(
                groupId: "g",
                sessionTimeoutMs: 10_000,
                rebalanceTimeoutMs: 15_000,
                memberId: client.memberId,
                groupInstanceId: client.instanceId,
                protocolType: "consumer",
                protocols: protocols.map { .init(name: $0, metadata: ByteBuffer(string: client.name)) }
            )
            effects = coordinator.join(token(for: index), request, clientId: client.name, clientHost: "h", now: now)
        case 12..<40:
            let assignments =
                client.isLeader
                ? client.members.map { SyncGroupRequest.Assignment(memberId: $0, assignment: ByteBuffer(string: $0)) }
                : []
            let request = SyncGroupRequest(
                groupId: "g",
                generationId: client.generation,
                memberId: client.memberId,
                groupInstanceId: client.instanceId,
                assignments: assignments
            )
            effects = coordinator.sync(token(for: index), request, now: now)
        case 40..<60:
            let request = HeartbeatRequest(groupId: "g", generationId: client.generation, memberId: client.memberId)
            effects = coordinator.heartbeat(token(for: index), request, now: now)
        case 60..<70:
            let group = Bool.random(using: &random) ? "g" : "h"
            let standalone = group == "h"
            let request = OffsetCommitRequest(
                groupId: group,
                generationId: standalone ? -1 : client.generation,
                memberId: standalone ? "" : client.memberId,
                retentionTimeMs: -1,
                topics: [
                    .init(
                        name: "t",
                        partitions: [
                            .init(
                                partitionIndex: Int32.random(in: 0..<3, using: &random),
                                committedOffset: Int64.random(in: 0..<1000, using: &random),
                                committedMetadata: nil
                            )
                        ]
                    )
                ]
            )
            effects = coordinator.offsetCommit(token(for: index), request, now: now)
        case 70..<74:
            effects = coordinator.leave(
                token(for: index), LeaveGroupRequest(groupId: "g", memberId: client.memberId), now: now)
            clients[index].memberId = ""
        case 74..<78:
            // The process restarts: a dynamic member comes back as a new member, a static one with its instance id.
            clients[index] = Client(name: client.name, instanceId: client.instanceId)
            effects = GroupEffects()
        default:
            now += Int64.random(in: 0...3000, using: &random)
            effects = coordinator.tick(now: now)
        }
        apply(effects)
        checkInvariants()
    }

    mutating func apply(_ effects: GroupEffects) {
        for reply in effects.replies { deliver(reply) }
        for append in effects.appends {
            log += append.records
            for reply in append.repliesOnCommit { deliver(reply) }
        }
    }

    mutating func deliver(_ reply: GroupReply) {
        answers[reply.token, default: 0] += 1
        switch reply.response {
        case .join(let response) where response.errorCode == .none: successes["join", default: 0] += 1
        case .sync(let response) where response.errorCode == .none: successes["sync", default: 0] += 1
        case .heartbeat(let response) where response.errorCode == .none: successes["heartbeat", default: 0] += 1
        case .offsetCommit(let response) where response.topics.first?.partitions.first?.errorCode == ErrorCode.none:
            successes["commit", default: 0] += 1
        default: break
        }
        guard let index = owner[reply.token] else {
            failures.append("reply to a token never issued: \(reply.token)")
            return
        }
        switch reply.response {
        case .join(let response):
            if response.errorCode == .none {
                clients[index].memberId = response.memberId
                clients[index].generation = response.generationId
                clients[index].isLeader = response.leader == response.memberId
                clients[index].members = response.members.map(\.memberId)
            } else if response.errorCode == .unknownMemberId || response.errorCode == .fencedInstanceId {
                clients[index].memberId = ""
            }
        case .sync, .heartbeat, .leave, .offsetCommit, .offsetFetch, .describe, .list, .deleteGroups:
            break
        }
    }

    mutating func checkInvariants() {
        for (id, group) in coordinator.groups {
            statesSeen[group.state.name, default: 0] += 1
            let ids = group.members.map(\.id)
            if Set(ids).count != ids.count { failures.append("\(id): duplicate member ids \(ids)") }
            let instances = group.members.compactMap(\.instanceId)
            if Set(instances).count != instances.count { failures.append("\(id): duplicate instance ids") }
            switch group.state {
            case .empty:
                if !group.members.isEmpty { failures.append("\(id): Empty with members") }
            case .completingRebalance, .stable:
                if group.leaderId.map({ ids.contains($0) }) != true { failures.append("\(id): leader not a member") }
                if group.protocolName == nil { failures.append("\(id): no protocol") }
            case .preparingRebalance:
                break
            case .dead:
                failures.append("\(id): a Dead group is stored")
            }
            if let previous = generations[id], group.generation < previous {
                failures.append("\(id): generation went back from \(previous) to \(group.generation)")
            }
            generations[id] = group.generation
        }
        for id in generations.keys where coordinator.groups[id] == nil { generations[id] = nil }
        for (token, count) in answers where count > 1 { failures.append("\(token) answered \(count) times") }

        // A coordinator replaying the log agrees on every offset, and on every group that is Stable or Empty.
        var reloaded = GroupCoordinator(loading: true)
        do {
            try reloaded.load(log)
        } catch {
            failures.append("load failed: \(error)")
            return
        }
        reloaded.finishLoading(now: now)
        for (id, group) in coordinator.groups {
            let copy = reloaded.groups[id]
            if group.offsets != (copy?.offsets ?? [:]) { failures.append("\(id): offsets differ after reload") }
            switch group.state {
            case .stable, .empty:
                guard let copy else {
                    if !group.members.isEmpty || group.generation != 0 { failures.append("\(id): lost by reload") }
                    continue
                }
                if copy.generation != group.generation || copy.leaderId != group.leaderId
                    || copy.protocolName != group.protocolName || copy.members.map(\.id) != group.members.map(\.id)
                    || copy.members.map(\.assignment) != group.members.map(\.assignment)
                {
                    failures.append("\(id): \(group.state.name) group differs after reload")
                }
            case .preparingRebalance, .completingRebalance, .dead:
                break
            }
        }
    }
}

final class GroupSimulationTests: XCTestCase {
    /// Under random clients every request is answered exactly once, the group invariants hold after every
    /// event, and replaying the log rebuilds the offsets and every settled group (seeds are printed on failure).
    func testRandomClientsKeepInvariantsAndReplayAgrees() {
        var statesSeen: [GroupStateName: Int] = [:]
        var successes: [String: Int] = [:]
        defer {
            print("GroupSimulationTests coverage: states \(statesSeen.sorted { $0.key.rawValue < $1.key.rawValue })")
            print("GroupSimulationTests coverage: successes \(successes.sorted { $0.key < $1.key })")
            for state in [GroupStateName.empty, .preparingRebalance, .completingRebalance, .stable] {
                XCTAssertGreaterThan(statesSeen[state, default: 0], 0, "the world never reached \(state)")
            }
            for api in ["join", "sync", "heartbeat", "commit"] {
                XCTAssertGreaterThan(successes[api, default: 0], 0, "no \(api) ever succeeded")
            }
        }
        for seed in UInt64(1)...30 {
            var world = GroupWorld(seed: seed)
            for _ in 0..<400 {
                world.step()
                if !world.failures.isEmpty { break }
            }
            // Everyone goes quiet: every parked request must be answered as the timers run out.
            for _ in 0..<10 {
                world.now += 3_600_000
                world.apply(world.coordinator.tick(now: world.now))
            }
            let unanswered = (1...world.nextToken).map(RequestToken.init).filter { world.answers[$0] == nil }
            if !unanswered.isEmpty { world.failures.append("never answered: \(unanswered)") }
            statesSeen.merge(world.statesSeen, uniquingKeysWith: +)
            successes.merge(world.successes, uniquingKeysWith: +)
            XCTAssertEqual(world.failures, [], "seed=\(seed)")
            if !world.failures.isEmpty { return }
        }
    }
}
