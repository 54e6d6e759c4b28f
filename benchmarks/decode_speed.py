"""JPEG decoding to a training or serving size: trainlab's decode_image (DCT-scaled draft decoding)
against decoding every pixel and then resizing, which is what decode_image did before.

Both decode the same real cats-vs-dogs photos (about 500x375) to each size, single-threaded, in
alternating rounds in this process, so machine noise falls on both alike. Prints ms per image,
the ratio, and the mean absolute pixel difference between the two (of 255).

    python benchmarks/decode_speed.py [--files 200] [--rounds 3] [--sizes 64 128 224]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from trainlab.data.image_cache import DecodeSettings, decode_image, image_array

SHARED = Path(os.environ.get("TRAINLAB_SHARED_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))


def full_decode(path: Path, s: DecodeSettings) -> np.ndarray:
    """The baseline: every pixel decoded, orientation applied, then the same resize and crop."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return image_array(ImageOps.exif_transpose(im), s)


def timed(fn, files, s) -> float:
    t0 = time.perf_counter()
    for f in files:
        fn(f, s)
    return (time.perf_counter() - t0) / len(files) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    ap.add_argument("--root", default=str(SHARED / "cats-vs-dogs"))
    args = ap.parse_args(argv)
    files = sorted(Path(args.root).rglob("*.jpg"))[:args.files]
    if not files:
        raise SystemExit(f"no .jpg files under {args.root}")
    print(f"{len(files)} JPEGs from {args.root}, {args.rounds} alternating rounds, 1 thread")
    print("| size | full decode + resize (ms/image) | trainlab decode_image (ms/image) | ratio | mean abs diff (of 255) |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        s = DecodeSettings((size, size), 3, "crop")
        full, draft = [], []
        for _ in range(args.rounds):
            full.append(timed(full_decode, files, s))
            draft.append(timed(decode_image, files, s))
        diff = np.mean([np.abs(decode_image(f, s).astype(np.float64) - full_decode(f, s)).mean() for f in files[:50]])
        f, d = statistics.median(full), statistics.median(draft)
        print(f"| {size} | {f:.2f} | {d:.2f} | {f / d:.2f}x | {diff:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
