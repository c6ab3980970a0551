/// What Keel advertises in ApiVersions and what it actually implements (PROTOCOL.md §3).
///
/// Advertised ranges are wider than the implemented set on purpose: every client picks the
/// highest version both sides support, so the advertised maximum is the one version all tested
/// clients send, and the low minimums only satisfy librdkafka ≤ 2.11 feature gates. A request
/// at an advertised but unimplemented version is refused: ApiVersions with UNSUPPORTED_VERSION,
/// anything else by closing the connection (what Kafka 4.0 does for Produce v0–2).
public enum ApiVersionsTable {
    /// One advertised entry: the API key and its version range.
    public struct Entry: Hashable, Sendable {
        /// The API.
        public var apiKey: ApiKey
        /// Lowest advertised version.
        public var minVersion: Int16
        /// Highest advertised version.
        public var maxVersion: Int16
        /// The versions Keel decodes and encodes.
        public var implemented: ClosedRange<Int16>
    }

    /// Every advertised API, ordered by key.
    public static let entries: [Entry] = [
        Entry(apiKey: .produce, minVersion: 0, maxVersion: 7, implemented: 7...7),
        Entry(apiKey: .fetch, minVersion: 4, maxVersion: 11, implemented: 11...11),
        Entry(apiKey: .listOffsets, minVersion: 1, maxVersion: 2, implemented: 2...2),
        Entry(apiKey: .metadata, minVersion: 0, maxVersion: 4, implemented: 4...4),
        Entry(apiKey: .offsetCommit, minVersion: 2, maxVersion: 3, implemented: 3...3),
        Entry(apiKey: .offsetFetch, minVersion: 1, maxVersion: 3, implemented: 3...3),
        Entry(apiKey: .findCoordinator, minVersion: 0, maxVersion: 1, implemented: 1...1),
        Entry(apiKey: .joinGroup, minVersion: 0, maxVersion: 5, implemented: 5...5),
        Entry(apiKey: .heartbeat, minVersion: 0, maxVersion: 1, implemented: 1...1),
        Entry(apiKey: .leaveGroup, minVersion: 0, maxVersion: 1, implemented: 1...1),
        Entry(apiKey: .syncGroup, minVersion: 0, maxVersion: 3, implemented: 3...3),
        Entry(apiKey: .describeGroups, minVersion: 0, maxVersion: 3, implemented: 3...3),
        Entry(apiKey: .listGroups, minVersion: 0, maxVersion: 2, implemented: 2...2),
        Entry(apiKey: .apiVersions, minVersion: 0, maxVersion: 3, implemented: 0...3),
        Entry(apiKey: .createTopics, minVersion: 0, maxVersion: 3, implemented: 3...3),
        Entry(apiKey: .deleteTopics, minVersion: 0, maxVersion: 1, implemented: 1...1),
        Entry(apiKey: .initProducerId, minVersion: 0, maxVersion: 1, implemented: 0...1),
        Entry(apiKey: .describeConfigs, minVersion: 0, maxVersion: 1, implemented: 1...1),
        Entry(apiKey: .deleteGroups, minVersion: 0, maxVersion: 1, implemented: 0...1),
    ]

    /// APIs the codec implements but the broker does not advertise yet (none now: move an entry to `entries` once
    /// the broker answers it).
    public static let unadvertised: [Entry] = []

    /// The entry for `apiKey` (every `ApiKey` case is in `entries` or in `unadvertised`).
    public static func entry(_ apiKey: ApiKey) -> Entry {
        let found = entries.first { $0.apiKey == apiKey } ?? unadvertised.first { $0.apiKey == apiKey }
        guard let entry = found else {
            preconditionFailure("\(apiKey) missing from ApiVersionsTable.entries and .unadvertised")
        }
        return entry
    }

    /// Whether Keel's broker advertises `apiKey` in ApiVersions.
    public static func isAdvertised(_ apiKey: ApiKey) -> Bool {
        entries.contains { $0.apiKey == apiKey }
    }

    /// The versions of `apiKey` Keel decodes and encodes.
    public static func implementedVersions(of apiKey: ApiKey) -> ClosedRange<Int16> {
        entry(apiKey).implemented
    }

    /// Whether Keel decodes and encodes `version` of `apiKey`.
    public static func isImplemented(_ apiKey: ApiKey, version: Int16) -> Bool {
        entry(apiKey).implemented.contains(version)
    }

    /// The single version of `apiKey` a Keel client sends (the highest implemented one).
    public static func preferredVersion(of apiKey: ApiKey) -> Int16 {
        entry(apiKey).implemented.upperBound
    }

    /// The table as ApiVersions response entries.
    public static var advertised: [ApiVersionsResponse.ApiVersion] {
        entries.map {
            ApiVersionsResponse.ApiVersion(
                apiKey: $0.apiKey.rawValue, minVersion: $0.minVersion, maxVersion: $0.maxVersion)
        }
    }
}
