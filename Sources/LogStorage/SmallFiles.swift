import NIOCore

/// Small whole files written atomically through `FileIO`: the Raft hard state and the
/// leader-epoch checkpoint beside a partition's segments (DESIGN.md, "Storage").
extension FileIO {
    /// Replaces `path` with `bytes` so that a crash leaves either the old file or the new
    /// one, never a mix: writes `path + ".tmp"`, fsyncs it, renames it over `path`, then
    /// fsyncs `directory` (which must hold `path`). A leftover `.tmp` is removed by
    /// `PartitionLog.open`.
    public func writeAtomically(_ bytes: ByteBuffer, to path: String, directory: String) throws(FileIOError) {
        let temp = path + ".tmp"
        let file = try open(temp, mode: .createTruncating)
        do throws(FileIOError) {
            try write(file, at: .zero, from: bytes)
            try sync(file)
        } catch {
            close(file)
            throw error
        }
        close(file)
        try rename(temp, to: path)
        try syncDirectory(directory)
    }

    /// The whole content of a small file, at most `countMax` bytes, or nil when it does
    /// not exist.
    public func readWholeFile(_ path: String, countMax: Int) throws(FileIOError) -> ByteBuffer? {
        let file: IOHandle
        do throws(FileIOError) {
            file = try open(path, mode: .existing)
        } catch {
            if error.isNotFound { return nil }
            throw error
        }
        defer { close(file) }
        var buffer = ByteBufferAllocator().buffer(capacity: min(countMax, 4096))
        _ = try read(file, at: .zero, count: countMax, into: &buffer)
        return buffer
    }
}
