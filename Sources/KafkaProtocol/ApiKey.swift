/// The Kafka APIs Keel's codec knows (request header `api_key`); `ApiVersionsTable` says which are advertised.
public enum ApiKey: Int16, CaseIterable, Sendable, CustomStringConvertible {
    /// Produce (0).
    case produce = 0
    /// Fetch (1).
    case fetch = 1
    /// ListOffsets (2).
    case listOffsets = 2
    /// Metadata (3).
    case metadata = 3
    /// OffsetCommit (8).
    case offsetCommit = 8
    /// OffsetFetch (9).
    case offsetFetch = 9
    /// FindCoordinator (10).
    case findCoordinator = 10
    /// JoinGroup (11).
    case joinGroup = 11
    /// Heartbeat (12).
    case heartbeat = 12
    /// LeaveGroup (13).
    case leaveGroup = 13
    /// SyncGroup (14).
    case syncGroup = 14
    /// DescribeGroups (15).
    case describeGroups = 15
    /// ListGroups (16).
    case listGroups = 16
    /// ApiVersions (18).
    case apiVersions = 18
    /// CreateTopics (19).
    case createTopics = 19
    /// DeleteTopics (20).
    case deleteTopics = 20
    /// InitProducerId (22).
    case initProducerId = 22
    /// DescribeConfigs (32).
    case describeConfigs = 32
    /// DeleteGroups (42).
    case deleteGroups = 42

    /// The Kafka name of the API, as in its JSON schema.
    public var description: String {
        switch self {
        case .produce: "Produce"
        case .fetch: "Fetch"
        case .listOffsets: "ListOffsets"
        case .metadata: "Metadata"
        case .offsetCommit: "OffsetCommit"
        case .offsetFetch: "OffsetFetch"
        case .findCoordinator: "FindCoordinator"
        case .joinGroup: "JoinGroup"
        case .heartbeat: "Heartbeat"
        case .leaveGroup: "LeaveGroup"
        case .syncGroup: "SyncGroup"
        case .describeGroups: "DescribeGroups"
        case .listGroups: "ListGroups"
        case .apiVersions: "ApiVersions"
        case .createTopics: "CreateTopics"
        case .deleteTopics: "DeleteTopics"
        case .initProducerId: "InitProducerId"
        case .describeConfigs: "DescribeConfigs"
        case .deleteGroups: "DeleteGroups"
        }
    }

    /// The first flexible version of this API in Kafka 3.9 (PROTOCOL.md §3): from it on, request
    /// header v2 and compact encodings are used.
    public var firstFlexibleVersion: Int16 {
        switch self {
        case .produce: 9
        case .fetch: 12
        case .listOffsets: 6
        case .metadata: 9
        case .offsetCommit: 8
        case .offsetFetch: 6
        case .findCoordinator: 3
        case .joinGroup: 6
        case .heartbeat: 4
        case .leaveGroup: 4
        case .syncGroup: 4
        case .describeGroups: 5
        case .listGroups: 3
        case .apiVersions: 3
        case .createTopics: 5
        case .deleteTopics: 4
        case .initProducerId: 2
        case .describeConfigs: 4
        case .deleteGroups: 2
        }
    }

    /// Whether `version` of this API uses the flexible encodings.
    public func isFlexible(_ version: Int16) -> Bool { version >= firstFlexibleVersion }

    /// The request header version for `version`: 2 if flexible, else 1.
    public func requestHeaderVersion(_ version: Int16) -> Int16 { isFlexible(version) ? 2 : 1 }

    /// The response header version for `version`: 1 if flexible, else 0 — except ApiVersions,
    /// whose responses always use header v0 (KIP-511) so that any client can read them.
    public func responseHeaderVersion(_ version: Int16) -> Int16 {
        if self == .apiVersions { return 0 }
        return isFlexible(version) ? 1 : 0
    }
}
