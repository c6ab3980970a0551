// swift-tools-version:6.1
// Keel: a distributed replicated log that speaks the Kafka protocol.
// The module map (and which module may import which) is in ../shared/DESIGN.md;
// `swift build --explicit-target-dependency-import-check error` enforces it.
import PackageDescription

let package = Package(
    name: "Keel",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "keel", targets: ["keel"]),
        .library(name: "Records", targets: ["Records"]),
        .library(name: "LogStorage", targets: ["LogStorage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // Layer 0: C libraries.
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        .target(name: "CCRC32C"),

        // Layer 1: consensus as a deterministic state machine (stdlib only).
        .target(name: "Raft"),

        // Layer 1: the record batch v2 format.
        .target(
            name: "Records",
            dependencies: [
                "CLZ4",
                "CCRC32C",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Layer 2: segmented partition logs.
        .target(
            name: "LogStorage",
            dependencies: [
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Layer 2: the Kafka wire codec.
        .target(
            name: "KafkaProtocol",
            dependencies: [
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Layer 3: one Raft group per partition, driven over LogStorage.
        .target(
            name: "Replication",
            dependencies: [
                "Raft",
                "LogStorage",
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Layer 2: the classic consumer-group coordinator as a pure state machine.
        .target(
            name: "ConsumerGroups",
            dependencies: [
                "KafkaProtocol",
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Layer 4: the node's logic with no sockets and no wall clock.
        .target(
            name: "Broker",
            dependencies: [
                "Records",
                "LogStorage",
                "KafkaProtocol",
                "Raft",
                "Replication",
                "ConsumerGroups",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Layer 5: the edge: NIO listeners, POSIX files, the real clock, signals.
        .target(
            name: "BrokerServer",
            dependencies: [
                "Broker",
                "Records",
                "LogStorage",
                "KafkaProtocol",
                "Raft",
                "Replication",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),

        // Layer 5: the native async Swift client.
        .target(
            name: "KeelClient",
            dependencies: [
                "KafkaProtocol",
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        // The `keel` command.
        .executableTarget(
            name: "keel",
            dependencies: [
                "Records",
                "LogStorage",
                "Broker",
                "BrokerServer",
                "KeelClient",
                "Raft",
                "ConsumerGroups",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // A child process for the storage crash test: appends under the fsync policy
        // and reports every durable offset on stdout until it is killed.
        .executableTarget(
            name: "keel-crash-writer",
            dependencies: [
                "Records",
                "LogStorage",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        .testTarget(
            name: "RecordsTests",
            dependencies: [
                "Records",
                "CCRC32C",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")]
        ),
        // Test support: the seeded, deterministic simulation of layers 1–4.
        .target(
            name: "Simulation",
            dependencies: [
                "Raft",
                "LogStorage",
                "Records",
                "Replication",
                "KafkaProtocol",
                "Broker",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ReplicationTests",
            dependencies: [
                "Replication",
                "Raft",
                "LogStorage",
                "Records",
                "Simulation",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // `keel-sim`: runs any number of simulation seeds, or replays one.
        .executableTarget(
            name: "keel-sim",
            dependencies: [
                "Simulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "RaftTests", dependencies: ["Raft", "Simulation"]),
        .testTarget(
            name: "KafkaProtocolTests",
            dependencies: [
                "KafkaProtocol",
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "BrokerTests",
            dependencies: [
                "Broker",
                "Simulation",
                "BrokerServer",
                "KafkaProtocol",
                "Records",
                "LogStorage",
                "Raft",
                "Replication",
                "keel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The Kafka client scripts the tests run with python3, read from the source tree.
            exclude: ["interop"]
        ),
        .testTarget(
            name: "KeelClientTests",
            dependencies: [
                "KeelClient",
                "KafkaProtocol",
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            // The mock cluster launcher is run by path (#filePath), not bundled.
            exclude: [
                "Support/mock_cluster.py", "Support/librdkafka_partitions.py", "Support/kafka_python_check.py",
                "Support/group_member.py",
            ]
        ),
        .testTarget(
            name: "KeelCommandTests",
            dependencies: [
                "keel",
                "LogStorage",
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ConsumerGroupsTests",
            dependencies: [
                "ConsumerGroups",
                "KafkaProtocol",
                "Records",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LogStorageTests",
            dependencies: [
                "Records",
                "LogStorage",
                "keel-crash-writer",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
