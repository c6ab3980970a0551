import Records

/// Who to tell when an offset becomes durable: the shell registers a token per append
/// (a promise, a produce request, an AppendEntries answer) and, after each flush, takes
/// back exactly the tokens that the new `durableEndOffset` satisfies. Many appends, one
/// fsync, then every waiter it covers is released.
///
/// Registrations normally arrive in offset order, which makes `register` O(1);
/// out-of-order ones are inserted by binary search.
public struct DurabilityWaiters<Token> {
    var waiting: [(offset: Offset, token: Token)] = []
    var head = 0

    /// An empty set of waiters.
    public init() {}

    /// How many tokens wait.
    public var count: Int { waiting.count - head }

    /// Waits until every offset up to and including `offset` is durable, i.e. until
    /// `durableEndOffset > offset` (pass an append's `lastOffset`).
    public mutating func register(_ token: Token, throughOffset offset: Offset) {
        if head == waiting.count || waiting[waiting.count - 1].offset <= offset {
            waiting.append((offset, token))
            return
        }
        var low = head
        var high = waiting.count
        while low < high {
            let mid = (low + high) / 2
            if waiting[mid].offset <= offset { low = mid + 1 } else { high = mid }
        }
        waiting.insert((offset, token), at: low)
    }

    /// Removes and returns, in offset order, the tokens whose offset is below
    /// `durableEndOffset`.
    public mutating func release(durableEndOffset: Offset) -> [Token] {
        var released: [Token] = []
        while head < waiting.count, waiting[head].offset < durableEndOffset {
            released.append(waiting[head].token)
            head += 1
        }
        compact()
        return released
    }

    /// Removes and returns the tokens waiting for `offset` or later: after a truncation
    /// from `offset` they can never be satisfied (their appends are gone).
    public mutating func cancel(fromOffset offset: Offset) -> [Token] {
        var low = head
        var high = waiting.count
        while low < high {
            let mid = (low + high) / 2
            if waiting[mid].offset < offset { low = mid + 1 } else { high = mid }
        }
        let cancelled = waiting[low...].map(\.token)
        waiting.removeSubrange(low...)
        compact()
        return cancelled
    }

    mutating func compact() {
        if head == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64, head * 2 > waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
    }
}

extension DurabilityWaiters: Sendable where Token: Sendable {}
