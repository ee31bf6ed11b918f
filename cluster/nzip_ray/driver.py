"""The driver: sends one Ray task per part (a range to compress, a member to decompress), keeps a
bounded number of parts in flight, and writes each output's parts in order as they arrive."""
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ray
import ray.exceptions

import nzip_ray
from nzip_ray import tasks
from nzip_ray.nzip import Member, UserError
from nzip_ray.plan import Range
from nzip_ray.progress import Progress

PACKAGE_DIR = Path(nzip_ray.__file__).resolve().parent
# A cluster address that does not answer would leave ray.init waiting for many minutes.
CONNECT_TIMEOUT_SECONDS = 10
# How often the driver wakes while waiting for parts, to redraw the progress line.
WAIT_SECONDS = 0.5


class TaskFailed(Exception):
    """A part failed for good (nzip's error, or a node lost more often than the retries allow)."""


def connect(address: str | None) -> None:
    """Joins the Ray cluster at `address` (else $RAY_ADDRESS, else the one `ray start` left on
    this machine). This package travels to the workers through the runtime environment, so the
    nodes need Ray and the nzip binary, not nzip-ray."""
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    if address.startswith("ray://"):
        raise UserError(
            "Ray Client addresses (ray://) are not supported: run nzip-ray on a node of the "
            "cluster and pass --address HOST:PORT (the head's GCS address)"
        )
    if address != "auto":
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS).close()
        except (OSError, ValueError) as e:
            raise UserError(f"no Ray cluster answers at {address}: {e}") from None
    try:
        ray.init(
            address=address,
            runtime_env={"py_modules": [str(PACKAGE_DIR)]},
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except ConnectionError as e:
        raise UserError(
            f"cannot connect to a Ray cluster ({address}): {e} "
            "Start one with `ray start --head`, or pass --address HOST:PORT."
        ) from None


@dataclass(frozen=True)
class TaskSettings:
    """How every task runs: which nzip, its options, and what a task holds on its node."""

    binary: str
    options: list[str]
    cpus: float
    gpus: float
    retries: int

    def ray_options(self) -> dict:
        return tasks.task_options(self.cpus, self.gpus, self.retries)


def slots(settings: TaskSettings) -> int:
    """How many tasks the cluster runs at once."""
    resources = ray.cluster_resources()
    if settings.gpus:
        return int(resources.get("GPU", 0) // settings.gpus)
    return int(resources.get("CPU", 0) // settings.cpus)


def cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) >= 1


class Staged:
    """An output (a file, or a directory of archives) built under a hidden temporary name beside
    its final path and renamed into place only once complete, so that no reader ever sees half
    of it. As a context manager: committed when the block ends, discarded if it raises
    (KeyboardInterrupt included)."""

    def __init__(self, final: Path, is_dir: bool, force: bool):
        if not final.parent.is_dir():
            raise UserError(f"{final.parent}: no such directory for the output")
        if os.path.lexists(final):
            if not force:
                raise UserError(f"{final} already exists (-f overwrites it)")
            if final.is_dir() != is_dir:
                kind = "directory" if final.is_dir() else "file"
                raise UserError(f"{final} is a {kind}; the output would replace it with another kind")
        self.final = final
        self.is_dir = is_dir
        self.path = final.parent / f".{final.name}.nzip-ray-{os.getpid()}"
        if is_dir:
            self.path.mkdir()

    def __enter__(self) -> "Staged":
        return self

    def __exit__(self, kind, _value, _traceback) -> bool:
        if kind is None:
            self.commit()
        else:
            self.discard()
        return False

    def commit(self) -> None:
        if self.is_dir and self.final.is_dir():
            aside = self.path.with_name(self.path.name + "-old")
            os.rename(self.final, aside)
            os.rename(self.path, self.final)
            shutil.rmtree(aside)
        else:
            os.replace(self.path, self.final)

    def discard(self) -> None:
        if self.is_dir:
            shutil.rmtree(self.path, ignore_errors=True)
        elif os.path.lexists(self.path):
            os.remove(self.path)


class OrderedFile:
    """One output file: parts arrive in any order and are written in order; parts that arrive
    early wait in memory (the driver bounds how many). The file is opened at its first write
    and closed after its last, so a directory of many files holds few descriptors."""

    def __init__(self, path: Path, parts: int):
        self.path = path
        self.parts = parts
        self.next = 0
        self.waiting: dict[int, bytes] = {}
        self.file = None
        self.bytes_written = 0

    def add(self, index: int, data: bytes) -> int:
        """Takes part `index`; returns how many parts this wrote (0 if it must wait)."""
        self.waiting[index] = data
        written = 0
        while self.next in self.waiting:
            if self.file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.file = open(self.path, "wb")
            chunk = self.waiting.pop(self.next)
            self.file.write(chunk)
            self.bytes_written += len(chunk)
            self.next += 1
            written += 1
        if self.next == self.parts and self.file is not None:
            self.file.close()
        return written

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@dataclass
class Part:
    """One task's worth of work: part `index` of output `output`, covering `raw_bytes` of
    original data; `launch` submits its task and returns the result's reference."""

    output: int
    index: int
    raw_bytes: int
    describe: str
    launch: Callable[[], ray.ObjectRef]


@dataclass
class Summary:
    """What a run did, for the summary line (and the benchmark)."""

    raw_bytes: int = 0
    written_bytes: int = 0
    parts: int = 0
    nodes: set[str] = field(default_factory=set)
    seconds: float = 0.0


def run_parts(
    parts: Iterator[Part], outputs: list[OrderedFile], window: int, progress: Progress
) -> Summary:
    """Runs every part and writes its result to its output in order. At most `window` parts are
    submitted but not yet written, which bounds the memory held by early arrivals; the oldest of
    them is always in flight or written, so the window never stalls."""
    started = time.monotonic()
    summary = Summary()
    in_flight: dict[ray.ObjectRef, Part] = {}
    unwritten = 0
    upcoming = iter(parts)
    exhausted = False
    try:
        while True:
            while not exhausted and unwritten < window:
                part = next(upcoming, None)
                if part is None:
                    exhausted = True
                    break
                in_flight[part.launch()] = part
                unwritten += 1
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_SECONDS)
            progress.tick()
            for ref in ready:
                part = in_flight.pop(ref)
                data, node = result(ref, part)
                summary.parts += 1
                summary.raw_bytes += part.raw_bytes
                summary.nodes.add(node)
                progress.part_done(part.raw_bytes, node)
                unwritten -= outputs[part.output].add(part.index, data)
    except BaseException:
        for ref in in_flight:
            ray.cancel(ref)
        for output in outputs:
            output.close()
        raise
    finally:
        progress.close()
    summary.written_bytes = sum(o.bytes_written for o in outputs)
    summary.seconds = time.monotonic() - started
    return summary


def result(ref: ray.ObjectRef, part: Part) -> tuple[bytes, str]:
    """A part's (bytes, node), or TaskFailed naming the part and the reason."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, tasks.NzipFailed | tasks.NzipKilled):
            raise TaskFailed(f"{part.describe}: {e.cause}") from None
        raise
    except ray.exceptions.RayError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TaskFailed(f"{part.describe}: {first_line}") from None


@dataclass(frozen=True)
class InputFile:
    """A file to compress and where its archive goes (inside the staged output)."""

    path: Path
    archive: Path


def compress_parts(
    inputs: list[InputFile], ranges: list[list[Range]], settings: TaskSettings, ship: bool
) -> Iterator[Part]:
    """One part per range, file after file. With `ship`, the driver reads each range and sends
    its bytes through the object store (for nodes that cannot read the driver's files); it
    reads them only when the part is launched, so memory stays bounded by the window."""
    options = settings.ray_options()
    for k, (source, file_ranges) in enumerate(zip(inputs, ranges)):
        for i, r in enumerate(file_ranges):

            def launch(source=source, r=r):
                shipped = ray.put(read_range(source.path, r)) if ship else None
                return tasks.compress_range.options(**options).remote(
                    settings.binary, settings.options, str(source.path), r.start, r.end, shipped
                )

            describe = f"{source.path}: range {r.start}..{r.end} ({i + 1} of {len(file_ranges)})"
            yield Part(k, i, r.size, describe, launch)


def read_range(path: Path, r: Range) -> bytes:
    with open(path, "rb") as f:
        f.seek(r.start)
        return f.read(r.size)


def decompress_parts(archive: Path, members: list[Member], settings: TaskSettings) -> Iterator[Part]:
    """One part per member; each member's bytes are read when its part is launched and sent
    through the object store, so the nodes need not see the archive."""
    options = settings.ray_options()
    for i, m in enumerate(members):

        def launch(m=m):
            with open(archive, "rb") as f:
                f.seek(m.offset)
                member = f.read(m.archive_bytes)
            return tasks.decompress_member.options(**options).remote(
                settings.binary, settings.options, ray.put(member)
            )

        describe = f"{archive}: member {i + 1} of {len(members)} (archive bytes {m.offset}..{m.offset + m.archive_bytes})"
        yield Part(0, i, m.original_bytes, describe, launch)
