"""Image-file datasets on small real samples from ../shared/data: layouts, cache, bad files."""

import logging
import os
import shutil
import tarfile
import zipfile

import pytest
import torch

import trainlab
from trainlab.api import make_loaders
from trainlab.config import Config, DataConfig
from trainlab.data import BatchTransform, build_data
from trainlab.data import _cache_files, image_cache
from trainlab.data.prepare import extract_archive, prepare_catsdogs, prepare_tiny_imagenet
from trainlab.errors import DataError

from conftest import SHARED

CATSDOGS = SHARED / "cats-vs-dogs"
TINY = SHARED / "tiny-imagenet-200"
needs_catsdogs = pytest.mark.skipif(not CATSDOGS.is_dir(), reason=f"{CATSDOGS} not found")
needs_tiny = pytest.mark.skipif(not TINY.is_dir(), reason=f"{TINY} not found")


@pytest.fixture
def catsdogs_sample(tmp_path):
    """training_set/{cats,dogs} x 8 and test_set/{cats,dogs} x 4, copied from the real data."""
    root = tmp_path / "cd"
    for split, n in (("training_set", 8), ("test_set", 4)):
        for cls in ("cats", "dogs"):
            files = sorted((CATSDOGS / split / cls).glob("*.jpg"))[:n]
            (root / split / cls).mkdir(parents=True)
            for f in files:
                shutil.copy2(f, root / split / cls / f.name)
    return root


def _flatten(class_folders, dst):
    """Kaggle's layout: every training image in one folder, the class in the file name."""
    dst.mkdir()
    for p in (class_folders / "training_set").rglob("*.jpg"):
        shutil.copy2(p, dst / p.name)
    return dst


def _cfg(root, tmp_path, **kw):
    base = dict(name="imagefolder", root=str(root), size=32, valid_fraction=0.25,
                cache_dir=str(tmp_path / "cache"))
    return DataConfig(**{**base, **kw})


@needs_catsdogs
def test_class_folders_with_split_folders(catsdogs_sample, tmp_path):
    b = build_data(_cfg(catsdogs_sample, tmp_path))
    assert b.class_names == ["cats", "dogs"]
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 12, "valid": 4, "test": 8}
    assert b.input_shape == (3, 32, 32)
    test = b.splits["test"]
    for path, label in zip(test.ids, test.labels.tolist()):
        assert os.path.basename(os.path.dirname(path)) == b.class_names[label]


@needs_catsdogs
def test_filename_prefix_layout(catsdogs_sample, tmp_path):
    flat = _flatten(catsdogs_sample, tmp_path / "flat")
    b = build_data(_cfg(flat, tmp_path, name="catsdogs", test_fraction=0.25))
    assert b.class_names == ["cat", "dog"]
    for path, label in zip(b.splits["train"].ids, b.splits["train"].labels.tolist()):
        assert os.path.basename(path).startswith(b.class_names[label] + ".")


@pytest.fixture
def tiny_sample(tmp_path):
    """Tiny-ImageNet's original layout with 3 classes: 4 train images each, their val images."""
    root = tmp_path / "tiny"
    wnids = (TINY / "wnids.txt").read_text().split()[:3]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    shutil.copy2(TINY / "words.txt", root / "words.txt")
    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True)
        for i in range(4):
            shutil.copy2(TINY / "train" / w / "images" / f"{w}_{i}.JPEG", root / "train" / w / "images")
    lines = [ln for ln in (TINY / "val" / "val_annotations.txt").read_text().splitlines()
             if ln.split("\t")[1] in wnids][:9]
    for ln in lines:
        shutil.copy2(TINY / "val" / "images" / ln.split("\t")[0], root / "val" / "images")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root, wnids, lines


@needs_tiny
def test_tiny_imagenet_original_layout(tiny_sample, tmp_path):
    root, wnids, lines = tiny_sample
    b = build_data(_cfg(root, tmp_path, name="tiny_imagenet", size=None, valid_fraction=0.0))
    assert len(b.splits["train"]) == 12 and len(b.splits["test"]) == len(lines)
    assert b.input_shape == (3, 64, 64)
    assert all(w in name for w, name in zip(wnids, b.class_names))
    assert b.class_names[0] != wnids[0]  # a readable name from words.txt, not only the wnid
    expected = {ln.split("\t")[0]: wnids.index(ln.split("\t")[1]) for ln in lines}
    got = {os.path.basename(p): y for p, y in zip(b.splits["test"].ids, b.splits["test"].labels.tolist())}
    assert got == expected


