"""PIN weakness classifier: what it flags of real and of random PINs, and what its list costs.

    python benchmarks/pin_classes.py
    python benchmarks/pin_classes.py --baseline /tmp/old/src --repeat 5

Prints (docs/detection.md):

- the share of the most common 6-digit PINs of a leaked Chinese password list that
  ``posaudit pins check`` flags, with the blocklist and by the rules alone. The list
  (``benchmarks/heldout_pins_netease.txt``, NetEase 2015) is held out: the blocklist is built
  from another leak (``src/posaudit/common_pins.txt``, Xato 10 million passwords);
- the share of uniformly random PINs it flags, exactly (all 10^6 of them), by class;
- what a run pays to build the exclusion list (class every PIN, digest the weak ones under the
  key, 100 operator numbers): wall time in a fresh child process each, median and range; with
  ``--baseline`` (the ``src`` folder of another checkout) each timing of this code is followed
  by one of that code, so that a slow minute of the shared machine shows in both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

from posaudit.pins import NO_CLASS, WEAKNESS_CLASSES, _class_codes, classify_pins

HELD_OUT = Path(__file__).with_name("heldout_pins_netease.txt")
SRC = Path(__file__).parents[1] / "src"
TOPS = (100, 1000)
BUILD_EXCLUSION_LIST = """
import time
from posaudit.pins import exclusion_list
t = time.perf_counter()
listed = exclusion_list(key=b"benchmark-key", operator_nos=[f"{n:02d}" for n in range(100)])
print(time.perf_counter() - t, listed.height)
"""


def held_out_pins() -> list[str]:
    lines = HELD_OUT.read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def build_time(src: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", BUILD_EXCLUSION_LIST],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, rows = out.stdout.split()
    return float(seconds), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="the src folder of code to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    pins = held_out_pins()
    print("Held-out list: NetEase 2015, most common 6-digit PINs (blocklist from Xato 10M).\n")
    print("| PINs | flagged | flagged by the rules alone | not flagged |")
    print("| --- | ---: | ---: | --- |")
    for top in TOPS:
        classes = classify_pins(pins[:top])
        flagged = sum(c != NO_CLASS for c in classes)
        by_rules = sum(c not in (NO_CLASS, "common_pin") for c in classes)
        missed = [p for p, c in zip(pins[:top], classes, strict=True) if c == NO_CLASS]
        shown = ", ".join(missed) if len(missed) <= 10 else f"{len(missed)} PINs"
        print(f"| top {top} | {flagged / top:.1%} | {by_rules / top:.1%} | {shown} |")
    top_classes = Counter(classify_pins(pins[:100]))
    print("\nTop 100 by class: " + ", ".join(f"{k} {v}" for k, v in top_classes.most_common()))

    codes = _class_codes()
    print(f"\nUniformly random PINs flagged: {(codes > 0).mean():.2%} of all 10^6.\n")
    print("| class | PINs | share of 10^6 |")
    print("| --- | ---: | ---: |")
    counts = Counter(codes[codes > 0].tolist())
    for code, name in enumerate(WEAKNESS_CLASSES[:-1], start=1):
        print(f"| {name} | {counts[code]:,} | {counts[code] / 1e6:.2%} |")

    runs: dict[str, list[float]] = {"this code": [], "baseline": []}
    rows: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, src in (("this code", SRC), ("baseline", args.baseline)):
            if src is not None:
                seconds, rows[name] = build_time(src)
                runs[name].append(seconds)
    print("\n| exclusion list | rows | build s (median, range) |")
    print("| --- | ---: | --- |")
    for name, times in runs.items():
        if times:
            spread = f"{min(times):.2f}-{max(times):.2f}"
            print(f"| {name} | {rows[name]:,} | {statistics.median(times):.2f} ({spread}) |")


if __name__ == "__main__":
    main()
