import KafkaProtocol
import NIOCore
import Records

@testable import KeelClient

/// A one-broker cluster (node 1) that coordinates consumer groups simply, for the scripted tests:
/// each JoinGroup completes at once with the joiner as leader (plus any `extraMembers`), offsets
/// and records live in memory, and a test can inject an error code into the next answers of any
/// group API. A transcript of the group requests lets tests check what the client sent, in order.
final class FakeGroupBroker: Sendable {
    /// A member the fake adds to every generation, as if another client had joined.
    struct ExtraMember: Sendable {
        var memberId: String
        var groupInstanceId: String?
        var metadata: ByteBuffer
    }

    struct Member: Sendable {
        var instanceId: String?
        var clientId: String
        var metadata: ByteBuffer
    }

    struct State: Sendable {
        var generation: Int32 = 0
        var nextMember = 1
        var members: [String: Member] = [:]
        var assignments: [String: ByteBuffer] = [:]
        var protocolName = ""
        var committed: [String: [TopicPartition: Int64]] = [:]
        /// Offsets `logStart..<logEnd` hold records with values `p<partition>-<offset>`.
        var logEnd: [TopicPartition: Int64] = [:]
        var logStart: Int64 = 0
        var transcript: [String] = []
        var errors: [ApiKey: [ErrorCode]] = [:]
        var extraMembers: [ExtraMember] = []
        /// Answer the first JoinGroup of a member without id with MEMBER_ID_REQUIRED (KIP-394).
        var requireMemberId = false
        var advertiseDeleteGroups = true
        /// Groups that exist with only committed offsets (state Empty), besides the joined one.
        var knownGroups: Set<String> = []
    }

    let state = LockedBox(State())
    let broker: ScriptedBroker
    let partitions: Int32

    init(partitions: Int32 = 2) async throws {
        self.partitions = partitions
        let box = LockedBox<FakeGroupBroker?>(nil)
        broker = try await ScriptedBroker(partitions: partitions) { request in
            box.value?.reply(request)
        }
        box.withLock { $0 = self }
    }

    var bootstrap: String { broker.bootstrap }

    func stop() async { await broker.stop() }

    /// Queues `codes` as the answers to the next requests of `api`.
    func inject(_ api: ApiKey, _ codes: ErrorCode...) {
        state.withLock { $0.errors[api, default: []].append(contentsOf: codes) }
    }

    /// Sets the log end offset of `topic`-`partition`.
    func setLogEnd(_ topic: String, _ partition: Int32, _ end: Int64) {
        state.withLock { $0.logEnd[TopicPartition(topic: topic, partition: partition)] = end }
    }

    var transcript: [String] { state.value.transcript }

    /// The transcript lines that start with `prefix`.
    func lines(_ prefix: String) -> [String] { transcript.filter { $0.hasPrefix(prefix) } }

    private func popError(_ api: ApiKey) -> ErrorCode? {
        state.withLock { state -> ErrorCode? in
            guard var queue = state.errors[api], !queue.isEmpty else { return nil }
            let code = queue.removeFirst()
            state.errors[api] = queue
            return code
        }
    }

    private func note(_ line: String) { state.withLock { $0.transcript.append(line) } }

