"""Minor page faults of re-allocating a freed 64 MiB tensor, with and without train.keep_freed_memory.

    python benchmarks/malloc_faults.py [--repeats 10]

Each mode runs in a fresh process (the setting is process-wide and one-way). By default glibc
serves a block above its mmap threshold with a fresh mapping, so every allocation faults in its
16 k pages again; with the setting the heap is reused. Absolute counts depend on the kernel and
allocator, so this is a measurement, not a test; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import resource, sys, torch
from trainlab.engine.device import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(3):  # warm-up: the heap grows to its working size
    x = torch.ones(64 << 18)
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(int(sys.argv[2])):
    x = torch.ones(64 << 18)  # 64 MiB, above glibc's largest mmap threshold
    del x
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str, repeats: int) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(repeats)], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    _, default = faults("default", args.repeats)
    applied, kept = faults("keep", args.repeats)
    print(f"minor faults over {args.repeats} allocations of 64 MiB: default {default:,}, "
          f"keep_freed_memory {kept:,} (applied: {applied}); ratio {default / max(kept, 1):.1f}x")


if __name__ == "__main__":
    main()
