"""Progress that also reads in a log: where stdout is not a terminal (a piped `make demo`, CI, `nohup`), a line
every `every` items with the rate and the time left, instead of a live bar that a log never shows."""

from __future__ import annotations

import sys
import time
from typing import Callable


def log_lines(label: str, every: int = 10, stream=None, interactive: bool | None = None
              ) -> Callable[[int, int], None]:
    """An `on_progress(done, total)` callback printing `label: 40/80 items · 1.3 items/s · ETA 31 s` now and
    then; it prints nothing when the output is a terminal (a live bar shows it there)."""
    out = stream or sys.stdout
    live = out.isatty() if interactive is None else interactive
    started = time.perf_counter()
    last = [0]

    def report(done: int, total: int) -> None:
        if live or done == last[0] or (done - last[0] < every and done < total):
            return
        last[0] = done
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        print(f"{label}: {done}/{total} items · {rate:.2f} items/s · ETA {eta:.0f} s", file=out, flush=True)

    return report


def both(*callbacks: Callable[[int, int], None]) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        for callback in callbacks:
            callback(done, total)
    return report
