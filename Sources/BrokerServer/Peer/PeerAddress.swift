import Raft

/// A host and a TCP port, as given on the command line (`127.0.0.1:19092`, `node-a:19092`, `[::1]:19092`).
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    /// A host name or an IP address (IPv6 without its brackets).
    public var host: String
    /// The TCP port, 0 ..< 65536 (0 only for a listener: any free port).
    public var port: Int

    /// Names an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `host:port` (`[v6]:port` for IPv6); `allowPortZero` for a listener.
    public static func parse(_ text: String, allowPortZero: Bool = false) throws(VotersError) -> PeerAddress {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw .badAddress(text, "expected [ipv6]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .badAddress(text, "expected host:port") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { throw .badAddress(text, "an IPv6 host needs brackets: [::1]:19092") }
        }
        guard !host.isEmpty else { throw .badAddress(text, "the host is empty") }
        guard let port = Int(portText), port >= (allowPortZero ? 0 : 1), port <= 65535 else {
            throw .badAddress(text, "the port must be a number from \(allowPortZero ? 0 : 1) to 65535")
        }
        return PeerAddress(host: String(host), port: port)
    }
}

/// Why a `--voters` list (or a `--cluster-listen` address) is wrong; `description` is one line for the operator.
public enum VotersError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The list names no voter.
    case empty
    /// An entry is not `id@host:port`.
    case badEntry(String)
    /// A node id is not a positive integer.
    case badNodeID(String)
    /// An address is not `host:port`; the second value says why.
    case badAddress(String, String)
    /// Two entries share a node id.
    case duplicateNodeID(NodeID)
    /// Two entries share an address.
    case duplicateAddress(PeerAddress)
    /// This node's id is not among the voters.
    case missingSelf(NodeID)

    /// One line, naming the bad part of the input.
    public var description: String {
        switch self {
        case .empty: return "--voters: the list is empty; expected id@host:port,id@host:port,..."
        case .badEntry(let entry): return "--voters: '\(entry)' is not id@host:port"
        case .badNodeID(let id): return "--voters: node id '\(id)' is not a positive integer"
        case .badAddress(let address, let why): return "--voters: address '\(address)': \(why)"
        case .duplicateNodeID(let id): return "--voters: node id \(id) appears twice"
        case .duplicateAddress(let address): return "--voters: address \(address) appears twice"
        case .missingSelf(let id): return "--voters: this node's id \(id) is not in the list"
        }
    }
}

/// The voter nodes of the cluster and where their cluster ports are (`--voters 1@127.0.0.1:19092,2@...`).
public struct VoterList: Equatable, Sendable {
    /// Node id → cluster address.
    public var addresses: [NodeID: PeerAddress]

    /// The voters, in node id order.
    public var nodeIDs: [NodeID] { addresses.keys.sorted() }

    /// A list from a dictionary (already checked by the caller).
    public init(addresses: [NodeID: PeerAddress]) {
        self.addresses = addresses
    }

    /// Parses `id@host:port` entries separated by commas (spaces around entries are ignored).
    public static func parse(_ text: String) throws(VotersError) -> VoterList {
        let entries = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingSpaces }
        guard entries.contains(where: { !$0.isEmpty }) else { throw .empty }
        var addresses: [NodeID: PeerAddress] = [:]
        var seen: Set<PeerAddress> = []
        for entry in entries {
            guard let at = entry.firstIndex(of: "@") else { throw .badEntry(String(entry)) }
            let idText = entry[..<at]
            guard let raw = UInt64(idText), raw > 0 else { throw .badNodeID(String(idText)) }
            let id = NodeID(raw)
            let address = try PeerAddress.parse(String(entry[entry.index(after: at)...]))
            guard addresses[id] == nil else { throw .duplicateNodeID(id) }
            guard seen.insert(address).inserted else { throw .duplicateAddress(address) }
            addresses[id] = address
        }
        return VoterList(addresses: addresses)
    }

    /// The list as `--voters` takes it.
    public var description: String {
        nodeIDs.map { "\($0)@\(addresses[$0].map(\.description) ?? "")" }.joined(separator: ",")
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
