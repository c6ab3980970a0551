/// Pairs responses with the requests they answer, on one connection.
///
/// Kafka answers the requests of one connection in the order they were sent, so the
/// matcher is a FIFO of correlation ids: a response must carry the id at the head of the
/// queue. Anything else (an unknown id, an id further down the queue) is a protocol
/// violation: the caller closes the connection and fails every pending request, as
/// Kafka's `NetworkClient` does on a correlation id mismatch. Requests that expect no
/// response (Produce with acks=0) are never enqueued.
///
/// A pure value with no I/O: the NIO handler owns one and does what it returns.
struct ResponseMatcher<Pending> {
    private var ids: [Int32] = []
    private var pendings: [Pending] = []
    private var head = 0

    /// Requests waiting for their response.
    var count: Int { ids.count - head }

    /// Whether `id` is waiting for its response.
    func contains(_ id: Int32) -> Bool { ids[head...].contains(id) }

    /// Records a request just written, expecting its response after all earlier ones.
    mutating func expect(_ id: Int32, _ pending: Pending) {
        ids.append(id)
        pendings.append(pending)
    }

    /// The outcome of one response.
    enum Match {
        /// The response answers the oldest pending request.
        case matched(Pending)
        /// The response's id is not the one expected: close the connection.
        case mismatch(expected: Int32?, actual: Int32)
    }

    /// Takes the oldest pending request if `id` answers it.
    mutating func match(_ id: Int32) -> Match {
        guard head < ids.count else { return .mismatch(expected: nil, actual: id) }
        guard ids[head] == id else { return .mismatch(expected: ids[head], actual: id) }
        let pending = pendings[head]
        head += 1
        compact()
        return .matched(pending)
    }

    /// Removes and returns every pending request (the connection is going away).
    mutating func removeAll() -> [Pending] {
        let rest = Array(pendings[head...])
        ids.removeAll()
        pendings.removeAll()
        head = 0
        return rest
    }

    /// Drops the consumed prefix once it is large, so the arrays stay as long as the window.
    private mutating func compact() {
        if head == ids.count {
            ids.removeAll(keepingCapacity: true)
            pendings.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 {
            ids.removeFirst(head)
            pendings.removeFirst(head)
            head = 0
        }
    }
}
