"""A one-line progress display on stderr: bytes done, throughput across the cluster, ranges
done and the nodes that did them; silent unless stderr is a terminal."""
import sys
import time

BAR_WIDTH = 24
REDRAW_SECONDS = 0.25


class Progress:
    """Counts finished parts (ranges or members); `enabled` draws the line. The driver calls
    `part_done` as each part arrives and `tick` while it waits, so the rate keeps moving."""

    def __init__(self, total_bytes: int, total_parts: int, enabled: bool):
        self.total_bytes = total_bytes
        self.total_parts = total_parts
        self.enabled = enabled
        self.done_bytes = 0
        self.done_parts = 0
        self.nodes: set[str] = set()
        self.started = time.monotonic()
        self.drawn_at = 0.0

    def part_done(self, raw_bytes: int, node: str) -> None:
        self.done_bytes += raw_bytes
        self.done_parts += 1
        self.nodes.add(node)
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.drawn_at < REDRAW_SECONDS:
            return
        self.drawn_at = now
        elapsed = max(now - self.started, 1e-9)
        fraction = self.done_bytes / self.total_bytes if self.total_bytes else 1.0
        filled = int(fraction * BAR_WIDTH)
        line = (
            f"nzip-ray [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
            f"{self.done_bytes / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB "
            f"{self.done_bytes / 1e6 / elapsed:.2f} MB/s "
            f"{self.done_parts}/{self.total_parts} parts, {len(self.nodes)} nodes"
        )
        sys.stderr.write("\r" + line + "\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.drawn_at:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
