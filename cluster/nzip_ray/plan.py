"""Where files are cut into ranges: at whole lockstep groups, so that cutting adds no short
chunk in the middle of a file (only a file's last range is shorter)."""
from dataclasses import dataclass

MIB = 1 << 20
# nzip's chunks per lockstep group when --seqs is not given (src/pipeline/mod.rs, DEFAULT_SEQS).
DEFAULT_SEQS = 16
# Levels whose chunks are coded by the byte model alone: chunks are independent, so a "group"
# is one chunk (src/pipeline/levels.rs).
BYTE_MODEL_LEVELS = (1, 2)
# Members travel through Ray's object store, and a few of them are in flight at once: a range
# must stay well below a node's object store.
MAX_RANGE_MIB = 256


@dataclass(frozen=True)
class Range:
    """Bytes start..end of one input file."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def group_bytes(level: int, chunk_target: int, seqs: int | None) -> int:
    """Input bytes of one lockstep group at this level."""
    if level in BYTE_MODEL_LEVELS:
        return chunk_target
    return chunk_target * (seqs or DEFAULT_SEQS)


def range_bytes(range_mib: float, group: int) -> int:
    """Bytes per range: `range_mib` rounded down to whole groups, at least one group."""
    return max(1, int(range_mib * MIB) // group) * group


def cut(size: int, step: int) -> list[Range]:
    """Consecutive ranges of `step` bytes covering 0..size; an empty file is one empty range, so
    that it still gets its (empty) archive."""
    if size == 0:
        return [Range(0, 0)]
    return [Range(start, min(start + step, size)) for start in range(0, size, step)]
