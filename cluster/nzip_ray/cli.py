"""The nzip-ray command line: `compress` and `decompress`, their options, and the one-line errors
(exit 1; 2 for usage, 130 when interrupted) that replace tracebacks for anything a user can fix."""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from nzip_ray import nzip, plan
from nzip_ray.driver import (
    InputFile,
    OrderedFile,
    Staged,
    Summary,
    TaskFailed,
    TaskSettings,
    cluster_has_gpus,
    compress_parts,
    connect,
    decompress_parts,
    run_parts,
    slots,
)
from nzip_ray.nzip import UserError
from nzip_ray.progress import Progress
from nzip_ray.tasks import default_threads

DEFAULT_RANGE_MIB = 32
DEFAULT_RETRIES = 3
# Parts in flight (or written late) per task slot: enough that a slot never waits for the
# driver, few enough that early arrivals held in memory stay small.
WINDOW_PER_SLOT = 2


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="nzip-ray",
        description="nzip across a Ray cluster: each file is cut into ranges of whole groups, "
        "one task each; the members concatenate into one archive that plain `nzip -d` decodes.",
    )
    commands = top.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", help="the Ray cluster's HOST:PORT [default: $RAY_ADDRESS, else the cluster `ray start` runs on this machine]")
    common.add_argument("--nzip", metavar="PATH", help="nzip binary, at this path on every node [default: $NZIP_BIN, else nzip on PATH, else the repository's target/release/nzip]")
    common.add_argument("-o", "--output", metavar="PATH", help="output file (or directory, for several inputs or a directory)")
    common.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress line, no summary")
    common.add_argument("--task-cpus", type=positive, default=1.0, metavar="N", help="CPUs each task holds (and nzip's --threads unless given) [default: 1]")
    common.add_argument("--retries", type=count, default=DEFAULT_RETRIES, metavar="N", help=f"times Ray reruns a task whose node or nzip process died [default: {DEFAULT_RETRIES}]")
    common.add_argument("--threads", metavar="N", help="nzip's --threads in each task")
    common.add_argument("--model", metavar="NAME|PATH", help="nzip's --model, on every node")
    common.add_argument("--device", metavar="auto|cpu|NAME,...", help="nzip's --device in each task")
    common.add_argument("--workers", metavar="N", help="nzip's --workers in each task")

    c = commands.add_parser("compress", parents=[common], help="compress files (one archive per file) across the cluster")
    c.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    levels = c.add_mutually_exclusive_group()
    levels.add_argument("-l", "--level", type=int, choices=range(1, 10), metavar="1-9", help="nzip level, also written -1 … -9 [default: 5]")
    for n in range(1, 10):
        levels.add_argument(f"-{n}", dest="level", action="store_const", const=n, help=argparse.SUPPRESS)
    levels.add_argument("--fast", dest="level", action="store_const", const=1, help="level 1: the byte model alone")
    levels.add_argument("--best", dest="level", action="store_const", const=9, help="level 9")
    c.add_argument("--range-mb", type=positive, default=DEFAULT_RANGE_MIB, metavar="N", help=f"MiB of input per task, rounded down to whole groups (at most {plan.MAX_RANGE_MIB}) [default: {DEFAULT_RANGE_MIB}]")
    c.add_argument("--ship-input", action="store_true", help="send each range's bytes through Ray's object store, for nodes that cannot read the inputs at the driver's paths")
    for flag in ("--engine", "--chunk-size", "--window", "--slide", "--sinks", "--seqs"):
        c.add_argument(flag, metavar="V", help=f"nzip's {flag}")
    c.add_argument("--bare-llm", action="store_true", help="nzip's --bare-llm")
    c.add_argument("--verify", action="store_true", help="nzip's --verify: each task decodes its member before returning it")

    d = commands.add_parser("decompress", parents=[common], help="decompress an archive; its members are decoded across the cluster")
    d.add_argument("archive", metavar="FILE.nz")
    d.add_argument("--force-numerics", action="store_true", help="nzip's --force-numerics")
    return top


