#!/usr/bin/env python3
"""The disk's own latency for `tools/bench produce`: write SIZE bytes and fdatasync (as Keel syncs a segment), N times,
RATE times a second at most (the cadence of a fixed-rate producer), and print p50 / p99 /
p99.9 in milliseconds. Usage: fsync_latency.py FILE N SIZE [RATE]."""
import os
import sys
import time

path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
start = time.perf_counter()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
buf = os.urandom(size)
lat = []
for i in range(n):
    t = time.perf_counter_ns()
    os.write(fd, buf)
    os.fdatasync(fd)
    lat.append(time.perf_counter_ns() - t)
    delay = start + (i + 1) / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
os.close(fd); os.unlink(path)
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] / 1e6
print(f"result fsync n={n} size={size} rate={rate} p50_ms={pct(50):.3f} p99_ms={pct(99):.3f} p99_9_ms={pct(99.9):.3f} max_ms={lat[-1]/1e6:.3f}")
