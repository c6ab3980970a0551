"""The LD_PRELOAD fsync tracker records the size each file had before every successful
sync, and can make syncs slow."""

import os
import subprocess
import unittest


class FsyncTracker(unittest.TestCase):
    """The LD_PRELOAD shim records the size a file had before each successful sync."""

    def test_records_size_before_sync(self):
        import tempfile

        from keelchaos import durability, nodes

        with tempfile.TemporaryDirectory() as tmp:
            shim = nodes.build_shim(tmp)
            if shim is None:
                self.skipTest("no C compiler")
            log = os.path.join(tmp, "fsync.log")
            target = os.path.join(tmp, "seg.log")
            program = (
                "import os\n"
                f"fd = os.open({target!r}, os.O_WRONLY | os.O_CREAT)\n"
                "os.write(fd, b'a' * 100); os.fdatasync(fd)\n"
                "os.write(fd, b'b' * 50); os.fsync(fd)\n"
                "os.write(fd, b'c' * 7)\n"
            )
            env = dict(os.environ, LD_PRELOAD=shim, KEELCHAOS_FSYNC_LOG=log)
            subprocess.run(["python3", "-c", program], env=env, check=True, timeout=30)
            synced = durability.read_fsync_log(log)
            self.assertEqual(synced[target][0], 150)
            self.assertEqual(synced[target][1], os.stat(target).st_ino)
            self.assertEqual(os.path.getsize(target), 157)

    def test_delay_makes_syncs_slow(self):
        import tempfile

        from keelchaos import nodes

        with tempfile.TemporaryDirectory() as tmp:
            shim = nodes.build_shim(tmp)
            if shim is None:
                self.skipTest("no C compiler")
            program = (
                "import os, time\n"
                f"fd = os.open({os.path.join(tmp, 'f')!r}, os.O_WRONLY | os.O_CREAT)\n"
                "t = time.monotonic()\n"
                "for _ in range(5): os.write(fd, b'x'); os.fdatasync(fd)\n"
                "print(time.monotonic() - t)\n"
            )
            env = dict(os.environ, LD_PRELOAD=shim, KEELCHAOS_FSYNC_DELAY_US="40000")
            out = subprocess.run(["python3", "-c", program], env=env, check=True, timeout=30, capture_output=True, text=True)
            self.assertGreaterEqual(float(out.stdout), 0.2)


if __name__ == "__main__":
    unittest.main()
