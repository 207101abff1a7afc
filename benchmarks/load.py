"""Keep cores busy while a command runs: "make test under load", repeatable.

Starts ``--procs`` processes that spin on the CPU (pure Python, no memory to
speak of), each ending by itself after ``--seconds`` at most, runs COMMAND
(if given), prints its wall time, then stops the load and exits with the
command's exit status.  Without COMMAND it only loads the machine, until
``--seconds`` or Ctrl-C.

Usage::

    python benchmarks/load.py [--procs 2] [--seconds 3600] [--repeat 1] [COMMAND ...]
    python benchmarks/load.py --procs 2 --repeat 3 -- make test
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time


def spin(seconds: float) -> None:
    """Busy-loop for ``seconds`` (bounded, so a forgotten load never outlives its purpose)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for _ in range(10_000):
            n += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2, help="busy processes (default 2)")
    parser.add_argument("--seconds", type=float, default=3600.0, help="upper bound on the load's life")
    parser.add_argument("--repeat", type=int, default=1, help="run COMMAND this many times in a row")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command to run under load")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    busy = [mp.Process(target=spin, args=(args.seconds,), daemon=True) for _ in range(args.procs)]
    for p in busy:
        p.start()
    print(f"load: {args.procs} busy processes for at most {args.seconds:.0f} s", file=sys.stderr, flush=True)
    status = 0
    try:
        if not command:
            for p in busy:
                p.join()
            return 0
        for i in range(args.repeat):
            start = time.monotonic()
            status = subprocess.call(command)
            print(f"load: run {i + 1}/{args.repeat} of {' '.join(command)!r}: exit {status}, "
                  f"{time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
            if status:
                break
    except KeyboardInterrupt:
        status = 130
    finally:
        for p in busy:
            p.terminate()
            p.join()
    return status


if __name__ == "__main__":
    sys.exit(main())
