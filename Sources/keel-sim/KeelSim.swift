// keel-sim: runs many seeds of the Raft simulation (or, with --brokers, of whole brokers) and summarizes them, or
// replays one seed with a trace.
import ArgumentParser
import Simulation

/// The `keel-sim` command.
@main
struct KeelSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel-sim",
        abstract: "Runs the deterministic Raft (or, with --brokers, broker) simulation over many seeds, or replays one."
    )

    @Flag(help: "Simulate whole brokers (controller, partitions, producers, readers) instead of one Raft group.")
    var brokers = false

    @Option(help: "How many seeds to run.")
    var seeds = 100

    @Option(help: "The first seed of the range.")
    var firstSeed: UInt64 = 1

    @Option(help: "Replay exactly this seed (with --trace for every event).")
    var seed: UInt64?

    @Flag(help: "Print every event of the replayed seed.")
    var trace = false

    @Option(help: "Nodes per group: 3 or 5.")
    var nodes = 3

    @Option(help: "Ticks of the faulty phase of each run (with --brokers: milliseconds of world time).")
    var steps: Int?

    @Option(help: "With --brokers: the most node crashes per 10,000 steps of 10 ms (each seed draws up to it).")
    var crashRate: Int?

    @Option(help: "With --brokers: the most network splits per 10,000 steps of 10 ms (each seed draws up to it).")
    var splitRate: Int?

    func validate() throws {
        guard nodes == 3 || nodes == 5 else { throw ValidationError("--nodes must be 3 or 5") }
        guard (steps ?? 0) >= 0, seeds >= 1 else { throw ValidationError("--steps and --seeds must be positive") }
    }

    func run() throws {
        if brokers { return try runBrokers() }
        var options = SimulationOptions(nodeCount: nodes)
        options.faultTicks = steps ?? options.faultTicks
        if let seed {
            let result = Simulation.run(seed: seed, options: options, trace: trace ? { print($0) } : nil)
            report([result], options: options)
            if result.failure != nil { throw ExitCode.failure }
            return
        }
        var results: [SimulationResult] = []
        for seed in firstSeed..<firstSeed + UInt64(seeds) {
            results.append(Simulation.run(seed: seed, options: options))
        }
        report(results, options: options)
        if results.contains(where: { $0.failure != nil }) { throw ExitCode.failure }
    }

    func report(_ results: [SimulationResult], options: SimulationOptions) {
        let failures = results.filter { $0.failure != nil }
        print(
            "runs \(results.count), nodes \(options.nodeCount), ticks \(results.reduce(0) { $0 + $1.ticks }), "
                + "elections \(results.reduce(0) { $0 + $1.elections }), "
                + "commits \(results.reduce(0) { $0 + $1.commits }), "
                + "max ticks to elect after healing \(results.map(\.ticksToElect).max() ?? 0), "
                + "to commit on every node \(results.map(\.ticksToCommitEverywhere).max() ?? 0), "
                + "failures \(failures.count)")
        for failure in failures.prefix(10) {
            print("FAILED seed \(failure.seed): \(failure.failure ?? "")")
            print(
                "  replay: keel-sim --seed \(failure.seed) --nodes \(options.nodeCount) "
                    + "--steps \(options.faultTicks) --trace")
            for line in Simulation.traceTail(seed: failure.seed, options: options, count: 25) { print("  | \(line)") }
        }
    }

    func runBrokers() throws {
        var options = BrokerSimulationOptions(nodeCount: nodes)
        options.faultMs = Int64(steps ?? Int(options.faultMs))
        options.crashPer10kSteps = crashRate ?? options.crashPer10kSteps
        options.partitionPer10kSteps = splitRate ?? options.partitionPer10kSteps
        let replay =
            "keel-sim --brokers --nodes \(nodes) --steps \(options.faultMs) --crash-rate \(options.crashPer10kSteps) "
            + "--split-rate \(options.partitionPer10kSteps)"
        if let seed {
            let result = BrokerSimulation.run(seed: seed, options: options, trace: trace ? { print($0) } : nil)
            reportBrokers([result], options: options, replay: replay)
            print("digest \(String(result.digest, radix: 16)) (the same on every replay of this seed)")
            if result.failure != nil { throw ExitCode.failure }
            return
        }
        var results: [BrokerSimulationResult] = []
        for seed in firstSeed..<firstSeed + UInt64(seeds) {
            let result = BrokerSimulation.run(seed: seed, options: options)
            if let failure = result.failure { print("FAILED seed \(seed): \(failure)") }
            results.append(result)
        }
        reportBrokers(results, options: options, replay: replay)
        if results.contains(where: { $0.failure != nil }) { throw ExitCode.failure }
    }

    func reportBrokers(_ results: [BrokerSimulationResult], options: BrokerSimulationOptions, replay: String) {
        let failures = results.filter { $0.failure != nil }
        func sum(_ value: (BrokerSimulationResult) -> Int) -> Int { results.reduce(0) { $0 + value($1) } }
        let worldMs = results.reduce(Int64(0)) { $0 + $1.worldMs }
        let digest = results.reduce(UInt64(0)) { ($0 &* 31) ^ $1.digest }
        print(
            "broker runs \(results.count), nodes \(options.nodeCount), world ms \(worldMs), "
                + "elections \(sum(\.elections)), crashes \(sum(\.crashes)), graceful stops \(sum(\.stops)), "
                + "splits \(sum(\.partitions)), acknowledged batches \(sum(\.acknowledgedBatches)) "
                + "(records \(sum(\.acknowledgedRecords))), records read \(sum(\.recordsRead)), "
                + "frames \(sum(\.frames)), "
                + "max ms to acknowledge after healing \(results.map(\.msToAcknowledgeAfterHealing).max() ?? 0), "
                + "failures \(failures.count), digest \(String(digest, radix: 16))")
        for failure in failures.prefix(10) {
            print("FAILED seed \(failure.seed): \(failure.failure ?? "")")
            print("  replay: \(replay) --seed \(failure.seed) --trace")
            for line in BrokerSimulation.traceTail(seed: failure.seed, options: options, count: 25) {
                print("  | \(line)")
            }
        }
    }
}