def passthrough(args: argparse.Namespace, names: list[str]) -> list[str]:
    """The nzip options among `names` that the user gave, as nzip's own flags."""
    out = []
    for name in names:
        value = getattr(args, name.replace("-", "_"), None)
        if value is True:
            out.append(f"--{name}")
        elif value not in (None, False):
            out += [f"--{name}", str(value)]
    return out


def task_settings(args: argparse.Namespace, binary: str, options: list[str], gpus: float) -> TaskSettings:
    if args.threads is None:
        options = options + default_threads(args.task_cpus)
    return TaskSettings(binary, options, args.task_cpus, gpus, args.retries)


def find_inputs(paths: list[str]) -> tuple[list[Path], list[Path]]:
    """Every file to compress and its archive's path relative to the output: a file keeps its
    name, a directory's files keep their paths inside it. Checked before anything starts."""
    files, names = [], []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file())
            files += found
            names += [f.relative_to(p) for f in found]
        elif p.is_file():
            files.append(p)
            names.append(Path(p.name))
        elif os.path.lexists(p):
            raise UserError(f"{p}: not a regular file or directory")
        else:
            raise UserError(f"{p}: no such file or directory")
    for f in files:
        if not os.access(f, os.R_OK):
            raise UserError(f"{f}: permission denied")
    seen: dict[Path, Path] = {}
    for f, name in zip(files, names):
        if name in seen:
            raise UserError(f"{seen[name]} and {f} would both be archived as {name}.nz")
        seen[name] = f
    return files, [n.with_name(n.name + ".nz") for n in names]


def compress(args: argparse.Namespace) -> Summary:
    files, archive_names = find_inputs(args.paths)
    one_file = len(args.paths) == 1 and Path(args.paths[0]).is_file()
    if args.output is None:
        if not one_file:
            raise UserError("several inputs or a directory: name the output directory with -o")
        args.output = args.paths[0] + ".nz"
    if args.range_mb > plan.MAX_RANGE_MIB:
        raise UserError(f"--range-mb is at most {plan.MAX_RANGE_MIB}: members travel through Ray's object store")
    binary = nzip.find_binary(args.nzip)
    with Staged(Path(args.output), is_dir=not one_file, force=args.force) as staged:
        summary = compress_staged(args, binary, files, archive_names, staged)
    if not args.quiet:
        report("compressed", args.output, summary.raw_bytes, summary.written_bytes, summary)
    return summary


def compress_staged(args, binary: str, files: list[Path], archive_names: list[Path], staged: Staged) -> Summary:
    level = args.level or 5
    options = ["--level", str(level)] + passthrough(
        args, ["model", "engine", "chunk-size", "window", "slide", "sinks", "seqs", "bare-llm", "verify", "threads", "device", "workers"]
    )
    # nzip checks the options and says which chunk size they give, before any task runs.
    target = nzip.chunk_target(binary, options, files[0]) if files else 1
    group = plan.group_bytes(level, target, int(args.seqs) if args.seqs else None)
    step = plan.range_bytes(args.range_mb, group)
    sizes = [f.stat().st_size for f in files]
    ranges = [plan.cut(size, step) for size in sizes]

    connect(args.address)
    gpus = 1.0 if level not in plan.BYTE_MODEL_LEVELS and cluster_has_gpus() else 0.0
    settings = task_settings(args, binary, options, gpus)
    targets = [staged.path / n for n in archive_names] if staged.is_dir else [staged.path]
    inputs = [InputFile(f, t) for f, t in zip(files, targets)]
    outputs = [OrderedFile(i.archive, len(r)) for i, r in zip(inputs, ranges)]
    progress = Progress(sum(sizes), sum(len(r) for r in ranges), show_progress(args))
    parts = compress_parts(inputs, ranges, settings, args.ship_input)
    return run_parts(parts, outputs, window_for(settings), progress)


