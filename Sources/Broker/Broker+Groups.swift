import ConsumerGroups
import KafkaProtocol
import NIOCore
import Raft
import Replication

// Consumer groups: FindCoordinator names the leader of the group's `__consumer_offsets` partition; the group
// requests run on that partition's replica, whose `GroupHost` carries out the coordinator's effects.

extension Broker {
    /// The partition of `__consumer_offsets` that coordinates `groupId`.
    func offsetsPartition(for groupId: String) -> Int32 {
        let count = view.withLock { $0.state.topic(OffsetsTopic.name)?.partitionCount } ?? OffsetsTopic.partitionCount
        return GroupCoordinator.partition(for: groupId, partitionCount: max(1, count))
    }

    /// Asks the controller for `__consumer_offsets` (once at a time); clients retry meanwhile.
    func createOffsetsTopic(on loop: any EventLoop) {
        let nodes = view.withLock { $0.state.nodeIds.count }
        let factor = Int16(max(1, min(Int(OffsetsTopic.replicationFactorMax), nodes)))
        let command = ControllerCommand.createTopic(
            name: OffsetsTopic.name, partitions: OffsetsTopic.partitionCount, replicationFactor: factor,
            configs: OffsetsTopic.configs)
        guard offsetsTopicCreation.withLock({ busy in
            defer { busy = true }
            return !busy
        }) else { return }
        submitToController(command, timeoutMs: 10_000, on: loop).whenComplete { result in
            self.offsetsTopicCreation.withLock { $0 = false }
            if case .success(.some(.success)) = result {
                self.logger.info("created \(OffsetsTopic.name) with \(OffsetsTopic.partitionCount) partitions")
            }
        }
    }

    func findCoordinator(_ request: FindCoordinatorRequest, on loop: any EventLoop)
        -> EventLoopFuture<FindCoordinatorResponse>
    {
        func refuse(_ code: ErrorCode, _ message: String) -> EventLoopFuture<FindCoordinatorResponse> {
            loop.makeSucceededFuture(
                FindCoordinatorResponse(errorCode: code, errorMessage: message, nodeId: -1, host: "", port: -1))
        }
        guard request.keyType == 0 else { return refuse(.coordinatorNotAvailable, "transactions are not supported") }
        guard !request.key.isEmpty else { return refuse(.invalidGroupId, "the group id is empty") }
        let state = view.withLock { $0.state }
        guard state.topic(OffsetsTopic.name) != nil else {
            createOffsetsTopic(on: loop)
            return refuse(.coordinatorNotAvailable, "\(OffsetsTopic.name) is being created")
        }
        let group = GroupID(topic: OffsetsTopic.name, partition: offsetsPartition(for: request.key))
        guard let leader = knownLeader(of: group),
            let node = state.nodes[Int32(truncatingIfNeeded: leader.leader.value)]
        else {
            return refuse(.coordinatorNotAvailable, "\(group) has no leader yet")
        }
        return loop.makeSucceededFuture(
            FindCoordinatorResponse(errorMessage: nil, nodeId: node.id, host: node.clientHost, port: node.clientPort))
    }

    /// Runs a request of one group on the coordinator of its partition, if this node is it.
    func groupRequest(
        _ request: KafkaRequest, groupId: String, on loop: any EventLoop,
        _ event: @escaping @Sendable (inout GroupCoordinator, RequestToken, Int64) -> GroupEffects
    ) -> EventLoopFuture<GroupResponse> {
        let refusal = GroupResponse.refusal(for: request, code: .notCoordinator)
            ?? .heartbeat(HeartbeatResponse(errorCode: .notCoordinator))
        guard let handle = partition(OffsetsTopic.name, offsetsPartition(for: groupId)) else {
            return loop.makeSucceededFuture(refusal)
        }
        return handle.flatRun(on: loop) { replica -> EventLoopFuture<GroupResponse> in
            guard let host = replica.groups else { return replica.loop.makeSucceededFuture(refusal) }
            return host.handle(replica, notCoordinator: refusal, event)
        }
    }

    /// DescribeGroups: each group on its own coordinator (this node answers NOT_COORDINATOR for the others).
    func describeGroups(_ request: DescribeGroupsRequest, on loop: any EventLoop)
        -> EventLoopFuture<DescribeGroupsResponse>
    {
        let answers = request.groups.map { groupId -> EventLoopFuture<DescribeGroupsResponse.Group> in
            let single = DescribeGroupsRequest(
                groups: [groupId], includeAuthorizedOperations: request.includeAuthorizedOperations)
            let notHere = DescribeGroupsResponse.Group(
                errorCode: .notCoordinator, groupId: groupId, groupState: "", protocolType: "", protocolData: "",
                members: [], authorizedOperations: Int32.min)
            return groupRequest(.describeGroups(single), groupId: groupId, on: loop) { coordinator, token, _ in
                coordinator.describe(token, single)
            }.map { response in
                if case .describe(let described) = response, let group = described.groups.first { return group }
                return notHere
            }
        }
        return EventLoopFuture.whenAllSucceed(answers, on: loop).map { DescribeGroupsResponse(groups: $0) }
    }

