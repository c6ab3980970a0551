import CCRC32C
import NIOCore
import Records
import XCTest

/// CRC-32C agrees with the published check value on both code paths.
final class CRC32CTests: XCTestCase {
    func testCheckValue() {
        let bytes = Array("123456789".utf8)
        bytes.withUnsafeBytes { raw in
            XCTAssertEqual(CRC32C.checksum(raw), 0xE306_9283)
            XCTAssertEqual(keel_crc32c_table(0, raw.baseAddress, raw.count), 0xE306_9283)
        }
    }

    func testHardwareAndTableAgreeOnEveryLengthAndAlignment() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<4099).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes.withUnsafeBytes { raw in
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4090 - start] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    XCTAssertEqual(CRC32C.checksum(slice), keel_crc32c_table(0, slice.baseAddress, slice.count))
                }
            }
        }
    }
}
