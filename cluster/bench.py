"""Benchmark, not a test: `nzip --fast` on about 100 MB through nzip-ray with one and two worker
nodes, against nzip alone on the same file, with gzip -6, zstd -3 and xz -6 beside them; every
nzip archive is decoded and compared. Prints a Markdown table.

usage: python3 cluster/bench.py [--size-mb 100] [--range-mb 8] [--nzip PATH] [--no-xz]
(run it alone: it keeps every core busy for several minutes)
"""
import argparse
import datetime
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(CLUSTER_DIR))

from nzip_ray import sample  # noqa: E402
from nzip_ray.local_cluster import LocalCluster  # noqa: E402
from nzip_ray.nzip import find_binary  # noqa: E402


def timed(command: list[str], stdout=subprocess.DEVNULL) -> float:
    started = time.monotonic()
    subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, check=True)
    return time.monotonic() - started


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


class Table:
    def __init__(self, size: int):
        self.size = size
        self.rows: list[tuple[str, str, float, int | None, str]] = []

    def add(self, what: str, cpus: str, seconds: float, archive: int | None, note: str = "") -> None:
        self.rows.append((what, cpus, seconds, archive, note))
        print(f"  {what}: {seconds:.1f} s", file=sys.stderr, flush=True)

    def print(self) -> None:
        print("| run | CPUs | seconds | MB/s | bits per byte | note |")
        print("|---|---:|---:|---:|---:|---|")
        for what, cpus, seconds, archive, note in self.rows:
            bits = f"{8 * archive / self.size:.3f}" if archive else "–"
            print(f"| {what} | {cpus} | {seconds:.1f} | {self.size / 1e6 / seconds:.2f} | {bits} | {note} |")


def nzip_ray(*args) -> list[str]:
    return [sys.executable, "-m", "nzip_ray", *map(str, args)]


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--size-mb", type=float, default=100)
    cli.add_argument("--range-mb", type=float, default=8, help="nzip-ray's --range-mb")
    cli.add_argument("--nzip", help="nzip binary [default: as nzip-ray finds it]")
    cli.add_argument("--no-xz", action="store_true", help="leave xz out (the slowest of the three)")
    args = cli.parse_args()
    nzip = find_binary(args.nzip)
    os.environ["NZIP_BIN"] = nzip
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLUSTER_DIR), os.environ.get("PYTHONPATH")]))

    work = Path(tempfile.mkdtemp(prefix="nzip-bench-"))
    try:
        data = work / "input.bin"
        sample.write(data, int(args.size_mb * 1e6))
        size = data.stat().st_size
        original = sha256(data)
        table = Table(size)
        print(f"input: {size:,} bytes ({work})", file=sys.stderr)

        def check(decoded: Path, what: str) -> None:
            if sha256(decoded) != original:
                raise SystemExit(f"bench: {what} did not give the input back")
            decoded.unlink()

        for threads in (1, 2):
            out = work / f"plain{threads}.nz"
            seconds = timed([nzip, "compress", "--fast", "-q", "--threads", str(threads), str(data), "-o", str(out)])
            table.add(f"nzip --fast --threads {threads}", str(threads), seconds, out.stat().st_size)

        ray_range = ["--range-mb", args.range_mb]
        # The head holds no CPU, so that tasks run only on the worker nodes being counted.
        with LocalCluster(workers=1, head_cpus=0, worker_cpus=1) as cluster:
            for workers in (1, 2):
                if workers == 2:
                    cluster.add_worker()
                out = work / f"ray{workers}.nz"
                seconds = timed(nzip_ray("compress", "--fast", "-q", *ray_range, data, "-o", out, "--address", cluster.address))
                plain = table.rows[workers - 1][2]
                table.add(
                    f"nzip-ray compress, {workers} worker node{'s' if workers > 1 else ''}", str(workers), seconds,
                    out.stat().st_size, f"{100 * (seconds / plain - 1):+.0f}% against nzip --threads {workers}",
                )
            decoded = work / "ray2.out"
            seconds = timed(nzip_ray("decompress", "-q", work / "ray2.nz", "-o", decoded, "--address", cluster.address))
            check(decoded, "nzip-ray decompress")
            table.add("nzip-ray decompress, 2 worker nodes", "2", seconds, None, "member by member")
        for name in ("plain2", "ray1"):
            decoded = work / f"{name}.out"
            seconds = timed([nzip, "decompress", "-q", str(work / f"{name}.nz"), "-o", str(decoded)])
            check(decoded, f"nzip -d of {name}.nz")
            table.add(f"nzip -d of the {'nzip' if name == 'plain2' else 'nzip-ray'} archive", "2", seconds, None)

        others = [("gzip -6", ["gzip", "-6", "-c"]), ("zstd -3", ["zstd", "-3", "-T1", "-q", "-c"])]
        if not args.no_xz:
            others.append(("xz -6", ["xz", "-6", "-T1", "-c"]))
        for name, command in others:
            if shutil.which(command[0]) is None:
                continue
            out = work / "other"
            with open(out, "wb") as f:
                seconds = timed([*command, str(data)], stdout=f)
            table.add(name, "1", seconds, out.stat().st_size)

        print(
            f"\n{datetime.date.today()}, {size / 1e6:.0f} MB of corpus and source slices with random blocks "
            f"(cluster/nzip_ray/sample.py), nzip-ray --range-mb {args.range_mb:g}; "
            f"{os.cpu_count()} cores of {cpu_name()}\n"
        )
        table.print()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
