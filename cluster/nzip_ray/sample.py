"""Real-ish inputs of any size for the tests and the benchmark: slices of the repository's corpus
files and its own sources, in a seeded random order, with some random (incompressible) bytes."""
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# One piece in this many is random bytes: the byte model must store those chunks, not code them.
RANDOM_EVERY = 12
MIN_PIECE = 16 << 10
MAX_PIECE = 1 << 20


def sources(repo: Path = REPO) -> list[bytes]:
    """Every corpus file (text, XML, HTML, URLs, PDF, JPEG, protobuf, a binary table) and the
    repository's Rust and Markdown sources."""
    files = sorted((repo / "corpus").iterdir()) + sorted(repo.glob("src/**/*.rs")) + sorted(repo.glob("docs/*.md"))
    found = [f.read_bytes() for f in files if f.is_file() and f.stat().st_size > 0]
    if not found:
        raise FileNotFoundError(f"no corpus under {repo}")
    return found


def write(path: Path, size: int, seed: int = 21, repo: Path = REPO) -> None:
    """Writes `size` bytes to `path`, the same bytes for the same seed and sources."""
    pieces = sources(repo)
    rng = random.Random(seed)
    written = 0
    with open(path, "wb") as out:
        while written < size:
            length = min(rng.randint(MIN_PIECE, MAX_PIECE), size - written)
            if rng.randrange(RANDOM_EVERY) == 0:
                piece = rng.randbytes(length)
            else:
                source = rng.choice(pieces)
                start = rng.randrange(len(source))
                piece = (source[start:] + source)[:length]
                while len(piece) < length:
                    piece += source[: length - len(piece)]
            out.write(piece)
            written += len(piece)
