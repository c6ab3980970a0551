import KeelClient
import NIOCore
import XCTest

final class PartitionerTests: XCTestCase {
    /// murmur2 matches the values pinned by Kafka's own `UtilsTest.testMurmur2`.
    func testMurmur2MatchesKafkaVectors() {
        let cases: [(String, Int32)] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ]
        for (input, expected) in cases {
            XCTAssertEqual(Partitioner.murmur2(Array(input.utf8)), expected, input)
        }
    }
}
