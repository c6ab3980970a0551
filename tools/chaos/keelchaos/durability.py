""""Lose unsynced writes": after a SIGKILL, cut a node's files back to what was fsynced.

SIGKILL alone keeps the page cache, so a killed process loses nothing it wrote. A power
loss keeps only what was fsynced. To model it, the harness must know, per file, how
many bytes were certainly durable. Two sources, and what each can know:

1. `log.checkpoint` in every partition directory (Sources/LogStorage/PartitionLog.swift,
   26 bytes, big-endian: "KLCP", version u16 = 1, logStartOffset i64, recoveryPoint i64,
   CRC-32C of bytes 0..<22). Everything below the recovery point was fsynced. But Keel
   rewrites the checkpoint only after a roll, retention, truncation, open and close, not
   after every flush: the recovery point lags the fsyncs, often by a whole segment. So
   it is a floor, never the answer: cutting to it would remove fsynced, acknowledged
   batches, a fault stronger than any power loss (and one Raft is not required to
   survive: a voter that forgets an entry it acknowledged can help elect a leader
   without it).

2. The fsync tracker (fsynctrack.c, LD_PRELOAD into the node): one line per successful
   fsync/fdatasync with the file's size just before the sync. The last line for a path
   whose inode is still the file's gives the durable size exactly (a file created since
   its last record has never been synced: 0).

The cut for a segment `.log` is max(tracked size, checkpoint floor); optionally a random
part of the unsynced tail survives ("torn": the kernel may have written back some pages,
possibly cutting a batch in half). Index files (`.index`, `.timeindex`) are never fsynced
by Keel (derived data, checked on open), so their floor is what the tracker saw (0).
Atomic small files (log.checkpoint, raft.state, metadata.json, ...) are fsynced before
their rename and never cut. Without the tracker only the checkpoint floor is known and
the result is labelled `stronger-than-power-loss`.
"""

from __future__ import annotations

import bisect
import os
import random
import re
import struct
from dataclasses import dataclass

SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex)$")
CHECKPOINT_NAME = "log.checkpoint"
BATCH_HEADER_BYTES = 61  # record batch v2 header
LOG_OVERHEAD = 12  # baseOffset (8) + batchLength (4)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


@dataclass(frozen=True)
class Checkpoint:
    log_start_offset: int
    recovery_point: int


def encode_checkpoint(cp: Checkpoint) -> bytes:
    """The same 26 bytes Keel writes (for tests)."""
    body = b"KLCP" + struct.pack(">Hqq", 1, cp.log_start_offset, cp.recovery_point)
    return body + struct.pack(">I", crc32c(body))


def read_checkpoint(partition_dir: str) -> Checkpoint | None:
    """The partition's checkpoint, or None when missing or invalid (then Keel scans all)."""
    try:
        with open(os.path.join(partition_dir, CHECKPOINT_NAME), "rb") as f:
            data = f.read(27)
    except FileNotFoundError:
        return None
    if len(data) != 26 or data[:4] != b"KLCP":
        return None
    version, log_start, recovery = struct.unpack(">Hqq", data[4:22])
    (crc,) = struct.unpack(">I", data[22:26])
    if version != 1 or crc32c(data[:22]) != crc or log_start < 0 or recovery < 0:
        return None
    return Checkpoint(log_start, recovery)


@dataclass(frozen=True)
class Batch:
    position: int
    base_offset: int
    last_offset: int
    size: int
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    is_control: bool = False


def walk_batches(path: str) -> list[Batch]:
    """The whole batches of a segment file, by their length fields (no CRC check),
    stopping at the first torn one. Record batch v2 header, big-endian: baseOffset i64,
    batchLength i32, partitionLeaderEpoch i32, magic i8, crc u32, attributes i16 (bit 5:
    control), lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64, producerId i64,
    producerEpoch i16, baseSequence i32, recordCount i32."""
    batches = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + BATCH_HEADER_BYTES <= len(data):
        base, length = struct.unpack(">qi", data[pos : pos + LOG_OVERHEAD])
        (attributes, delta) = struct.unpack(">hi", data[pos + 21 : pos + 27])
        producer_id, epoch, sequence = struct.unpack(">qhi", data[pos + 43 : pos + 57])
        size = LOG_OVERHEAD + length
        if length < BATCH_HEADER_BYTES - LOG_OVERHEAD or pos + size > len(data):
            break
        batches.append(Batch(pos, base, base + delta, size, producer_id, epoch, sequence, bool(attributes & 0x20)))
        pos += size
    return batches


