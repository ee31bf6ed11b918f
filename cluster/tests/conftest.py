"""Fixtures of the cluster tests: the nzip binary, a real Ray cluster of three node processes on
this machine, and the tiny test model."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nzip_ray.local_cluster import LocalCluster

CLUSTER_DIR = Path(__file__).resolve().parents[1]
REPO = CLUSTER_DIR.parent


@pytest.fixture(scope="session")
def nzip_bin() -> str:
    path = os.environ.get("NZIP_BIN", str(REPO / "target" / "release" / "nzip"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"no nzip binary at {path}: build it (cargo build --release) or set NZIP_BIN")
    return os.path.abspath(path)


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes, one CPU each, stopped after the module's tests whatever
    happened."""
    with LocalCluster(workers=2) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_model(nzip_bin, tmp_path_factory) -> Path:
    """The tests' tiny random-weight model (scripts/make-tiny-model.py), made from the default
    model's tokenizer; nzip fetches the default model if it is not cached."""
    fetched = subprocess.run([nzip_bin, "model", "fetch"], capture_output=True, text=True, check=True)
    source = re.search(r" at (.+)$", (fetched.stdout + fetched.stderr).strip(), re.M).group(1)
    dest = tmp_path_factory.mktemp("model") / "nzip-tiny.gguf"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make-tiny-model.py"), source, str(dest)], check=True)
    return dest