@needs_tiny
def test_tiny_imagenet_wrong_layout_is_a_clear_error(tiny_sample, tmp_path):
    root, _, lines = tiny_sample
    ann = root / "val" / "val_annotations.txt"
    ann.write_text("\n".join(lines[:-1] + ["val_999999.JPEG\tn00000000\t0\t0\t1\t1"]) + "\n")
    with pytest.raises(DataError, match=r"val_annotations.txt does not match .*class n00000000 is not in wnids"):
        build_data(_cfg(root, tmp_path, name="tiny_imagenet", size=None, valid_fraction=0.0))
    shutil.rmtree(root / "val" / "images")
    with pytest.raises(DataError, match="not in Tiny-ImageNet's original layout"):
        build_data(_cfg(root, tmp_path, name="tiny_imagenet", size=None, valid_fraction=0.0))


@needs_catsdogs
def test_cache_is_reused_and_rebuilt_when_a_file_changes(catsdogs_sample, tmp_path, monkeypatch):
    cfg = _cfg(catsdogs_sample, tmp_path)
    first = build_data(cfg)
    calls = []
    real = image_cache.decode_image
    monkeypatch.setattr(image_cache, "decode_image", lambda *a: calls.append(a) or real(*a))
    again = build_data(cfg)
    assert calls == [] and torch.equal(again.splits["train"].images, first.splits["train"].images)
    victim = sorted((catsdogs_sample / "training_set" / "cats").glob("*.jpg"))[0]
    other = sorted((catsdogs_sample / "training_set" / "dogs").glob("*.jpg"))[0]
    shutil.copy2(other, victim)  # same name, new content and mtime
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    rebuilt = build_data(cfg)
    assert len(calls) > 0
    assert not torch.equal(rebuilt.splits["train"].images, first.splits["train"].images)


@needs_catsdogs
def test_corrupt_image_is_skipped_with_a_warning_or_an_error(catsdogs_sample, tmp_path, caplog):
    bad = catsdogs_sample / "training_set" / "cats" / "cat.broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        b = build_data(_cfg(catsdogs_sample, tmp_path, valid_fraction=0.0))
    assert len(b.splits["train"]) == 16 and "cat.broken.jpg" in caplog.text and "skipped 1" in caplog.text
    with pytest.raises(DataError, match="cat.broken.jpg: cannot decode image"):
        build_data(_cfg(catsdogs_sample, tmp_path, valid_fraction=0.0, on_bad_image="error",
                        cache_dir=str(tmp_path / "cache2")))


@needs_catsdogs
def test_empty_class_folder_and_one_class_are_errors(catsdogs_sample, tmp_path):
    (catsdogs_sample / "training_set" / "birds").mkdir()
    with pytest.raises(DataError, match="empty class folder.*birds"):
        build_data(_cfg(catsdogs_sample, tmp_path))
    shutil.rmtree(catsdogs_sample / "training_set" / "birds")
    shutil.rmtree(catsdogs_sample / "training_set" / "dogs")
    shutil.rmtree(catsdogs_sample / "test_set")
    with pytest.raises(DataError, match="1 class"):
        build_data(_cfg(catsdogs_sample, tmp_path))


@needs_catsdogs
def test_different_sizes_need_data_size(catsdogs_sample, tmp_path):
    with pytest.raises(DataError, match="different sizes.*set data.size"):
        build_data(_cfg(catsdogs_sample, tmp_path, size=None))


@needs_catsdogs
def test_cache_path_and_dataloader_path_give_identical_batches(catsdogs_sample, tmp_path):
    cfg = Config(data=_cfg(catsdogs_sample, tmp_path, batch_size=5, crop_padding=2, hflip=True,
                           random_resized_crop=True, num_workers=2, eval_batch_size=3))
    cached = build_data(cfg.data)
    cfg_files = Config(data=_cfg(catsdogs_sample, tmp_path, batch_size=5, crop_padding=2, hflip=True,
                                 random_resized_crop=True, num_workers=2, eval_batch_size=3,
                                 cache_max_gb=0.0))
    files = build_data(cfg_files.data)
    assert type(files.splits["train"]).__name__ == "FileImageSet"
    a = make_loaders(cfg, cached, torch.device("cpu"))
    b = make_loaders(cfg_files, files, torch.device("cpu"))
    for split in ("train", "test"):
        for epoch in (0, 1):
            batches_a, batches_b = list(a[split].iterate(epoch)), list(b[split].iterate(epoch))
            assert len(batches_a) == len(batches_b) > 1
            for x, y in zip(batches_a, batches_b):
                assert torch.equal(x["index"], y["index"]) and torch.equal(x["targets"], y["targets"])
                assert torch.allclose(x["inputs"], y["inputs"], atol=1e-5)