    private func reply(_ request: DecodedRequest) -> [ScriptedReply]? {
        let answer = { (body: any KafkaMessage) -> [ScriptedReply] in [.answer(request, body)] }
        switch request.request {
        case .apiVersions:
            // Keel's table advertises DeleteGroups; a test may take it out to play an older broker.
            var apis = ApiVersionsTable.advertised.filter { $0.apiKey != ApiKey.deleteGroups.rawValue }
            if state.value.advertiseDeleteGroups {
                apis.append(.init(apiKey: ApiKey.deleteGroups.rawValue, minVersion: 0, maxVersion: 1))
            }
            return answer(ApiVersionsResponse(apiKeys: apis))
        case .findCoordinator(let body):
            note("FindCoordinator \(body.key)")
            if let code = popError(.findCoordinator) {
                return answer(
                    FindCoordinatorResponse(errorCode: code, errorMessage: nil, nodeId: -1, host: "", port: -1))
            }
            return answer(
                FindCoordinatorResponse(errorMessage: nil, nodeId: 1, host: "127.0.0.1", port: Int32(broker.port)))
        case .joinGroup(let body):
            return answer(join(body, clientId: request.header.clientId ?? ""))
        case .syncGroup(let body):
            return answer(sync(body))
        case .heartbeat(let body):
            note("Heartbeat gen=\(body.generationId) member=\(body.memberId)")
            if let code = popError(.heartbeat) { return answer(HeartbeatResponse(errorCode: code)) }
            let code = state.withLock { state -> ErrorCode in
                guard state.members[body.memberId] != nil else { return .unknownMemberId }
                return body.generationId == state.generation ? .none : .illegalGeneration
            }
            return answer(HeartbeatResponse(errorCode: code))
        case .leaveGroup(let body):
            note("LeaveGroup member=\(body.memberId)")
            state.withLock { _ = $0.members.removeValue(forKey: body.memberId) }
            return answer(LeaveGroupResponse())
        case .offsetCommit(let body):
            return answer(commit(body))
        case .offsetFetch(let body):
            note("OffsetFetch \(body.groupId)")
            if let code = popError(.offsetFetch) { return answer(OffsetFetchResponse(topics: [], errorCode: code)) }
            let committed = state.value.committed[body.groupId] ?? [:]
            let asked =
                body.topics?.map { topic in (topic.name, topic.partitionIndexes) }
                ?? Dictionary(grouping: committed.keys, by: \.topic).map {
                    ($0.key, $0.value.map(\.partition).sorted())
                }
            return answer(
                OffsetFetchResponse(
                    topics: asked.sorted { $0.0 < $1.0 }.map { name, indexes in
                        .init(
                            name: name,
                            partitions: indexes.map {
                                .init(
                                    partitionIndex: $0,
                                    committedOffset: committed[TopicPartition(topic: name, partition: $0)] ?? -1,
                                    metadata: "", errorCode: .none)
                            })
                    }, errorCode: .none))
        case .listOffsets(let body):
            let snapshot = state.value
            return answer(
                ListOffsetsResponse(
                    topics: body.topics.map { topic in
                        .init(
                            name: topic.name,
                            partitions: topic.partitions.map { partition in
                                let end =
                                    snapshot.logEnd[
                                        TopicPartition(topic: topic.name, partition: partition.partitionIndex)] ?? 0
                                let offset: Int64 =
                                    switch partition.timestamp {
                                    case -2: snapshot.logStart
                                    case -1: end
                                    // One record per millisecond from 1000: record i has timestamp 1000 + i.
                                    default:
                                        partition.timestamp - 1000 < end
                                            ? max(snapshot.logStart, partition.timestamp - 1000) : -1
                                    }
                                return .init(
                                    partitionIndex: partition.partitionIndex, errorCode: .none,
                                    timestamp: offset < 0 ? -1 : 1000 + offset, offset: offset)
                            })
                    }))
        case .fetch(let body):
            return fetch(body, request)
        case .describeGroups(let body):
            let snapshot = state.value
            return answer(
                DescribeGroupsResponse(
                    groups: body.groups.map { group in
                        // Members join the group "joined"; other groups only hold offsets.
                        let members = group == "joined" ? snapshot.members : [:]
                        let exists =
                            (group == "joined" && snapshot.generation > 0) || snapshot.committed[group] != nil
                            || snapshot.knownGroups.contains(group)
                        let stateName = !members.isEmpty ? "Stable" : exists ? "Empty" : "Dead"
                        return .init(
                            errorCode: .none, groupId: group, groupState: stateName,
                            protocolType: members.isEmpty ? "" : "consumer",
                            protocolData: members.isEmpty ? "" : snapshot.protocolName,
                            members: members.sorted { $0.key < $1.key }.map { id, member in
                                .init(
                                    memberId: id, clientId: member.clientId, clientHost: "/127.0.0.1",
                                    memberMetadata: member.metadata,
                                    memberAssignment: snapshot.assignments[id] ?? ByteBuffer())
                            }, authorizedOperations: Int32.min)
                    }))
        case .listGroups:
            let snapshot = state.value
            var names = snapshot.knownGroups.union(snapshot.committed.keys)
            if snapshot.generation > 0 { names.insert("joined") }
            return answer(
                ListGroupsResponse(groups: names.sorted().map { .init(groupId: $0, protocolType: "consumer") }))
        case .deleteGroups(let body):
            return answer(
                DeleteGroupsResponse(
                    results: body.groupsNames.map { group in
                        let code = state.withLock { state -> ErrorCode in
                            if group == "joined" && !state.members.isEmpty { return .nonEmptyGroup }
                            guard state.committed[group] != nil || state.knownGroups.contains(group) else {
                                return .groupIdNotFound
                            }
                            state.committed[group] = nil
                            state.knownGroups.remove(group)
                            return .none
                        }
                        note("DeleteGroups \(group) \(code.name)")
                        return .init(groupId: group, errorCode: code)
                    }))
        default:
            return nil
        }
    }

    private func join(_ body: JoinGroupRequest, clientId: String) -> JoinGroupResponse {
        note("JoinGroup member=\(body.memberId) instance=\(body.groupInstanceId ?? "-")")
        let protocolName = body.protocols.first?.name ?? ""
        if let code = popError(.joinGroup) {
            return JoinGroupResponse(
                errorCode: code, generationId: -1, protocolName: "", leader: "", memberId: body.memberId, members: [])
        }
        return state.withLock { state -> JoinGroupResponse in
            var memberId = body.memberId
            if memberId.isEmpty {
                memberId = "member-\(state.nextMember)"
                state.nextMember += 1
                if state.requireMemberId {
                    state.requireMemberId = false
                    return JoinGroupResponse(
                        errorCode: .memberIdRequired, generationId: -1, protocolName: "", leader: "",
                        memberId: memberId,
                        members: [])
                }
            }
            // A static member rejoining under a new id replaces its old id (KIP-345).
            if let instance = body.groupInstanceId {
                for (id, member) in state.members where member.instanceId == instance && id != memberId {
                    state.members[id] = nil
                }
            }
            state.members[memberId] = Member(
                instanceId: body.groupInstanceId, clientId: clientId,
                metadata: body.protocols.first?.metadata ?? ByteBuffer())
            state.generation += 1
            state.protocolName = protocolName
            state.assignments = [:]
            var members = [
                JoinGroupResponse.Member(
                    memberId: memberId, groupInstanceId: body.groupInstanceId,
                    metadata: body.protocols.first?.metadata ?? ByteBuffer())
            ]
            members += state.extraMembers.map {
                .init(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, metadata: $0.metadata)
            }
            return JoinGroupResponse(
                errorCode: .none, generationId: state.generation, protocolName: protocolName, leader: memberId,
                memberId: memberId, members: members)
        }
    }

