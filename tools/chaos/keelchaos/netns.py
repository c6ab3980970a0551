"""Each node in its own network namespace, as if on its own host (needs root).

Layout for instance I (0..9) with nodes 1..N:

    root namespace                switch namespace keelchaosI-sw           node namespaces
    kcI-root 10.77.I.1/24  <-->  kcI-up --+                                keelchaosI-n1: eth0 10.77.I.11/24
                                           +-- bridge kcI-br --- kcI-h1 <--> eth0 (node 1)
                                           +----------------- kcI-h2 <--> eth0 (node 2) ...

The bridge lives in a namespace of its own, so traffic between nodes never crosses
the root namespace (whose netfilter sees bridged frames when br_netfilter is loaded,
as it is here) and nothing of the root namespace changes except one veth with one
address and its connected route. The workload runs in the root namespace and reaches
every node through kcI-root; partitions never cut it off.

A cut directed edge (src, dst) is one rule `-s <src ip> -j DROP` in chain KEELCHAOS of
dst's namespace (INPUT jumps to it); applying a partition rewrites every node's chain
with one iptables-restore, healing flushes them. TOOLCHAIN.md: netem does not work in
this kernel, so there is no delay injection here.

Set-up takes a lock per instance (/tmp/keelchaosI.netns.lock, held until tear-down), so
two harnesses on one machine never share names. It is idempotent and robust: it first
removes whatever an earlier run of the same instance left behind (namespaces named keelchaosI-*, links named kcI-* in the root
namespace, and the processes still running inside those namespaces, which only this
harness starts). Tear-down does the same and waits until the kernel has let go.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from . import probe
from .partitions import Partition, healed

NS_PREFIX = "keelchaos"
LINK_PREFIX = "kc"
CHAIN = "KEELCHAOS"
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py")


class NetError(RuntimeError):
    pass


def run(argv: list[str], check: bool = True, input: str | None = None, timeout: float = 20) -> str:
    """Runs a command, bounded; raises NetError with its stderr when it fails."""
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise NetError(f"{' '.join(argv)}: timed out after {timeout} s") from e
    if check and done.returncode != 0:
        raise NetError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def available() -> str | None:
    """None when namespaces can be used here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian: apt-get install iproute2 iptables)"
    return None


