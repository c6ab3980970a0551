"""lose-unsynced cuts only what was never fsynced: the tracker's sizes, never below the
checkpoint's recovery point, never atomic small files; and the checkpoint is read the
way Keel writes it."""

import os
import random
import struct
import tempfile
import unittest

from keelchaos import durability as d


def batch(base: int, records: int, payload: int = 40, producer: tuple[int, int, int] = (-1, -1, -1)) -> bytes:
    """A record batch v2 as far as the harness reads it: baseOffset, batchLength,
    lastOffsetDelta at byte 23, producer id / epoch / base sequence at 43, the rest filler."""
    body = bytearray(d.BATCH_HEADER_BYTES - d.LOG_OVERHEAD + payload)
    struct.pack_into(">i", body, 23 - d.LOG_OVERHEAD, records - 1)
    struct.pack_into(">qhi", body, 43 - d.LOG_OVERHEAD, *producer)
    return struct.pack(">qi", base, len(body)) + bytes(body)


class Fixture:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.tmp.name, "data")
        self.part = os.path.join(self.data, "chaos-0")
        os.makedirs(self.part)
        self.fsync_log = os.path.join(self.tmp.name, "fsync.log")
        # Segment 0: offsets 0..29 in 3 batches; segment 30: offsets 30..59 in 3 batches.
        self.seg0 = self.write_segment(0, [batch(0, 10), batch(10, 10), batch(20, 10)])
        self.seg1 = self.write_segment(30, [batch(30, 10), batch(40, 10), batch(50, 10)])
        self.batch_size = len(batch(0, 10))
        with open(os.path.join(self.part, "log.checkpoint"), "wb") as f:
            f.write(d.encode_checkpoint(d.Checkpoint(0, 40)))  # segment 1's first batch durable
        with open(os.path.join(self.data, "metadata.json"), "w") as f:
            f.write("{}")

    def write_segment(self, base: int, batches: list[bytes]) -> str:
        path = os.path.join(self.part, f"{base:020d}.log")
        with open(path, "wb") as f:
            f.write(b"".join(batches))
        for suffix in (".index", ".timeindex"):
            with open(path[:-4] + suffix, "wb") as f:
                f.write(b"\0" * 24)
        return path

    def track(self, path: str, size: int, inode: int | None = None) -> None:
        inode = os.stat(path).st_ino if inode is None else inode
        with open(self.fsync_log, "a") as f:
            f.write(f"{size} {inode} {os.path.abspath(path)}\n")

    def cleanup(self):
        self.tmp.cleanup()


class BatchLookup(unittest.TestCase):
    def test_offsets_map_to_their_batch_producer(self):
        with tempfile.TemporaryDirectory() as tmp:
            part = os.path.join(tmp, "chaos-2")
            os.makedirs(part)
            with open(os.path.join(part, f"{0:020d}.log"), "wb") as f:
                f.write(batch(0, 10, producer=(4, 1, 0)) + batch(10, 5, producer=(4, 2, 0)))
            with open(os.path.join(part, f"{15:020d}.log"), "wb") as f:
                f.write(batch(15, 3, producer=(5, 0, 7)))
            lookup = d.batch_lookup([os.path.join(tmp, "missing"), tmp], "chaos")
            self.assertEqual(lookup(2, 3), (4, 1, 0))
            self.assertEqual(lookup(2, 14), (4, 2, 0))
            self.assertEqual(lookup(2, 16), (5, 0, 7))
            self.assertIsNone(lookup(2, 18))
            self.assertIsNone(lookup(1, 0))


class Checkpoint(unittest.TestCase):
    def test_crc32c_check_value(self):
        self.assertEqual(d.crc32c(b"123456789"), 0xE3069283)

    def test_roundtrip_and_corruption(self):
        f = Fixture()
        try:
            self.assertEqual(d.read_checkpoint(f.part), d.Checkpoint(0, 40))
            path = os.path.join(f.part, "log.checkpoint")
            with open(path, "rb") as fh:
                data = bytearray(fh.read())
            data[10] ^= 1
            with open(path, "wb") as fh:
                fh.write(bytes(data))
            self.assertIsNone(d.read_checkpoint(f.part))
        finally:
            f.cleanup()

    def test_floor_is_the_batch_boundary_below_the_recovery_point(self):
        f = Fixture()
        try:
            floors = d.checkpoint_floors(f.part, sorted(os.listdir(f.part)))
            self.assertEqual(floors[os.path.basename(f.seg0)], os.path.getsize(f.seg0))
            self.assertEqual(floors[os.path.basename(f.seg1)], f.batch_size)
        finally:
            f.cleanup()


