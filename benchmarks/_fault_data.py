"""Bad data for benchmarks/faults.py: IDX files, image folders, Tiny-ImageNet, video clips and
split lists, text corpora, and Python datasets of the wrong kind (harness in _fault_cases.py)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from _fault_cases import Cases, tiny

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TINY_IMAGENET = SHARED / "tiny-imagenet-200"


def data_cases(c: Cases, work: Path, base: dict) -> None:
    import trainlab

    trunc = work / "trunc"
    c.write("trunc/train-images-idx3-ubyte.gz", gzip.compress(
        (2051).to_bytes(4, "big") + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100))
    c.write("trunc/train-labels-idx1-ubyte.gz", gzip.compress(b"\0\0\x08\x01" + (60000).to_bytes(4, "big")))
    c.api("truncated IDX file", lambda: trainlab.train({**base, "data": {"name": "mnist", "root": str(trunc)}}),
          "train-images-idx3-ubyte.gz")
    c.api("missing data folder", lambda: trainlab.train(base, "data.name=imagefolder", f"data.root={work}/nope"),
          "nope")
    image_cases(c, work)
    tiny_imagenet_cases(c, work)
    video_cases(c, work, base)
    text_cases(c, work, base)
    python_dataset_cases(c, work)


def _class_folders(root: Path) -> Path:
    from PIL import Image

    for split, n in (("train", 4), ("test", 2)):
        for k, cls in enumerate(("a", "b")):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (90 * k, 20 * i, 0)).save(root / split / cls / f"{i}.png")
    return root


def image_cases(c: Cases, work: Path) -> None:
    import numpy as np
    from PIL import Image

    import trainlab

    def folder_run(name):
        return tiny(work / f"run-{name}", data={"name": "imagefolder", "root": str(work / name), "size": 8,
                                                "valid_fraction": 0.0, "max_samples": None, "on_bad_image": "error",
                                                "cache_dir": str(work / f"cache-{name}")})

    if c.wanted("corrupt JPEG"):
        jpeg = _class_folders(work / "jpeg")
        (jpeg / "train" / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    c.api("corrupt JPEG (on_bad_image=error)", lambda: trainlab.train(folder_run("jpeg")), "bad.jpg")
    if c.wanted("PNG bomb"):
        Image.new("1", (20000, 20000)).save(_class_folders(work / "pngbomb") / "train" / "a" / "bomb.png",
                                            optimize=True)
    c.api("20000x20000 PNG bomb", lambda: trainlab.train(folder_run("pngbomb")), "bomb.png")
    if c.wanted("float TIFF"):
        Image.fromarray(np.full((8, 8), 3.5, np.float32)).save(_class_folders(work / "tiff") / "train" / "a" / "f.tiff")
    c.api("float TIFF out of [0, 1]", lambda: trainlab.train(folder_run("tiff")), "f.tiff")


def _tiny_imagenet(root: Path) -> list[str]:
    """Tiny-ImageNet's original layout, 3 classes of 4 training images and their val images."""
    wnids = (TINY_IMAGENET / "wnids.txt").read_text().split()[:3]
    (root / "val" / "images").mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    shutil.copy2(TINY_IMAGENET / "words.txt", root / "words.txt")
    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True, exist_ok=True)
        for i in range(4):
            shutil.copy2(TINY_IMAGENET / "train" / w / "images" / f"{w}_{i}.JPEG", root / "train" / w / "images")
    lines = [ln for ln in (TINY_IMAGENET / "val" / "val_annotations.txt").read_text().splitlines()
             if ln.split("\t")[1] in wnids][:6]
    for ln in lines:
        shutil.copy2(TINY_IMAGENET / "val" / "images" / ln.split("\t")[0], root / "val" / "images")
    return lines


