// Deterministic, JSON-like record values for benchmarks: about 1 KiB each, with the
// repetition of real event data (field names, a few categories, numbers, timestamps),
// so LZ4 sees a realistic ratio (about 3–4×) rather than random or constant bytes.

/// A small deterministic generator (SplitMix64), so every run produces the same data.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum BenchData {
    static let events = ["page_view", "add_to_cart", "checkout", "search", "login", "logout", "refund", "review"]
    static let countries = ["DE", "FR", "US", "BR", "IN", "JP", "NG", "SE", "CA", "AU"]
    static let agents = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    ]

    /// The value of record `index`: a JSON object of `size` bytes (padded with a note field).
    static func record(_ index: Int, size: Int = 1024, rng: inout SplitMix64) -> [UInt8] {
        let event = events[Int(rng.next() % UInt64(events.count))]
        let country = countries[Int(rng.next() % UInt64(countries.count))]
        let agent = agents[Int(rng.next() % UInt64(agents.count))]
        let user = rng.next() % 100_000
        let amount = Double(rng.next() % 100_000) / 100
        let session = String(rng.next(), radix: 16)
        var text =
            "{\"id\":\(index),\"event\":\"\(event)\",\"user\":\"user-\(user)\",\"session\":\"\(session)\","
            + "\"country\":\"\(country)\",\"amount\":\(amount),\"currency\":\"EUR\",\"ts\":\(1_764_000_000_000 + index),"
            + "\"path\":\"/products/\(rng.next() % 5000)/details\",\"agent\":\"\(agent)\",\"items\":["
        let items = Int(rng.next() % 4) + 1
        for item in 0..<items {
            text += (item > 0 ? "," : "") + "{\"sku\":\"SKU-\(rng.next() % 20_000)\",\"qty\":\(rng.next() % 5 + 1)}"
        }
        text += "],\"note\":\""
        var bytes = Array(text.utf8)
        let words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do"]
        while bytes.count < size - 2 {
            bytes.append(contentsOf: words[Int(rng.next() % UInt64(words.count))].utf8)
            bytes.append(UInt8(ascii: " "))
        }
        bytes.removeLast(bytes.count - (size - 2))
        bytes.append(contentsOf: "\"}".utf8)
        return bytes
    }
}
