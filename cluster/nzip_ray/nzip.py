"""Finding the nzip binary and asking it, on the driver's machine, what the driver must know:
the chunk size a level uses and where the members of an archive lie."""
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The build of the source tree this package sits in (cluster/nzip_ray/ -> the repository root).
REPO_BINARY = Path(__file__).resolve().parents[2] / "target" / "release" / "nzip"


class UserError(Exception):
    """A problem the user can fix (missing input, bad option, no cluster): one line, exit 1."""


def find_binary(explicit: str | None) -> str:
    """The nzip binary to run, as an absolute path: `--nzip PATH`, else $NZIP_BIN, else `nzip`
    on PATH, else the repository's target/release/nzip. A path that was named but is not an
    executable is an error rather than a reason to fall back, so a typo never runs another build.
    """
    named = explicit or os.environ.get("NZIP_BIN")
    if named:
        found = shutil.which(named) if os.sep not in named else named
        if not found or not os.access(found, os.X_OK) or os.path.isdir(found):
            origin = "--nzip" if explicit else "$NZIP_BIN"
            raise UserError(f"nzip binary not found or not executable: {named} (from {origin})")
        return os.path.abspath(found)
    on_path = shutil.which("nzip")
    if on_path:
        return os.path.abspath(on_path)
    if os.access(REPO_BINARY, os.X_OK):
        return str(REPO_BINARY)
    raise UserError(
        "no nzip binary: pass --nzip PATH, set NZIP_BIN, put nzip on PATH, "
        f"or build {REPO_BINARY} (cargo build --release)"
    )


def run(binary: str, args: list[str], stdin: bytes | None = None) -> bytes:
    """Runs nzip and returns its standard output; a failure raises UserError with nzip's own
    message (it names the problem), since every failure here comes from the user's options or
    files."""
    done = subprocess.run([binary, *args], input=stdin, capture_output=True)
    if done.returncode != 0:
        raise UserError(nzip_message(done.stderr, done.returncode))
    return done.stdout


def nzip_message(stderr: bytes, returncode: int) -> str:
    """nzip's error, shortened to what a person reads: its last non-empty lines."""
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return f"nzip exited with status {returncode}"
    return "\n".join(lines[-3:])


def chunk_target(binary: str, compress_options: list[str], sample: Path) -> int:
    """The chunk size nzip uses with these options, read from the header of an archive of no
    bytes (nzip writes the header's chunk target even then). Asking nzip keeps the level table
    in one place, and it checks the options before any task is sent."""
    empty = run(binary, ["compress", "-q", *compress_options, "--input-range", "0..0", "-c", str(sample)])
    return int(json.loads(run(binary, ["info", "--json", "-"], stdin=empty))["chunk_target"])


@dataclass(frozen=True)
class Member:
    """One whole archive inside a (possibly concatenated) .nz file."""

    offset: int
    archive_bytes: int
    original_bytes: int
    # Whether it names a model (it holds LLM-coded chunks, which a GPU decodes faster).
    has_model: bool


def members(binary: str, archive: Path) -> list[Member]:
    """The members of an archive, in order, from `nzip info --json` (a one-member archive is
    described at the top level, several under "members")."""
    # nzip info's errors name the file.
    info = json.loads(run(binary, ["info", "--json", str(archive)]))
    described = info.get("members", [info])
    found, offset = [], 0
    for m in described:
        size, original = int(m["archive_bytes"]), int(m["original_bytes"])
        found.append(Member(offset, size, original, m.get("model") is not None))
        offset += size
    return found