def decompress(args: argparse.Namespace) -> Summary:
    archive = Path(args.archive)
    if not archive.is_file():
        raise UserError(f"{archive}: no such file" if not os.path.lexists(archive) else f"{archive}: not a regular file")
    if args.output is None:
        if archive.suffix != ".nz":
            raise UserError(f"{archive}: no .nz suffix to strip; name the output with -o")
        args.output = str(archive.with_suffix(""))
    binary = nzip.find_binary(args.nzip)
    options = passthrough(args, ["model", "force-numerics", "threads", "device", "workers"])
    with Staged(Path(args.output), is_dir=False, force=args.force) as staged:
        members = nzip.members(binary, archive)
        if spread_members(members):
            summary = decompress_on_cluster(args, binary, options, archive, members, staged)
        else:
            summary = decompress_here(args, binary, options, archive, staged)
    if not args.quiet:
        report("decompressed", args.output, summary.written_bytes, archive.stat().st_size, summary)
    return summary


def spread_members(members: list[nzip.Member]) -> bool:
    """Whether decoding member by member on the cluster pays: there must be several, and each
    one's output must fit through the object store like a range does. Otherwise nzip decodes
    here, on every core, which is what one task would do anyway."""
    return len(members) > 1 and max(m.original_bytes for m in members) <= plan.MAX_RANGE_MIB * plan.MIB


def decompress_on_cluster(
    args, binary: str, options: list[str], archive: Path, members: list[nzip.Member], staged: Staged
) -> Summary:
    connect(args.address)
    gpus = 1.0 if any(m.has_model for m in members) and cluster_has_gpus() else 0.0
    settings = task_settings(args, binary, options, gpus)
    output = OrderedFile(staged.path, len(members))
    progress = Progress(sum(m.original_bytes for m in members), len(members), show_progress(args))
    return run_parts(decompress_parts(archive, members, settings), [output], window_for(settings), progress)


def decompress_here(args, binary: str, options: list[str], archive: Path, staged: Staged) -> Summary:
    """`nzip -d` on this machine, its progress and errors shown as nzip shows them."""
    started = time.monotonic()
    quiet = ["-q"] if args.quiet else []
    with open(staged.path, "wb") as out:
        done = subprocess.run([binary, "decompress", *quiet, *options, "-c", str(archive)], stdout=out)
    if done.returncode != 0:
        raise UserError(f"nzip decompress failed (exit status {done.returncode}) on {archive}")
    size = staged.path.stat().st_size
    return Summary(size, size, 1, {"this machine (nzip -d)"}, time.monotonic() - started)


def window_for(settings: TaskSettings) -> int:
    n = slots(settings)
    if n == 0:
        kind = f"{settings.gpus:g} GPU" if settings.gpus else f"{settings.cpus:g} CPU"
        raise UserError(f"no node of the cluster can run a task of {kind} (--task-cpus sets the CPUs)")
    return max(2, WINDOW_PER_SLOT * n)


def show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def report(verb: str, output: str, raw: int, archive: int, s: Summary) -> None:
    bits = f", {8 * archive / raw:.3f} bits per byte" if raw else ""
    rate = raw / 1e6 / s.seconds if s.seconds else 0.0
    print(
        f"nzip-ray: {verb} {output}: {raw / 1e6:.1f} MB original, {archive / 1e6:.1f} MB archive{bits}; "
        f"{plural(s.parts, 'part')} on {plural(len(s.nodes), 'node')} in {s.seconds:.1f} s ({rate:.2f} MB/s)",
        file=sys.stderr,
    )


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        (compress if args.command == "compress" else decompress)(args)
    except (UserError, TaskFailed) as e:
        print(f"nzip-ray: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nzip-ray: interrupted; no output written", file=sys.stderr)
        return 130
    return 0
