"""A Ray cluster of separate node processes on this machine, for the tests and the benchmark: a
head and worker nodes started with `ray start`, each in a session of its own, so that one node
can be killed (to test a lost worker) and all stopped without touching any other Ray here."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Ray's Unix socket paths live under the temp dir and must stay under ~107 characters.
TEMP_PARENT = "/tmp"
START_TIMEOUT_SECONDS = 180
STOP_GRACE_SECONDS = 3
OBJECT_STORE_BYTES = 200_000_000


def free_port() -> int:
    """A port nothing listens on now: every port is chosen so, so that a cluster left over from
    an earlier run (Ray's defaults are fixed ports) cannot collide with this one."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def session_processes(session: int) -> list[int]:
    """Live processes of a session. Everything a node starts (GCS, raylet, agents, workers, and
    the nzip processes they run) stays in the session of its `ray start`, whose id is that
    process's pid; Linux does not reuse a pid while a session of that id has members."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            found.append(int(entry))
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class LocalCluster:
    """`with LocalCluster(workers=2) as cluster:` starts the nodes one after another (two nodes
    starting at once on one machine race for the same socket names) and stops every process
    they started on the way out, whatever happened."""

    def __init__(self, workers: int = 2, head_cpus: int = 1, worker_cpus: int = 1):
        self.workers = workers
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.temp_dir = tempfile.mkdtemp(prefix="nzr-", dir=TEMP_PARENT)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # One session id per node, head first.
        self.sessions: list[int] = []

    def __enter__(self) -> "LocalCluster":
        try:
            self.start_node(
                "head",
                [
                    "--head",
                    f"--port={self.port}",
                    f"--temp-dir={self.temp_dir}",
                    "--include-dashboard=false",
                    f"--dashboard-port={free_port()}",
                    f"--ray-client-server-port={free_port()}",
                    f"--num-cpus={self.head_cpus}",
                ],
            )
            for _ in range(self.workers):
                self.add_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_worker(self) -> None:
        n = len(self.sessions)
        self.start_node(f"worker{n}", [f"--address={self.address}", f"--num-cpus={self.worker_cpus}"])

    def start_node(self, name: str, args: list[str]) -> None:
        ports = [
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
        ]
        command = [
            sys.executable, "-m", "ray.scripts.scripts", "start", *args, *ports,
            f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
        ]
        log = Path(self.temp_dir) / f"{name}.log"
        with open(log, "wb") as out:
            start = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.sessions.append(start.pid)
        try:
            status = start.wait(START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            status = "timed out"
        if status != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"ray start ({name}) failed: {status}\n" + "\n".join(tail))

    def running(self, n: int, word: str) -> bool:
        """Whether a process of node `n` (0 is the head) has `word` in its command line."""
        for pid in session_processes(self.sessions[n]):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if word.encode() in f.read():
                        return True
            except OSError:
                pass
        return False

    def kill_worker(self, n: int) -> None:
        """Kills worker node `n` (1-based; 0 is the head) at once, raylet, workers, nzip and all,
        as a machine that loses power would."""
        signal_all(session_processes(self.sessions[n]), signal.SIGKILL)

    def stop(self) -> None:
        for session in self.sessions:
            signal_all(session_processes(session), signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(session_processes(s) for s in self.sessions):
            time.sleep(0.2)
        for session in self.sessions:
            signal_all(session_processes(session), signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