def tiny_imagenet_cases(c: Cases, work: Path) -> None:
    import trainlab

    if not TINY_IMAGENET.is_dir() or not c.wanted("Tiny-ImageNet"):
        return
    root = work / "tiny-imagenet"
    lines = _tiny_imagenet(root)
    ann = root / "val" / "val_annotations.txt"
    run = tiny(work / "run-tiny-imagenet", data={"name": "tiny_imagenet", "root": str(root), "valid_fraction": 0.0,
                                                 "max_samples": None, "cache_dir": str(work / "cache-tiny")})
    ann.write_text("\n".join(lines[:-1] + ["val_999999.JPEG\tn00000000\t0\t0\t1\t1"]) + "\n")
    c.api("Tiny-ImageNet annotation of an unknown class", lambda: trainlab.train(run), "n00000000")
    ann.write_text("\n".join(lines + [lines[0]]) + "\n")
    c.api("Tiny-ImageNet image annotated twice", lambda: trainlab.train(run), lines[0].split("\t")[0])
    ann.write_text("\n".join(lines) + "\n")
    shutil.rmtree(root / "val" / "images")
    c.api("Tiny-ImageNet in the wrong layout", lambda: trainlab.train(run), "layout")


def video_cases(c: Cases, work: Path, base: dict) -> None:
    """A corrupt clip and a too-short clip (data.on_bad_image=error); split lists naming a missing
    clip, a clip twice, a clip in both the train and test lists."""
    import numpy as np

    import trainlab
    from trainlab.data.moving_digits import make_moving_digits, write_video

    if not c.wanted("clip") and not c.wanted("video"):
        return
    root = work / "clips"
    make_moving_digits(root, train_per_class=2, test_per_class=1, frames=8)
    video = {**base, "data": {"name": "ucf101", "root": str(root), "size": 64, "channels": 1, "frames": 6,
                              "cache_frames": 8, "on_bad_image": "error", "cache": False},
             "model": {"name": "cnn_lstm"}, "task": {"name": "video"}}
    train_list = (root / "trainlist01.txt").read_text()
    test_first = (root / "testlist01.txt").read_text().splitlines()[0]
    (root / "up" / "bad.avi").write_bytes(b"RIFF\0\0\0\0AVI not a video")
    write_video(root / "up" / "short.avi", np.zeros((3, 64, 64), np.uint8))
    for name, extra, culprit in (("corrupt video file", "up/bad.avi 4", "bad.avi"),
                                 ("clip shorter than data.frames", "up/short.avi 4", "short.avi"),
                                 ("split list names a missing clip", "up/gone.avi 4", "gone.avi"),
                                 ("clip listed twice", train_list.splitlines()[0], "twice"),
                                 ("clip in both train and test lists", test_first, "testlist01.txt")):
        (root / "trainlist01.txt").write_text(train_list + extra + "\n")
        c.api(name, lambda: trainlab.train(video), culprit)
    (root / "trainlist01.txt").write_text(train_list)


def text_cases(c: Cases, work: Path, base: dict) -> None:
    import trainlab

    lm = {**base, "model": {"name": "rnn_lm"}, "task": {"name": "language_model"}, "train": {"monitor": "valid.ppl"}}
    for name, raw, culprit in (
            ("non-UTF-8 corpus", "caf\xe9\n".encode("latin-1"), "train.txt"),
            ("UTF-16 corpus", "the cat\nsat on the mat\n".encode("utf-16"), "UTF-16"),
            ("control characters in a corpus", "a line\none with a \x00 null\n".encode(), "line 2")):
        folder = work / name.replace(" ", "-")
        c.write(f"{folder.name}/train.txt", raw)
        c.api(name, lambda: trainlab.train({**lm, "data": {"name": "text", "root": str(folder)}}), culprit)


def python_dataset_cases(c: Cases, work: Path) -> None:
    import torch
    from PIL import Image

    import trainlab

    def of(sample):
        class Bad(torch.utils.data.Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return sample()

        return Bad()

    for name, sample, culprit in (("Python dataset yielding PIL images", lambda: (Image.new("L", (6, 6)), 0), "Image"),
                                  ("Python dataset with string labels", lambda: (torch.zeros(1, 6, 6), "cat"), "'cat'"),
                                  ("Python dataset of non-pairs", lambda: torch.zeros(1, 6, 6), "pair")):
        c.api(name, lambda: trainlab.train(tiny(work / "run-pydata"), datasets={"train": of(sample)},
                                           class_names=["a", "b"]), culprit)