@needs_catsdogs
def test_train_predict_on_class_folders(catsdogs_sample, tmp_path, capsys, monkeypatch):
    from trainlab.cli import main

    recipe = {"data": {"name": "imagefolder", "root": str(catsdogs_sample), "size": 32, "batch_size": 8,
                       "valid_fraction": 0.25, "cache_dir": str(tmp_path / "cache"), "hflip": True},
              "model": {"name": "resnet18", "init_args": {"stem": "small"}},
              "train": {"epochs": 1}, "run": {"dir": str(tmp_path / "run"), "progress": False}}
    run = trainlab.train(recipe)
    img = sorted((catsdogs_sample / "test_set" / "dogs").glob("*.jpg"))[0]
    assert main(["predict", str(run.best_checkpoint), str(img), "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    assert str(img) in out and ("cats" in out and "dogs" in out)
    # predict decodes a file exactly as training did (centre crop, not a stretch): same probabilities
    from trainlab.inference.predict import predict_files

    model = trainlab.load(run.best_checkpoint)
    test = build_data(DataConfig(**run.config.data.__dict__)).splits["test"]
    i = test.ids.index(str(img))
    x = BatchTransform(model.trainlab_meta["mean"], model.trainlab_meta["std"])(test.images[i:i + 1], False, None)
    with torch.no_grad():
        expected = model(x).softmax(1)[0]
    (top_name, top_p), *_ = predict_files(model, [img])[0]["top"]
    assert top_p == pytest.approx(float(expected.max()), abs=1e-5)
    assert top_name == model.class_names[int(expected.argmax())]
    # nothing is overwritten: an --out that exists is refused, the default name moves on to a free one
    before = (tmp_path / "p.csv").read_text()
    assert main(["predict", str(run.best_checkpoint), str(img), "--out", str(tmp_path / "p.csv")]) == 2
    assert (tmp_path / "p.csv").read_text() == before
    monkeypatch.chdir(tmp_path)
    (tmp_path / "predictions.csv").write_text("my own table")
    assert main(["predict", str(run.best_checkpoint), str(img)]) == 0
    assert (tmp_path / "predictions.csv").read_text() == "my own table" and (tmp_path / "predictions-2.csv").exists()
    with pytest.raises(SystemExit):
        main(["predict", str(run.best_checkpoint), str(img), "--topk", "0"])


@needs_tiny
def test_prepare_tiny_imagenet_leaves_originals(tiny_sample, tmp_path):
    root, wnids, lines = tiny_sample
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    counts = prepare_tiny_imagenet(root, tmp_path / "folders")
    assert counts == {"train": 12, "val": len(lines)}
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    b = build_data(_cfg(tmp_path / "folders", tmp_path, size=None, valid_fraction=0.0))
    assert b.class_names == sorted(wnids) and len(b.splits["valid"]) == len(lines)


@needs_catsdogs
def test_prepare_catsdogs_from_flat_folder(catsdogs_sample, tmp_path):
    flat = _flatten(catsdogs_sample, tmp_path / "kaggle_train")
    counts = prepare_catsdogs(flat, tmp_path / "out")
    assert counts == {"train/cat": 8, "train/dog": 8}
    assert len(list(flat.iterdir())) == 16  # nothing moved
    with pytest.raises(DataError, match="must be outside the source"):
        prepare_catsdogs(flat, flat / "inside")


def test_archive_extraction_refuses_traversal_and_links(tmp_path):
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as zf:
        zf.writestr("ok/a.txt", "fine")
        zf.writestr("../../escaped.txt", "bad")
    with pytest.raises(DataError, match="outside"):
        extract_archive(evil_zip, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    evil_tar = tmp_path / "evil.tar.gz"
    with tarfile.open(evil_tar, "w:gz") as tf:
        link = tarfile.TarInfo("data/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(DataError, match="link or special file"):
        extract_archive(evil_tar, tmp_path / "out2")
    good = tmp_path / "good.tar"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.txt").write_text("x")
    with tarfile.open(good, "w") as tf:
        tf.add(tmp_path / "src" / "x.txt", arcname="d/x.txt")
    assert [p.name for p in extract_archive(good, tmp_path / "out3")] == ["x.txt"]


@needs_tiny
def test_an_image_annotated_twice_is_refused_naming_the_lines(tiny_sample, tmp_path):
    root, wnids, lines = tiny_sample
    ann = root / "val" / "val_annotations.txt"
    name, wnid = lines[0].split("\t")[:2]
    other = next(w for w in wnids if w != wnid)
    ann.write_text("\n".join(lines + [f"{name}\t{other}\t0\t0\t1\t1"]) + "\n")
    with pytest.raises(DataError, match=rf"line {len(lines) + 1}: {name} is annotated again with another class "
                                        rf"\({wnid} there, {other} here\), first on line 1"):
        build_data(_cfg(root, tmp_path, name="tiny_imagenet", size=None, valid_fraction=0.0))
    ann.write_text("\n".join(lines + [lines[0]]) + "\n")
    with pytest.raises(DataError, match=rf"{name} is annotated again, first on line 1"):
        build_data(_cfg(root, tmp_path, name="tiny_imagenet", size=None, valid_fraction=0.0))


@needs_catsdogs
@pytest.mark.parametrize("damage", ["truncate", "zero", "edit", "metadata"])
def test_a_damaged_cache_is_detected_and_rebuilt(catsdogs_sample, tmp_path, monkeypatch, caplog, damage):
    cfg = _cfg(catsdogs_sample, tmp_path)
    first = build_data(cfg)
    data = next((tmp_path / "cache").glob("*-train-*.u8"))
    raw = bytearray(data.read_bytes())
    if damage == "truncate":
        data.write_bytes(raw[: len(raw) // 2])
    elif damage == "zero":
        data.write_bytes(bytes(len(raw)))
    elif damage == "edit":  # one byte, in place, size and name unchanged
        raw[len(raw) // 3] ^= 0xFF
        data.write_bytes(raw)
    else:
        data.with_suffix(".json").write_text("{not json")
    calls = []
    real = image_cache.decode_image
    monkeypatch.setattr(image_cache, "decode_image", lambda *a: calls.append(a) or real(*a))
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        again = build_data(cfg)
    assert calls and "is damaged" in caplog.text
    assert torch.equal(again.splits["train"].images, first.splits["train"].images)


@needs_catsdogs
def test_a_full_disk_while_writing_the_cache_leaves_no_temp_files(catsdogs_sample, tmp_path, monkeypatch, caplog):
    import errno

    def full(arr, path):
        with open(path, "wb") as fh:
            fh.write(b"\0" * 1000)  # part of it written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_cache_files, "_write_array", full)
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        bundle = build_data(_cfg(catsdogs_sample, tmp_path))
    assert len(bundle.splits["train"]) > 0 and "No space left" in caplog.text  # the run goes on, uncached
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_an_archive_bomb_or_an_existing_file_is_refused_and_nothing_is_kept(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small.txt", "fine")
        zf.writestr("zeros.bin", bytes(8 << 20))  # 8 MiB of zeros: a few kB compressed
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError, match="inflates to more than 1,048,576 bytes.*--max-bytes"):
        extract_archive(bomb, tmp_path / "out", max_bytes=1 << 20)
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # what it wrote is gone
    monkeypatch.setenv("TRAINLAB_MAX_EXTRACT_BYTES", str(16 << 20))  # raised by the user
    assert sorted(p.name for p in extract_archive(bomb, tmp_path / "out")) == ["small.txt", "zeros.bin"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "small.txt").write_text("my own file")
    with pytest.raises(DataError, match="would replace .*small.txt, which exists"):
        extract_archive(bomb, tmp_path / "mine")
    assert (tmp_path / "mine" / "small.txt").read_text() == "my own file"


@needs_tiny
def test_tiny_imagenets_labelled_val_set_is_named_where_test_is_shown(tiny_sample, tmp_path, capsys):
    root, _, _ = tiny_sample
    recipe = {"data": {"name": "tiny_imagenet", "root": str(root), "valid_fraction": 0.25, "batch_size": 4,
                       "cache_dir": str(tmp_path / "cache")},
              "model": {"name": "convnet", "init_args": {"channels": [4], "hidden": [8]}},
              "train": {"epochs": 1}, "run": {"dir": str(tmp_path / "run"), "progress": False, "tensorboard": False}}
    run = trainlab.train(recipe)
    named = "Tiny-ImageNet's labelled validation set (val/)"
    assert run.metrics[-1]["split_name"] == named
    from trainlab.cli import main

    assert main(["eval", str(run.best_checkpoint), "--out", str(tmp_path / "e.json")]) == 0
    assert f"on test = {named}" in capsys.readouterr().out
    from trainlab.analysis.report import write_report

    write_report([run.dir], tmp_path / "r.html")
    assert f"test = {named}" in (tmp_path / "r.html").read_text().replace("&#x27;", "'")


def test_extracting_into_a_file_or_a_file_that_is_no_archive_is_one_clear_line(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.txt", "x")
    (tmp_path / "mine.txt").write_text("my own file")
    with pytest.raises(DataError, match="into .*mine.txt: it is a file; give a folder"):
        extract_archive(archive, tmp_path / "mine.txt")
    assert (tmp_path / "mine.txt").read_text() == "my own file"
    (tmp_path / "notes.zip").write_text("my notes, not an archive\n")
    with pytest.raises(DataError, match="notes.zip: not a zip or tar archive") as err:
        extract_archive(tmp_path / "notes.zip", tmp_path / "out")
    assert "\n" not in str(err.value)  # tarfile's list of every method it tried stays out of the message