    /// DeleteGroups: each group on its own coordinator (NOT_COORDINATOR for those this node does not coordinate);
    /// only Empty groups are deleted, their offsets and metadata tombstoned.
    func deleteGroups(_ request: DeleteGroupsRequest, on loop: any EventLoop) -> EventLoopFuture<DeleteGroupsResponse> {
        let answers = request.groupsNames.map { groupId -> EventLoopFuture<DeleteGroupsResponse.GroupResult> in
            let refusal = GroupResponse.deleteGroups([DeletedGroup(groupId: groupId, errorCode: .notCoordinator)])
            guard let handle = partition(OffsetsTopic.name, offsetsPartition(for: groupId)) else {
                return loop.makeSucceededFuture(.init(groupId: groupId, errorCode: .notCoordinator))
            }
            return handle.flatRun(on: loop) { replica -> EventLoopFuture<GroupResponse> in
                guard let host = replica.groups else { return replica.loop.makeSucceededFuture(refusal) }
                return host.handle(replica, notCoordinator: refusal) { coordinator, token, _ in
                    coordinator.deleteGroups(token, [groupId])
                }
            }.map { response in
                if case .deleteGroups(let outcomes) = response, let outcome = outcomes.first {
                    return .init(groupId: groupId, errorCode: outcome.errorCode)
                }
                return .init(groupId: groupId, errorCode: .notCoordinator)
            }
        }
        return EventLoopFuture.whenAllSucceed(answers, on: loop).map { DeleteGroupsResponse(results: $0) }
    }

    /// ListGroups: the groups of every coordinator this node runs (clients ask every node).
    func listGroups(_ request: ListGroupsRequest, on loop: any EventLoop) -> EventLoopFuture<ListGroupsResponse> {
        let handles = partitions.withLock { $0.values.filter { $0.group.topic == OffsetsTopic.name } }
        let lists = handles.map { handle in
            handle.flatRun(on: loop) { replica -> EventLoopFuture<GroupResponse?> in
                guard let host = replica.groups, host.isServing else {
                    return replica.loop.makeSucceededFuture(nil)
                }
                return host.handle(replica, notCoordinator: .list(ListGroupsResponse(errorCode: .none, groups: []))) {
                    coordinator, token, _ in coordinator.list(token, request)
                }.map { Optional($0) }
            }
        }
        return EventLoopFuture.whenAllSucceed(lists, on: loop).map { responses in
            var groups: [ListGroupsResponse.Group] = []
            for case .list(let list)? in responses { groups += list.groups }
            return ListGroupsResponse(errorCode: .none, groups: groups.sorted { $0.groupId < $1.groupId })
        }
    }

    /// Answers a group API request.
    func groups(
        _ request: KafkaRequest, clientId: String, clientHost: String, version: Int16, correlationId: Int32,
        on loop: any EventLoop
    ) -> EventLoopFuture<BrokerResponse> {
        @Sendable func frame<M: KafkaMessage>(_ body: M) -> BrokerResponse {
            .frame(KafkaResponseEncoder.encodeFrame(body, version: version, correlationId: correlationId))
        }
        @Sendable func encode(_ response: GroupResponse) -> BrokerResponse {
            switch response {
            case .join(let body): frame(body)
            case .sync(let body): frame(body)
            case .heartbeat(let body): frame(body)
            case .leave(let body): frame(body)
            case .offsetCommit(let body): frame(body)
            case .offsetFetch(let body): frame(body)
            case .describe(let body): frame(body)
            case .list(let body): frame(body)
            case .deleteGroups(let outcomes):
                frame(DeleteGroupsResponse(results: outcomes.map { .init(groupId: $0.groupId, errorCode: $0.errorCode) }))
            }
        }
        switch request {
        case .findCoordinator(let body):
            return findCoordinator(body, on: loop).map { frame($0) }
        case .joinGroup(let body):
            return groupRequest(request, groupId: body.groupId, on: loop) { coordinator, token, now in
                coordinator.join(token, body, clientId: clientId, clientHost: clientHost, now: now)
            }.map(encode)
        case .syncGroup(let body):
            return groupRequest(request, groupId: body.groupId, on: loop) { coordinator, token, now in
                coordinator.sync(token, body, now: now)
            }.map(encode)
        case .heartbeat(let body):
            return groupRequest(request, groupId: body.groupId, on: loop) { coordinator, token, now in
                coordinator.heartbeat(token, body, now: now)
            }.map(encode)
        case .leaveGroup(let body):
            return groupRequest(request, groupId: body.groupId, on: loop) { coordinator, token, now in
                coordinator.leave(token, body, now: now)
            }.map(encode)
        case .offsetCommit(let body):
            return groupRequest(request, groupId: body.groupId, on: loop) { coordinator, token, now in
                coordinator.offsetCommit(token, body, now: now)
            }.map(encode)
        case .offsetFetch(let body):
            return groupRequest(request, groupId: body.groupId, on: loop) { coordinator, token, _ in
                coordinator.offsetFetch(token, body)
            }.map(encode)
        case .describeGroups(let body):
            return describeGroups(body, on: loop).map { frame($0) }
        case .listGroups(let body):
            return listGroups(body, on: loop).map { frame($0) }
        case .deleteGroups(let body):
            return deleteGroups(body, on: loop).map { frame($0) }
        default:
            return loop.makeSucceededFuture(.close(reason: "not a group request"))
        }
    }
}