class Cuts(unittest.TestCase):
    def test_cut_to_the_tracked_size(self):
        f = Fixture()
        try:
            f.track(f.seg1, 2 * f.batch_size)
            f.track(f.seg0, os.path.getsize(f.seg0))
            cuts = d.plan_cuts(f.data, f.fsync_log, random.Random(1), torn_probability=0.0)
            by = {os.path.basename(c.path): c for c in cuts}
            self.assertEqual(by["00000000000000000030.log"].new_size, 2 * f.batch_size)
            self.assertNotIn("00000000000000000000.log", by)
            # Index files were never synced: cut to nothing.
            self.assertEqual(by["00000000000000000000.index"].new_size, 0)
            self.assertTrue(all(c.path.endswith((".log", ".index", ".timeindex")) for c in cuts))
            d.apply_cuts(cuts)
            self.assertEqual(os.path.getsize(f.seg1), 2 * f.batch_size)
            self.assertEqual(os.path.getsize(os.path.join(f.data, "metadata.json")), 2)
        finally:
            f.cleanup()

    def test_never_below_the_checkpoint_even_without_a_tracker_record(self):
        f = Fixture()
        try:
            cuts = d.plan_cuts(f.data, f.fsync_log, random.Random(1), torn_probability=0.0)
            by = {os.path.basename(c.path): c for c in cuts}
            self.assertEqual(by["00000000000000000030.log"].new_size, f.batch_size)
            self.assertNotIn("00000000000000000000.log", by)  # wholly below the recovery point
        finally:
            f.cleanup()

    def test_a_record_for_an_older_file_at_the_same_path_does_not_count(self):
        f = Fixture()
        try:
            f.track(f.seg1, os.path.getsize(f.seg1), inode=1)  # a deleted predecessor
            cuts = d.plan_cuts(f.data, f.fsync_log, random.Random(1), torn_probability=0.0)
            by = {os.path.basename(c.path): c for c in cuts}
            self.assertEqual(by["00000000000000000030.log"].new_size, f.batch_size)
        finally:
            f.cleanup()

    def test_torn_tails_stay_between_durable_and_size_and_repeat_per_seed(self):
        f = Fixture()
        try:
            f.track(f.seg1, f.batch_size)
            sizes = set()
            for seed in range(40):
                cuts = d.plan_cuts(f.data, f.fsync_log, random.Random(seed), torn_probability=1.0)
                again = d.plan_cuts(f.data, f.fsync_log, random.Random(seed), torn_probability=1.0)
                self.assertEqual(cuts, again)
                for c in cuts:
                    self.assertGreaterEqual(c.new_size, c.durable)
                    self.assertLess(c.new_size, c.size)
                    if c.path == f.seg1:
                        sizes.add(c.new_size)
            self.assertGreater(len(sizes), 5)  # mid-batch cuts happen
        finally:
            f.cleanup()

    def test_without_the_tracker_the_checkpoint_is_the_cut_and_says_so(self):
        f = Fixture()
        try:
            cuts = d.plan_cuts(f.data, None, random.Random(1), torn_probability=0.0)
            c = next(c for c in cuts if c.path == f.seg1)
            self.assertEqual(c.new_size, f.batch_size)
            self.assertIn("stronger-than-power-loss", c.why)
        finally:
            f.cleanup()

    def test_fsync_log_last_record_wins_and_torn_lines_are_skipped(self):
        f = Fixture()
        try:
            f.track(f.seg1, 10)
            f.track(f.seg1, 20)
            with open(f.fsync_log, "a") as out:
                out.write("12")  # a killed writer's last line
            self.assertEqual(d.read_fsync_log(f.fsync_log)[os.path.abspath(f.seg1)][0], 20)
            d.compact_fsync_log(f.fsync_log)
            with open(f.fsync_log) as fh:
                self.assertEqual(len(fh.read().splitlines()), 1)
        finally:
            f.cleanup()

    def test_walk_batches_stops_at_a_torn_batch(self):
        f = Fixture()
        try:
            with open(f.seg1, "ab") as out:
                out.write(batch(60, 10)[:30])
            self.assertEqual([b.base_offset for b in d.walk_batches(f.seg1)], [30, 40, 50])
        finally:
            f.cleanup()


if __name__ == "__main__":
    unittest.main()
