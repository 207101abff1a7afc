"""Facts about the machine a run is on."""

from __future__ import annotations

import os


def cores() -> int:
    """CPU cores this process may run on (the container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
