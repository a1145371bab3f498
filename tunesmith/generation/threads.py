"""How many CPU threads torch uses: the cores this process may actually run on, not every core of the machine.

torch defaults to the machine's physical cores even when a container, `taskset` or a CPU quota leaves fewer; more
threads than cores makes every matmul wait for the slowest thread. An explicit OMP_NUM_THREADS (or an earlier
`torch.set_num_threads`) is left alone: on a shared machine that is the knob to turn.
"""

from __future__ import annotations

import os

import torch

_configured = False


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def configure_threads() -> int:
    """Set torch's intra-op threads from the cores available (once, unless OMP_NUM_THREADS says); return it."""
    global _configured
    if not _configured and not os.environ.get("OMP_NUM_THREADS"):
        cores = available_cores()
        if torch.get_num_threads() != cores:
            torch.set_num_threads(cores)
    _configured = True
    return torch.get_num_threads()
