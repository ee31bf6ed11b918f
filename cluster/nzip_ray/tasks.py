"""The Ray tasks, run on the worker nodes: nzip on one range (compress) or on one member
(decompress), the resulting bytes returned through Ray's object store."""
import subprocess
import tempfile

import ray


class NzipFailed(Exception):
    """nzip exited with an error. The same input and options would fail again, so Ray does not
    retry it; the driver stops with nzip's message."""


class NzipKilled(Exception):
    """nzip was killed by a signal (the kernel's OOM killer, a node shutting down): another try,
    perhaps on another node, may succeed, so Ray retries it."""


def node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def run_nzip(binary: str, args: list[str], stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run([binary, *args], input=stdin, capture_output=True)
    except FileNotFoundError:
        raise NzipFailed(
            f"nzip binary not found on node {node_id()}: {binary} "
            "(every node needs nzip at the same path; --nzip names it)"
        ) from None
    if done.returncode < 0:
        raise NzipKilled(f"nzip was killed by signal {-done.returncode} on node {node_id()}")
    if done.returncode != 0:
        lines = [l for l in done.stderr.decode(errors="replace").splitlines() if l.strip()]
        why = "\n".join(lines[-3:]) or f"exit status {done.returncode}"
        raise NzipFailed(f"nzip failed on node {node_id()}: {why}")
    return done.stdout


@ray.remote
def compress_range(
    binary: str, options: list[str], path: str, start: int, end: int, shipped: bytes | None
) -> tuple[bytes, str]:
    """The archive of bytes start..end of `path`, and the node that made it. With `shipped`
    (the range's bytes, sent by the driver for nodes that cannot read the driver's files), nzip
    codes those instead, from a file of this node's own."""
    args = ["compress", "-q", *options]
    if shipped is None:
        return run_nzip(binary, [*args, "--input-range", f"{start}..{end}", "-c", path]), node_id()
    with tempfile.NamedTemporaryFile(prefix="nzip-ray-") as local:
        local.write(shipped)
        local.flush()
        return run_nzip(binary, [*args, "-c", local.name]), node_id()


@ray.remote
def decompress_member(binary: str, options: list[str], member: bytes) -> tuple[bytes, str]:
    """The original bytes of one member, and the node that decoded them."""
    return run_nzip(binary, ["decompress", "-q", *options, "-c", "-"], stdin=member), node_id()


def task_options(cpus: float, gpus: float, retries: int) -> dict:
    """Resources and retry policy of every task: a node that dies takes its tasks with it, and
    Ray runs them again elsewhere (max_retries); nzip killed by a signal is retried too."""
    return {
        "num_cpus": cpus,
        "num_gpus": gpus,
        "max_retries": retries,
        "retry_exceptions": [NzipKilled],
    }


def default_threads(cpus: float) -> list[str]:
    """nzip's --threads for a task that holds `cpus` CPUs: by default nzip would use every core
    of the node, and several tasks share a node."""
    return ["--threads", str(max(1, int(cpus)))]