def partition_batches(data_dir: str, topic: str, partition: int) -> list[Batch]:
    """Every batch of a partition replica in a node's data directory, in offset order."""
    d = os.path.join(data_dir, f"{topic}-{partition}")
    try:
        names = sorted(n for n in os.listdir(d) if (m := SEGMENT_FILE.match(n)) and m.group(2) == "log")
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        out += walk_batches(os.path.join(d, n))
    return out


def read_fsync_log(path: str) -> dict[str, tuple[int, int]]:
    """path -> (size before the last sync, inode), the last record winning."""
    synced: dict[str, tuple[int, int]] = {}
    try:
        with open(path, "r", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
                    continue  # a torn last line of a killed writer
                synced[parts[2]] = (int(parts[0]), int(parts[1]))
    except FileNotFoundError:
        pass
    return synced


def compact_fsync_log(path: str) -> None:
    """Rewrites the tracker log with one line per path (the node must be stopped)."""
    synced = read_fsync_log(path)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for p, (size, inode) in sorted(synced.items()):
            f.write(f"{size} {inode} {p}\n")
    os.replace(tmp, path)


@dataclass(frozen=True)
class Cut:
    path: str
    size: int
    new_size: int
    durable: int
    why: str

    def to_json(self) -> dict:
        return {"path": self.path, "size": self.size, "new_size": self.new_size, "durable": self.durable, "why": self.why}


def checkpoint_floors(partition_dir: str, names: list[str]) -> dict[str, int]:
    """Per `.log` segment: bytes certainly fsynced according to `log.checkpoint`."""
    cp = read_checkpoint(partition_dir)
    bases = sorted(int(m.group(1)) for n in names if (m := SEGMENT_FILE.match(n)) and m.group(2) == "log")
    floors = {}
    for i, base in enumerate(bases):
        name = f"{base:020d}.log"
        path = os.path.join(partition_dir, name)
        next_base = bases[i + 1] if i + 1 < len(bases) else None
        if cp is None:
            floors[name] = 0
        elif next_base is not None and next_base <= cp.recovery_point:
            floors[name] = os.path.getsize(path)  # wholly below the recovery point
        elif base >= cp.recovery_point:
            floors[name] = 0
        else:
            floor = 0
            for b in walk_batches(path):
                if b.last_offset >= cp.recovery_point:
                    break
                floor = b.position + b.size
            floors[name] = floor
    return floors


def plan_cuts(
    data_dir: str,
    fsync_log: str | None,
    rng: random.Random,
    torn_probability: float = 0.3,
    index_files: bool = True,
) -> list[Cut]:
    """What to cut in `data_dir` (the node is dead). Deterministic for a given rng state
    and set of files; the draws happen in sorted path order."""
    synced = read_fsync_log(fsync_log) if fsync_log else None
    cuts = []
    for dirpath, _, filenames in sorted(os.walk(data_dir)):
        names = sorted(filenames)
        if not any(SEGMENT_FILE.match(n) for n in names):
            continue
        floors = checkpoint_floors(dirpath, names)
        for name in names:
            m = SEGMENT_FILE.match(name)
            if not m or (m.group(2) != "log" and not index_files):
                continue
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            floor = floors.get(name, 0)
            if synced is None:
                durable, why = floor, "checkpoint recovery point (stronger-than-power-loss)"
            else:
                size, inode = synced.get(os.path.abspath(path), (0, -1))
                tracked = size if inode == st.st_ino else 0
                durable = max(tracked, floor)
                why = "fsync tracker" if tracked >= floor else "checkpoint recovery point"
            durable = min(durable, st.st_size)
            draw = rng.random()
            keep = rng.randint(0, max(0, st.st_size - durable))
            new_size = durable + keep if draw < torn_probability else durable
            if new_size < st.st_size:
                cuts.append(Cut(path, st.st_size, new_size, durable, why + (" + torn tail kept" if new_size > durable else "")))
    return cuts


def apply_cuts(cuts: list[Cut]) -> None:
    for c in cuts:
        os.truncate(c.path, c.new_size)


def batch_lookup(data_dirs: list[str], topic: str):
    """(partition, offset) -> (producer id, epoch, base sequence) of the batch holding
    that offset in the first node's log that has it (read the logs of stopped nodes)."""
    cache: dict[tuple[int, int], tuple[list[int], list[Batch]]] = {}

    def lookup(partition: int, offset: int):
        for i, d in enumerate(data_dirs):
            if (i, partition) not in cache:
                batches = partition_batches(d, topic, partition)
                cache[(i, partition)] = ([b.base_offset for b in batches], batches)
            bases, batches = cache[(i, partition)]
            j = bisect.bisect_right(bases, offset) - 1
            if j >= 0 and batches[j].base_offset <= offset <= batches[j].last_offset:
                b = batches[j]
                return (b.producer_id, b.producer_epoch, b.base_sequence)
        return None

    return lookup
