"""The process layer: Keel nodes as processes, each inside its namespace when there is one.

A node can be started, stopped gracefully (SIGTERM: Keel transfers leadership first,
then flushes and closes), killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT), and,
while dead, lose its unsynced writes (durability.py). Every incarnation appends to the
node's log file (`broker.log`, with a header line per start), and runs with the fsync
tracker preloaded so that the harness knows what was durable.

`broker_argv` is the one place that knows Keel's command line; `Cluster.launch` the one
place that decides addresses. Plugging in the multi-node cluster (issue #4) is a change
to those two functions only (see the README).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

from . import durability
from .netns import Network

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_SOURCE = os.path.join(HERE, "fsynctrack.c")


def build_shim(out_dir: str) -> str | None:
    """Compiles fsynctrack.so into out_dir (when missing or older than its source);
    returns its path, or None when no C compiler is there."""
    os.makedirs(out_dir, exist_ok=True)
    so = os.path.join(out_dir, "fsynctrack.so")
    if os.path.exists(so) and os.path.getmtime(so) >= os.path.getmtime(SHIM_SOURCE):
        return so
    for cc in ("cc", "gcc", "clang"):
        try:
            done = subprocess.run(
                [cc, "-O2", "-Wall", "-shared", "-fPIC", "-o", so + ".tmp", SHIM_SOURCE, "-ldl"],
                capture_output=True, text=True, timeout=60,
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            os.replace(so + ".tmp", so)
            return so
    return None


@dataclass
class NodeSpec:
    id: int
    host: str  # the address the node listens on and advertises
    client_port: int
    cluster_port: int
    dir: str  # the node's directory in the run's output: data/, broker.log, fsync.log
    netns: str | None = None

    @property
    def data_dir(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "broker.log")

    @property
    def fsync_log(self) -> str:
        return os.path.join(self.dir, "fsync.log")

    @property
    def client_address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def cluster_address(self) -> str:
        return f"{self.host}:{self.cluster_port}"


@dataclass
class ClusterConfig:
    keel: str  # path of the keel executable
    nodes: int = 1
    partitions: int = 6
    replication_factor: int = 1
    extra_broker_args: list[str] = field(default_factory=list)
    fsync_delay_us: int = 0  # a slow disk (fsynctrack.c), so that SIGKILL finds unsynced bytes


def broker_argv(cfg: ClusterConfig, node: NodeSpec, everyone: list[NodeSpec]) -> list[str]:
    """The command line of one node. The multi-node flags are issue #4's plan; a keel
    without `--voters` is run alone (the driver refuses more than one node then)."""
    argv = [
        cfg.keel, "broker",
        "--id", str(node.id),
        "--data-dir", node.data_dir,
        "--listen", node.client_address,
        "--advertised-listener", node.client_address,
        "--flush-policy", "fsync",
        "--auto-create-topics", "false",
        "--default-partitions", str(cfg.partitions),
        # Small segments so that rolls, checkpoints and multi-segment recovery happen in
        # a short run.
        "--log-segment-bytes", str(256 * 1024),
    ]
    if len(everyone) > 1:
        argv += [
            "--cluster-listen", node.cluster_address,
            "--voters", ",".join(f"{n.id}@{n.cluster_address}" for n in everyone),
        ]
    return argv + cfg.extra_broker_args


class StateFile:
    """The pids of the nodes a harness started (rewritten at every start), so that the
    next run can kill what a crashed (SIGKILLed) harness left running: a pid is killed
    only while it still runs the same command line. Namespaces get the same treatment
    from netns.Network.cleanup_stale; this covers runs on loopback too."""

    def __init__(self, instance: int):
        self.path = f"/tmp/keelchaos-{instance}.pids.json"

    def reap_stale(self) -> list[int]:
        """Kills the recorded nodes that still run; returns their pids."""
        killed = []
        try:
            with open(self.path) as f:
                entries = json.load(f)
        except (OSError, ValueError):
            return killed
        for e in entries:
            try:
                if _cmdline(e["pid"]) == e["argv"]:
                    os.kill(e["pid"], signal.SIGKILL)
                    killed.append(e["pid"])
            except (OSError, KeyError, TypeError):
                continue
        self.clear()
        return killed

    def write(self, nodes) -> None:
        # The node's own argv: under `ip netns exec` the pid runs it once exec'd.
        entries = [{"pid": n.pid, "argv": n.argv} for n in nodes if n.pid]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(entries, f)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [c.decode(errors="replace") for c in f.read().split(b"\0") if c]


class Node:
    def __init__(self, spec: NodeSpec, argv: list[str], net: Network | None, shim: str | None, log=print,
                 fsync_delay_us: int = 0, on_start=None):
        self.spec = spec
        self.on_start = on_start
        self.fsync_delay_us = fsync_delay_us
        self.argv = argv
        self.net = net
        self.shim = shim
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.incarnation = 0
        self.expect_exit = False  # set while the harness itself stops or kills the node
        self.exit_reported = False
        os.makedirs(spec.data_dir, exist_ok=True)

    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running else None

    def start(self) -> None:
        if self.running:
            return
        self.incarnation += 1
        env = dict(os.environ)
        if self.shim:
            env["LD_PRELOAD"] = self.shim
            env["KEELCHAOS_FSYNC_LOG"] = self.spec.fsync_log
            if self.fsync_delay_us:
                env["KEELCHAOS_FSYNC_DELAY_US"] = str(self.fsync_delay_us)
        argv = self.net.exec_argv(self.id, self.argv) if self.net else self.argv
        logf = open(self.spec.log_path, "a")
        logf.write(f"==== keelchaos: start {self.incarnation} at {time.strftime('%H:%M:%S')}: {' '.join(argv)}\n")
        logf.flush()
        # `ip netns exec` execs the command, so the pid is the node's own.
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        logf.close()
        self.paused = False
        self.expect_exit = False
        self.exit_reported = False
        if self.on_start:
            self.on_start()

    def died_unexpectedly(self) -> str | None:
        """How the node ended, when it ended without the harness asking (once)."""
        if self.proc is None or self.expect_exit or self.exit_reported:
            return None
        status = self.proc.poll()
        if status is None:
            return None
        self.exit_reported = True
        how = f"signal {-status}" if status < 0 else f"status {status}"
        return f"exited by itself ({how}, incarnation {self.incarnation}); see {self.spec.log_path}"

    def wait_listening(self, timeout_s: float = 30) -> bool:
        """True once the client port accepts a connection (bounded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                with socket.create_connection((self.spec.host, self.spec.client_port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def signal(self, sig: int) -> None:
        if self.running:
            os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL and reap (bounded)."""
        if not self.running:
            return
        self.expect_exit = True
        self.signal(signal.SIGKILL)
        self.proc.wait(10)
        self.paused = False

    def stop(self, timeout_s: float = 15) -> bool:
        """SIGTERM (graceful), SIGKILL after timeout_s; True when it exited by itself."""
        if not self.running:
            return True
        if self.paused:
            self.resume()
        self.expect_exit = True
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
            return True
        except subprocess.TimeoutExpired:
            self.log(f"node {self.id} ignored SIGTERM for {timeout_s} s: SIGKILL")
            self.kill()
            return False

    def lose_unsynced(self, rng, torn_probability: float = 0.3, checkpoint_only: bool = False) -> list[durability.Cut]:
        """The node must be dead. Cuts its files back to what was fsynced (with
        `checkpoint_only`, back to log.checkpoint's recovery point, which also removes
        fsynced data: a fault beyond the model, for checking the harness end to end)."""
        if self.running:
            raise RuntimeError("lose_unsynced needs a dead node")
        tracker = self.spec.fsync_log if self.shim and not checkpoint_only else None
        cuts = durability.plan_cuts(self.spec.data_dir, tracker, rng, torn_probability=torn_probability)
        durability.apply_cuts(cuts)
        if self.shim and os.path.exists(self.spec.fsync_log):
            durability.compact_fsync_log(self.spec.fsync_log)
        return cuts

    def exit_status(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


class Cluster:
    """N nodes; the workload reaches them through `bootstrap`."""

    def __init__(self, cfg: ClusterConfig, out_dir: str, net: Network | None, shim: str | None, log=print,
                 state: StateFile | None = None):
        self.cfg = cfg
        self.net = net
        self.log = log
        self.state = state
        self.specs = self.launch_specs(out_dir)
        on_start = (lambda: state.write(self.nodes.values())) if state else None
        self.nodes = {
            s.id: Node(s, broker_argv(cfg, s, self.specs), net, shim, log, cfg.fsync_delay_us, on_start)
            for s in self.specs
        }

    def launch_specs(self, out_dir: str) -> list[NodeSpec]:
        """Addresses: in namespaces every node has its own IP and the same ports, as on
        separate hosts; without them, loopback with a port pair per node."""
        specs = []
        for i in range(1, self.cfg.nodes + 1):
            d = os.path.join(out_dir, "nodes", f"n{i}")
            if self.net:
                specs.append(NodeSpec(i, self.net.ip(i), 9092, 9093, d, self.net.ns(i)))
            else:
                client, cluster = free_port(), free_port()
                specs.append(NodeSpec(i, "127.0.0.1", client, cluster, d))
        return specs

    @property
    def bootstrap(self) -> str:
        return ",".join(s.client_address for s in self.specs)

    @property
    def ids(self) -> list[int]:
        return sorted(self.nodes)

    def start_all(self, timeout_s: float = 60) -> None:
        for n in self.nodes.values():
            n.start()
        for n in self.nodes.values():
            if not n.wait_listening(timeout_s):
                raise RuntimeError(f"node {n.id} did not start listening; see {n.spec.log_path}")

    def stop_all(self) -> None:
        for n in self.nodes.values():
            if n.paused:
                n.resume()
        for n in self.nodes.values():
            n.stop()

    def kill_all(self) -> None:
        for n in self.nodes.values():
            if n.paused:
                n.resume()
            n.kill()

    def pids(self) -> dict[int, int]:
        return {n.id: n.pid for n in self.nodes.values() if n.pid}

    def transfer_leadership(self, node_id: int, timeout_s: float = 15) -> str:
        """Moves leadership away from a node. Until Keel has an API for it, this is a
        graceful restart: SIGTERM (which transfers leadership first, issue #4), then
        start again. Returns what was done."""
        node = self.nodes[node_id]
        graceful = node.stop(timeout_s)
        node.start()
        node.wait_listening(30)
        return "graceful restart" if graceful else "restart (SIGTERM timed out, SIGKILLed)"


# What in a node's log makes a run invalid: Keel's recovery saying fsynced data is gone
# (lose-unsynced never removes fsynced bytes, so this is a bug in Keel or the harness),
# errors and crashes. Warnings are listed in the report but do not fail the run.
LOG_PROBLEMS = ("data that was fsynced is missing", "Fatal error", " critical ", " error ")


def scan_log(path: str, limit: int = 5) -> tuple[list[str], list[str]]:
    """(problems, warnings) found in a node's log, at most `limit` lines of each."""
    problems, warnings = [], []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if any(p in line for p in LOG_PROBLEMS):
                    if len(problems) < limit:
                        problems.append(line.strip()[:300])
                elif " warning " in line and len(warnings) < limit:
                    warnings.append(line.strip()[:300])
    except FileNotFoundError:
        pass
    return problems, warnings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keel_supports_cluster(keel: str) -> bool:
    """Whether this keel's broker takes issue #4's `--voters`."""
    try:
        out = subprocess.run([keel, "broker", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--voters" in out.stdout + out.stderr