    private func sync(_ body: SyncGroupRequest) -> SyncGroupResponse {
        let decoded = body.assignments.map { entry -> String in
            let partitions = (try? ConsumerProtocolAssignment.decode(entry.assignment))?.partitions ?? []
            return "\(entry.memberId)=[\(partitions.map(\.description).joined(separator: ","))]"
        }
        note("SyncGroup gen=\(body.generationId) member=\(body.memberId) \(decoded.joined(separator: " "))")
        if let code = popError(.syncGroup) { return SyncGroupResponse(errorCode: code, assignment: ByteBuffer()) }
        return state.withLock { state -> SyncGroupResponse in
            guard state.members[body.memberId] != nil else {
                return SyncGroupResponse(errorCode: .unknownMemberId, assignment: ByteBuffer())
            }
            guard body.generationId == state.generation else {
                return SyncGroupResponse(errorCode: .illegalGeneration, assignment: ByteBuffer())
            }
            for entry in body.assignments { state.assignments[entry.memberId] = entry.assignment }
            return SyncGroupResponse(errorCode: .none, assignment: state.assignments[body.memberId] ?? ByteBuffer())
        }
    }

    private func commit(_ body: OffsetCommitRequest) -> OffsetCommitResponse {
        let offsets = body.topics.flatMap { topic in
            topic.partitions.map { "\(topic.name)-\($0.partitionIndex)=\($0.committedOffset)" }
        }
        note("OffsetCommit gen=\(body.generationId) member=\(body.memberId) \(offsets.joined(separator: " "))")
        let code: ErrorCode =
            popError(.offsetCommit)
            ?? state.withLock { state -> ErrorCode in
                if body.generationId < 0 && body.memberId.isEmpty {
                    return state.members.isEmpty || body.groupId != "joined" ? .none : .unknownMemberId
                }
                guard state.members[body.memberId] != nil else { return .unknownMemberId }
                return body.generationId == state.generation ? .none : .illegalGeneration
            }
        if code == .none {
            state.withLock { state in
                for topic in body.topics {
                    for partition in topic.partitions {
                        state.committed[body.groupId, default: [:]][
                            TopicPartition(topic: topic.name, partition: partition.partitionIndex)] =
                            partition.committedOffset
                    }
                }
            }
        }
        return OffsetCommitResponse(
            topics: body.topics.map { topic in
                .init(
                    name: topic.name,
                    partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: code) })
            })
    }

    private func fetch(_ body: FetchRequest, _ request: DecodedRequest) -> [ScriptedReply] {
        let snapshot = state.value
        var anyRecords = false
        let topics = body.topics.map { topic in
            FetchResponse.TopicResponse(
                topic: topic.topic,
                partitions: topic.partitions.map { partition in
                    let key = TopicPartition(topic: topic.topic, partition: partition.partition)
                    let end = snapshot.logEnd[key] ?? 0
                    var error = ErrorCode.none
                    var records = FetchRecords.null
                    if partition.fetchOffset < snapshot.logStart || partition.fetchOffset > end {
                        error = .offsetOutOfRange
                    } else if partition.fetchOffset < end {
                        var builder = RecordBatchBuilder()
                        let last = min(end, partition.fetchOffset + 20)
                        for offset in partition.fetchOffset..<last {
                            builder.append(
                                timestamp: 1000 + offset, key: nil,
                                value: ByteBuffer(string: "p\(partition.partition)-\(offset)"))
                        }
                        if let batch = try? builder.build(baseOffset: Offset(partition.fetchOffset)) {
                            records = .bytes(batch)
                            anyRecords = true
                        }
                    }
                    return FetchResponse.TopicResponse.PartitionData(
                        partitionIndex: partition.partition, errorCode: error, highWatermark: end,
                        lastStableOffset: end,
                        logStartOffset: snapshot.logStart, abortedTransactions: nil, preferredReadReplica: -1,
                        records: records)
                })
        }
        let response = FetchResponse(errorCode: .none, sessionId: 0, responses: topics)
        // An empty answer waits (a little of) max wait, as a broker's long poll does.
        return anyRecords
            ? [.answer(request, response)] : [.delayed(ms: min(Int64(body.maxWaitMs), 50), .answer(request, response))]
    }
}
