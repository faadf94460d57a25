"""What the benchmarks measure a command by: a fresh process, its wall time and peak memory.

Imported by the benchmark scripts beside it (``python benchmarks/NAME.py`` puts this folder on
the import path).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

# Runs a command and prints its peak resident memory (KiB) last on stderr: a fresh parent per
# measurement, so no earlier child's peak is counted.
PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(done.returncode)
"""


def child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak resident MiB and standard output of a fresh process; a command that
    fails ends the benchmark with its error."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK, *args],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"CI": "1"} | (env or {}),
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:4])} failed:\n{result.stderr}")
    peak = int(result.stderr.strip().splitlines()[-1]) / 1024
    return wall, peak, result.stdout
