"""Running nzip-ray as a user would (its own process, nzip from NZIP_BIN) and nzip alone, to
check what nzip-ray wrote."""
import json
import os
import subprocess
import sys
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parents[1]


def nzip_ray(
    *args, nzip_bin: str, extra_env: dict | None = None, **popen
) -> subprocess.CompletedProcess | subprocess.Popen:
    """Runs `nzip-ray ARGS` in a process of its own, as a user would, with nzip taken from
    NZIP_BIN; with `popen` options it returns the running process instead of waiting."""
    env = dict(os.environ, NZIP_BIN=nzip_bin, **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLUSTER_DIR), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "nzip_ray", *map(str, args)]
    if popen:
        return subprocess.Popen(command, env=env, **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True)


def members(nzip_bin: str, archive: Path) -> list[dict]:
    info = json.loads(subprocess.run([nzip_bin, "info", "--json", str(archive)], capture_output=True, check=True).stdout)
    return info.get("members", [info])


def plain_decode(nzip_bin: str, archive: Path, *options) -> bytes:
    """The archive decoded by nzip alone, no Ray."""
    return subprocess.run([nzip_bin, "-d", "-c", *map(str, options), str(archive)], capture_output=True, check=True).stdout