def list_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_root_links() -> list[str]:
    out = run(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            names.append(parts[1].strip().split("@")[0])
    return names


@dataclass
class NetConfig:
    instance: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.instance <= 9:
            raise ValueError("instance must be in 0...9")

    @property
    def ns_prefix(self) -> str:
        return f"{NS_PREFIX}{self.instance}-"

    @property
    def link_prefix(self) -> str:
        return f"{LINK_PREFIX}{self.instance}-"

    @property
    def subnet(self) -> str:
        return f"10.77.{self.instance}.0/24"

    @property
    def root_ip(self) -> str:
        return f"10.77.{self.instance}.1"

    def node_ip(self, node: int) -> str:
        if not 1 <= node <= 200:
            raise ValueError("node ids must be in 1...200")
        return f"10.77.{self.instance}.{10 + node}"

    def node_ns(self, node: int) -> str:
        return f"{self.ns_prefix}n{node}"

    @property
    def switch_ns(self) -> str:
        return f"{self.ns_prefix}sw"


class Network:
    """The namespaces of one run. Use `setup`, then `apply` / `heal`, then `teardown`."""

    def __init__(self, nodes: list[int], config: NetConfig | None = None, log=None):
        self.nodes = sorted(nodes)
        self.config = config or NetConfig()
        self.current = healed(self.nodes)
        self.log = log or (lambda msg: print(f"netns: {msg}", file=sys.stderr))
        self.is_up = False
        self._lock = None

    # -- addressing -------------------------------------------------------------------

    def ip(self, node: int) -> str:
        return self.config.node_ip(node)

    def ns(self, node: int) -> str:
        return self.config.node_ns(node)

    def exec_argv(self, node: int, argv: list[str]) -> list[str]:
        """argv run inside node's namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.ns(node), *argv]

    # -- set-up and tear-down ---------------------------------------------------------

    def cleanup_stale(self) -> list[str]:
        """Removes everything of this instance that a crashed run left; returns what."""
        removed = []
        c = self.config
        for ns in list_namespaces():
            if ns.startswith(c.ns_prefix):
                for pid in run(["ip", "netns", "pids", ns], check=False).split():
                    # Only the harness starts processes in these namespaces.
                    try:
                        os.kill(int(pid), 9)
                        removed.append(f"process {pid} in {ns}")
                    except (ProcessLookupError, ValueError):
                        pass
        for link in list_root_links():
            if link.startswith(c.link_prefix):
                run(["ip", "link", "del", link], check=False)
                removed.append(f"link {link}")
        for ns in list_namespaces():
            if ns.startswith(c.ns_prefix):
                run(["ip", "netns", "del", ns], check=False)
                removed.append(f"namespace {ns}")
        self._wait_gone()
        return removed

    def _wait_gone(self, timeout: float = 10) -> None:
        c = self.config
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = [n for n in list_namespaces() if n.startswith(c.ns_prefix)]
            left += [l for l in list_root_links() if l.startswith(c.link_prefix)]
            if not left:
                return
            time.sleep(0.1)
        raise NetError(f"could not remove {left}")

    def _check_subnet_free(self) -> None:
        routes = run(["ip", "-4", "route", "show", "table", "all"], check=False)
        prefix = f"10.77.{self.config.instance}."
        for line in routes.splitlines():
            if line.startswith(prefix) or line.startswith(self.config.subnet):
                raise NetError(
                    f"{self.config.subnet} is already routed here ({line.strip()}); pick another --net-instance"
                )

    def _acquire(self, wait_s: float) -> None:
        if self._lock is not None:
            return
        path = f"/tmp/{NS_PREFIX}{self.config.instance}.netns.lock"
        lock = open(path, "w")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock = lock
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.close()
                    raise NetError(f"instance {self.config.instance} is in use by another run ({path})")
                time.sleep(0.5)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    def setup(self, wait_s: float = 0) -> None:
        """Creates everything; waits up to wait_s for another run of this instance."""
        self._acquire(wait_s)
        stale = self.cleanup_stale()
        if stale:
            self.log(f"removed leftovers of an earlier run: {', '.join(stale)}")
        self._check_subnet_free()
        c = self.config
        sw, br, lp = c.switch_ns, f"{c.link_prefix}br", c.link_prefix
        try:
            run(["ip", "netns", "add", sw])
            self._in(sw, ["ip", "link", "set", "lo", "up"])
            self._in(sw, ["ip", "link", "add", br, "type", "bridge"])
            self._in(sw, ["ip", "link", "set", br, "up"])
            for n in self.nodes:
                ns, host_end, node_end = self.ns(n), f"{lp}h{n}", f"{lp}n{n}"
                run(["ip", "netns", "add", ns])
                run(["ip", "link", "add", node_end, "type", "veth", "peer", "name", host_end])
                run(["ip", "link", "set", node_end, "netns", ns])
                run(["ip", "link", "set", host_end, "netns", sw])
                self._in(sw, ["ip", "link", "set", host_end, "master", br])
                self._in(sw, ["ip", "link", "set", host_end, "up"])
                self._in(ns, ["ip", "link", "set", node_end, "name", "eth0"])
                self._in(ns, ["ip", "addr", "add", f"{self.ip(n)}/24", "dev", "eth0"])
                self._in(ns, ["ip", "link", "set", "eth0", "up"])
                self._in(ns, ["ip", "link", "set", "lo", "up"])
                self._in(ns, ["iptables", "-N", CHAIN])
                self._in(ns, ["iptables", "-A", "INPUT", "-j", CHAIN])
            root_end, up_end = f"{lp}root", f"{lp}up"
            run(["ip", "link", "add", root_end, "type", "veth", "peer", "name", up_end])
            run(["ip", "link", "set", up_end, "netns", sw])
            self._in(sw, ["ip", "link", "set", up_end, "master", br])
            self._in(sw, ["ip", "link", "set", up_end, "up"])
            run(["ip", "addr", "add", f"{c.root_ip}/24", "dev", root_end])
            run(["ip", "link", "set", root_end, "up"])
        except Exception:
            self.teardown()
            raise
        self.is_up = True
        self.current = healed(self.nodes)

    def teardown(self) -> None:
        """Idempotent; kills what still runs inside the namespaces."""
        if self._lock is None:
            self._acquire(0)
        try:
            self.cleanup_stale()
        finally:
            self.is_up = False
            self._release()

    def _in(self, ns: str, argv: list[str], **kw) -> str:
        return run(["ip", "netns", "exec", ns, *argv], **kw)

    # -- faults -----------------------------------------------------------------------

    def apply(self, partition: Partition) -> None:
        """Makes exactly `partition`'s edges cut (replacing the previous partition)."""
        for dst in self.nodes:
            rules = [f"-F {CHAIN}"]
            for src in self.nodes:
                if (src, dst) in partition.cut:
                    rules.append(f"-A {CHAIN} -s {self.ip(src)}/32 -j DROP")
            text = "*filter\n" + "\n".join(rules) + "\nCOMMIT\n"
            self._in(self.ns(dst), ["iptables-restore", "--noflush"], input=text)
        self.current = partition

    def heal(self) -> None:
        self.apply(healed(self.nodes))

    def rules(self) -> dict[int, list[str]]:
        """The DROP rules now in each node's namespace, for checks and the log."""
        out = {}
        for n in self.nodes:
            text = self._in(self.ns(n), ["iptables", "-S", CHAIN], check=False)
            out[n] = [line for line in text.splitlines() if line.startswith("-A")]
        return out

    # -- verification -----------------------------------------------------------------

    def verify(self, partition: Partition | None = None, port: int = 7007, timeout: float = 0.6) -> list[str]:
        """Checks, with real packets, that the network does what `partition` (default:
        the current one) says: a UDP datagram from a reaches b iff (a, b) is not cut; a
        TCP echo between a and b works iff neither direction is cut; the root namespace
        reaches every node. Returns the mismatches (empty when all is as expected).
        Bounded: about 2 s plus `timeout` per node."""
        partition = partition or self.current
        servers = []
        mismatches = []
        try:
            for n in self.nodes:
                p = subprocess.Popen(
                    self.exec_argv(n, [sys.executable, PROBE, "serve", str(port), "20"]),
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                )
                servers.append(p)
            for p in servers:
                if p.stdout.readline().strip() != "ready":
                    raise NetError("probe server did not start")
            results: dict[int, dict[str, bool]] = {}
            for src in self.nodes:
                targets = [self.ip(d) for d in self.nodes if d != src]
                if not targets:
                    results[src] = {}
                    continue
                out = run(
                    self.exec_argv(src, [sys.executable, PROBE, "check", str(port), str(timeout), f"from-{src}", *targets]),
                    timeout=timeout * 3 + 10,
                )
                results[src] = json.loads(out)
            time.sleep(0.2)  # let the last datagrams land
            for dst in self.nodes:
                tokens = probe.ask_tokens(self.ip(dst), port, 2.0)
                if tokens is None:
                    mismatches.append(f"root cannot reach node {dst}'s probe")
                    continue
                if not probe.tcp_echo(self.ip(dst), port, 2.0):
                    mismatches.append(f"root cannot echo with node {dst}")
                got_from = {int(t.split("-")[1]) for t in tokens if t.startswith("from-")}
                for src in self.nodes:
                    if src == dst:
                        continue
                    want = partition.delivers(src, dst)
                    if (src in got_from) != want:
                        mismatches.append(
                            f"udp {src}->{dst}: {'arrived' if src in got_from else 'lost'}, expected {'arrival' if want else 'loss'}")
                    tcp = results[src].get(self.ip(dst), False)
                    want_tcp = partition.tcp_connects(src, dst)
                    if tcp != want_tcp:
                        mismatches.append(
                            f"tcp {src}->{dst}: {'connected' if tcp else 'failed'}, expected {'connection' if want_tcp else 'failure'}")
        finally:
            for p in servers:
                p.kill()
                p.wait(5)
                p.stdout.close()
        return mismatches
