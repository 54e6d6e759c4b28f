"""Video classification on tiny moving-digits datasets: generator, layouts, cache, sampling, models."""

import logging
import shutil

import numpy as np
import pytest
import torch

import trainlab
from trainlab.config import ModelConfig
from trainlab.data import build_data
from trainlab.data.clip_loader import frame_indices
from trainlab.data.moving_digits import DIRECTIONS, digit_pools, make_clip, make_moving_digits, write_video
from trainlab.data.video_decode import ClipSettings, decode_clip
from trainlab.errors import DataError
from trainlab.models import build_model

from conftest import MNIST_DIR, needs_shared_mnist

SMALL = dict(train_per_class=3, test_per_class=2, frames=8)
NAMES = sorted(DIRECTIONS)


def _mnist():
    return MNIST_DIR if (MNIST_DIR / "train-labels-idx1-ubyte.gz").is_file() else None  # else embedded digits


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("md") / "moving-digits"
    make_moving_digits(root, mnist=_mnist(), **SMALL)
    return root


@pytest.fixture
def videos(generated, tmp_path):
    """A private copy to modify."""
    return shutil.copytree(generated, tmp_path / "videos")


def _data(root, tmp_path, **kw):
    from trainlab.config import DataConfig

    base = dict(name="ucf101", root=str(root), size=64, channels=1, frames=4, cache_frames=8, valid_fraction=0.0,
                cache_dir=str(tmp_path / "cache"), batch_size=4)
    return DataConfig(**{**base, **kw})


def _centroid(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(frame > 64)
    return np.array([ys.mean(), xs.mean()])


@needs_shared_mnist()
def test_generator_is_deterministic_and_files_decode_to_the_frames(generated, tmp_path):
    again = tmp_path / "again"
    make_moving_digits(again, mnist=MNIST_DIR, **SMALL)
    other = tmp_path / "other"
    make_moving_digits(other, mnist=MNIST_DIR, seed=1, **SMALL)
    pools = digit_pools(MNIST_DIR)
    files = sorted(p.relative_to(generated) for p in generated.rglob("*.avi"))
    assert len(files) == 4 * (3 + 2) and files == sorted(p.relative_to(again) for p in again.rglob("*.avi"))
    settings = ClipSettings((64, 64), 1, "crop", 8, 8)
    for n in range(12):
        frames, label = make_clip(pools, "train", n, NAMES, 0, 8, 64, 1)
        path = generated / NAMES[label] / f"v_{NAMES[label]}_train{n:05d}.avi"
        assert np.array_equal(decode_clip(path, settings)[:, 0], frames)  # lossless: the very frames generated
        assert np.array_equal(decode_clip(again / path.relative_to(generated), settings), decode_clip(path, settings))
        moved = _centroid(frames[-1]) - _centroid(frames[0])
        dy, dx = DIRECTIONS[NAMES[label]]
        assert moved[0] * dy > 3 or moved[1] * dx > 3, (NAMES[label], moved)  # moves the way its class says
        assert not np.array_equal(decode_clip(other / path.relative_to(generated), settings), frames)
    assert (generated / "trainlist01.txt").read_text() == (again / "trainlist01.txt").read_text()


def test_split_lists_are_honoured_and_a_missing_clip_is_named(videos, tmp_path):
    b = build_data(_data(videos, tmp_path))
    assert b.class_names == NAMES and b.input_shape == (4, 1, 64, 64)
    listed = [ln.split()[0] for ln in (videos / "testlist01.txt").read_text().splitlines()]
    assert [p.split("moving-digits/")[-1].split("videos/")[-1] for p in b.splits["test"].ids] == listed
    assert len(b.splits["train"]) == 12 and len(b.splits["test"]) == 8
    train_list = (videos / "trainlist01.txt").read_text().splitlines()
    (videos / "trainlist01.txt").write_text("\n".join(train_list[:5]) + "\n")
    assert len(build_data(_data(videos, tmp_path)).splits["train"]) == 5
    (videos / "trainlist01.txt").write_text("\n".join(train_list[:5] + ["up/v_up_nowhere.avi 4"]) + "\n")
    with pytest.raises(DataError, match=r"trainlist01.txt names 1 clip.*line 6: up/v_up_nowhere.avi"):
        build_data(_data(videos, tmp_path))
    (videos / "trainlist01.txt").write_text("\n".join(train_list[:5] + [train_list[2]]) + "\n")
    with pytest.raises(DataError, match=r"trainlist01.txt names 1 clip\(s\) twice.*line 6: .* \(first on line 3\)"):
        build_data(_data(videos, tmp_path))
    test_list = (videos / "testlist01.txt").read_text().splitlines()
    (videos / "trainlist01.txt").write_text("\n".join(train_list[:5] + test_list[:1]) + "\n")
    with pytest.raises(DataError, match="1 clip\\(s\\) are in both trainlist01.txt and testlist01.txt"):
        build_data(_data(videos, tmp_path))
    for f in ("trainlist01.txt", "testlist01.txt"):
        (videos / f).unlink()
    b = build_data(_data(videos, tmp_path, test_fraction=0.25))  # no lists: fractions of all 20 clips
    assert len(b.splits["train"]) == 15 and len(b.splits["test"]) == 5


def test_frame_indices_train_random_eval_fixed_short_clips():
    lengths = torch.tensor([8, 20, 4, 5])
    fixed = frame_indices(lengths, 4, None)
    assert fixed.tolist() == [[1, 3, 5, 7], [2, 7, 12, 17], [0, 1, 2, 3], [0, 1, 3, 4]]
    draws = [frame_indices(lengths, 4, torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    for idx in draws:
        seg = lengths.view(-1, 1).float() / 4
        k = torch.arange(4).view(1, -1)
        assert ((idx >= (k * seg).floor()) & (idx < ((k + 1) * seg).ceil())).all()  # one per segment
        assert (idx[:, 1:] >= idx[:, :-1]).all() and (idx < lengths.view(-1, 1)).all()
    assert frame_indices(lengths[2:3], 4, torch.Generator().manual_seed(3)).tolist() == [[0, 1, 2, 3]]


def test_loader_batches_resume_exactly_and_epochs_sample_other_frames(generated, tmp_path):
    from trainlab.config import Config

    cfg = Config(data=_data(generated, tmp_path))
    bundle = build_data(cfg.data)
    loader = bundle.make_loaders(cfg, torch.device("cpu"))["train"]
    full = list(loader.iterate(epoch=1))
    resumed = list(loader.iterate(epoch=1, start=2))
    assert full[0]["inputs"].shape == (4, 4, 1, 64, 64)
    assert all(torch.equal(a["inputs"], b["inputs"]) for a, b in zip(full[2:], resumed))
    by_clip = lambda batches: {i: x for b in batches for i, x in zip(b["index"].tolist(), b["inputs"])}  # noqa: E731
    one, two = by_clip(full), by_clip(loader.iterate(epoch=2))
    assert sum(not torch.equal(one[i], two[i]) for i in one) >= len(one) // 2  # the same clip, other frames
    test = bundle.make_loaders(cfg, torch.device("cpu"))["test"]
    assert torch.equal(next(test.iterate(0))["inputs"], next(test.iterate(5))["inputs"])  # evaluation: fixed


def test_cache_is_reused(generated, tmp_path, monkeypatch):
    from trainlab.data import video_decode

    first = build_data(_data(generated, tmp_path))
    calls = []
    monkeypatch.setattr(video_decode, "decode_clip", lambda *a: calls.append(a))
    again = build_data(_data(generated, tmp_path))
    assert calls == [] and torch.equal(again.splits["train"].images, first.splits["train"].images)
    assert again.splits["train"].lengths.tolist() == [8] * 12


def test_corrupt_and_short_clips_are_skipped_with_a_warning_or_an_error(videos, tmp_path, caplog):
    (videos / "up" / "broken.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST not really a video")
    write_video(videos / "left" / "short.avi", np.zeros((3, 64, 64), np.uint8))
    with open(videos / "trainlist01.txt", "a") as fh:
        fh.write("up/broken.avi 4\nleft/short.avi 2\n")
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        b = build_data(_data(videos, tmp_path))
    assert len(b.splits["train"]) == 12 and "skipped 2 unreadable clip(s)" in caplog.text
    assert "broken.avi: cannot decode video" in caplog.text
    assert "short.avi: clip has 3 frame(s), fewer than data.frames=4" in caplog.text
    with pytest.raises(DataError, match=r"broken.avi: cannot decode video.*on_bad_image=error"):
        build_data(_data(videos, tmp_path, on_bad_image="error", cache_dir=str(tmp_path / "c2")))


def test_frame_folder_layout_gives_the_same_clips(generated, tmp_path):
    from PIL import Image

    root = tmp_path / "frames"
    settings = ClipSettings((64, 64), 1, "crop", 8, 4)
    for video in sorted(generated.rglob("*.avi")):
        folder = root / video.parent.name / video.stem
        folder.mkdir(parents=True)
        for t, f in enumerate(decode_clip(video, settings)):
            Image.fromarray(f[0]).save(folder / f"frame_{t + 1}.png")  # frame_10 sorts after frame_9
    (root / "notes.txt").write_text("a file beside the class folders is ignored")
    frames = build_data(_data(root, tmp_path, test_fraction=0.2, cache_dir=str(tmp_path / "c3")))
    videos = build_data(_data(generated, tmp_path))
    assert frames.class_names == videos.class_names
    by_name = lambda s: {p.split("/")[-1].removesuffix(".avi"): c for p, c in zip(s.ids, s.images)}  # noqa: E731
    mine = {**by_name(frames.splits["train"]), **by_name(frames.splits["test"])}
    theirs = {**by_name(videos.splits["train"]), **by_name(videos.splits["test"])}
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_wrong_layout_is_a_clear_error(tmp_path):
    (tmp_path / "flat").mkdir()
    write_video(tmp_path / "flat" / "a.avi", np.zeros((4, 64, 64), np.uint8))
    with pytest.raises(DataError, match="expected one folder per class"):
        build_data(_data(tmp_path / "flat", tmp_path))
    (tmp_path / "flat" / "up").mkdir()
    (tmp_path / "flat" / "up" / "readme.txt").write_text("no clips")
    with pytest.raises(DataError, match="no video files or frame folders.*up"):
        build_data(_data(tmp_path / "flat", tmp_path))


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cnn_lstm_shapes_and_gradients(pooling, bidirectional):
    torch.manual_seed(0)
    args = dict(pooling=pooling, bidirectional=bidirectional, num_layers=2, hidden_size=16, latent_dim=12,
                dropout=0.1, encoder_args={"channels": [4, 4, 8, 8]})
    model = build_model(ModelConfig(name="cnn_lstm", init_args=args), 5, (1, 32, 32))
    x = torch.randn(3, 6, 1, 32, 32)
    out = model(x)
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    assert model.lstm.hidden_size == 16 and model.head.in_features == 16 * (2 if bidirectional else 1)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    assert not torch.allclose(model(x), model(x.flip(1)))  # the order of frames matters


def test_r3d_18_takes_clips():
    model = build_model(ModelConfig(name="r3d_18"), 4, (1, 32, 32))
    assert model(torch.randn(2, 4, 1, 32, 32)).shape == (2, 4)


def test_frozen_backbone_does_not_change(generated, tmp_path):
    """An image checkpoint (cnn4 on MNIST digits) initialises the encoder; its frozen layers stay put."""
    image = trainlab.train({"data": {"name": "mnist5k", "max_samples": 256, "batch_size": 64, "test_fraction": 0.1},
                            "model": {"name": "cnn4", "init_args": {"channels": [8, 8, 16, 16]}},
                            "train": {"epochs": 1}, "run": {"dir": str(tmp_path / "img"), "progress": False,
                                                            "tensorboard": False}})
    video = trainlab.train({"data": {**vars(_data(generated, tmp_path)), "valid_fraction": 0.25},
                            "model": {"name": "cnn_lstm", "weights": str(image.best_checkpoint), "freeze": "backbone",
                                      "init_args": {"encoder_args": {"channels": [8, 8, 16, 16]}, "hidden_size": 16,
                                                    "latent_dim": 16}},
                            "task": {"name": "video"}, "optim": {"lr": 1e-2}, "train": {"epochs": 2},
                            "run": {"dir": str(tmp_path / "vid"), "progress": False, "tensorboard": False}})
    start = torch.load(image.best_checkpoint, weights_only=True)["model"]
    end = torch.load(video.last_checkpoint, weights_only=True)["model"]
    convs = [k for k in start if k.startswith("features.")]
    assert convs and all(torch.equal(start[k], end[f"encoder.{k}"]) for k in convs)
    assert start["fc.weight"].shape != end["encoder.fc.weight"].shape  # a new projection to latent_dim, trained
    torch.manual_seed(video.config.train.seed)  # the initial weights, built as train() built them
    meta = torch.load(video.last_checkpoint, weights_only=True)["meta"]
    init = build_model(video.config.model, inferred=meta["model_kwargs"]).state_dict()
    assert all(torch.equal(init[k], end[k]) for k in init if k.startswith("encoder.features."))
    for trained in ("encoder.fc.weight", "lstm.weight_hh_l0", "head.weight"):
        assert not torch.equal(init[trained], end[trained]), trained


def test_prepare_train_eval_predict_from_the_command_line(tmp_path, capsys):
    from trainlab.cli import main

    root = tmp_path / "md"
    assert main(["prepare", "moving-digits", str(root), "--train-per-class", "4", "--test-per-class", "2",
                 "--frames", "6", "--seed", "3"]) == 0
    assert "train 16, test 8" in capsys.readouterr().out
    run = tmp_path / "run"
    overrides = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.frames=4", "data.cache_frames=6",
                 "train.epochs=1", f"run.dir={run}", "run.progress=false", "run.tensorboard=false",
                 "data.valid_fraction=0.25", "model.init_args.hidden_size=16"]
    from conftest import REPO

    assert main(["train", str(REPO / "recipes" / "video-cnn-lstm.yaml"), *overrides]) == 0
    ckpt = run / "checkpoints" / "best.pt"
    assert main(["eval", str(ckpt)]) == 0
    assert "on test (8 samples)" in capsys.readouterr().out
    rows = (run / "predictions.csv").read_text().splitlines()  # per-sample results name the clip files
    assert len(rows) == 9 and rows[1].split(",")[1].endswith(".avi")
    assert any(p.suffix == ".png" for p in (run / "thumbnails").iterdir())  # frame strips of the shown clips
    clip = sorted((root / "left").glob("*test*.avi"))[0]
    assert main(["predict", str(ckpt), str(clip), "--out", str(tmp_path / "p.csv"), "--topk", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{clip}: " in out and "1 prediction(s)" in out
    assert (tmp_path / "p.csv").read_text().splitlines()[1].startswith(str(clip))


def test_video_recipes_load_and_build():
    from conftest import REPO
    from trainlab import config
    from trainlab.sweep import is_sweep_file

    recipes = [r for r in sorted((REPO / "recipes").glob("*.yaml"))
               if not is_sweep_file(r) and config.load(r).task.name == "video"]
    assert {r.name for r in recipes} >= {"video-cnn-lstm.yaml", "video-resnet-lstm.yaml", "ucf101-cnn-lstm.yaml"}
    for r in recipes:
        cfg = config.load(r)
        cfg.model.weights, cfg.model.pretrained = None, False  # no files or downloads here
        shape = (cfg.data.channels, 32, 32)  # the architecture, not the recipe's frame size: fast
        model = build_model(cfg.model, 10, shape)
        assert model(torch.zeros(2, min(cfg.data.frames, 4), *shape)).shape == (2, 10), r.name


def test_video_task_passes_clips_whole_or_averages_an_image_model_over_frames():
    from trainlab import registry
    from trainlab.config import TaskConfig

    task = registry.TASKS.create("video", TaskConfig(name="video"), 3)
    torch.manual_seed(0)
    image_model = build_model(ModelConfig(name="cnn4", init_args={"channels": [4, 4, 4, 4]}), 3, (1, 32, 32))
    x, y = torch.randn(2, 5, 1, 32, 32), torch.tensor([0, 2])
    out = task.step(image_model, {"inputs": x, "targets": y}, train=True)
    per_frame = torch.stack([image_model(x[:, t]) for t in range(5)], 1)
    assert torch.allclose(out["outputs"], per_frame.mean(1), atol=1e-6)
    clip_model = build_model(ModelConfig(name="cnn_lstm", init_args={"encoder_args": {"channels": [4, 4, 4, 4]}}),
                             3, (1, 32, 32))
    assert torch.equal(task.step(clip_model, {"inputs": x, "targets": y}, train=False)["outputs"], clip_model(x))
    with pytest.raises(DataError, match=r"task 'video' needs clips \[B, T, C, H, W\]"):
        task.step(image_model, {"inputs": x[:, 0], "targets": y}, train=False)


def test_editing_one_frame_of_a_frame_folder_rebuilds_the_cache(tmp_path):
    import os

    from PIL import Image

    for cls in ("a", "b"):
        for clip in ("c1", "c2"):
            d = tmp_path / "root" / cls / clip
            d.mkdir(parents=True)
            for t in range(4):
                Image.fromarray(np.full((16, 16), 40 * t + (cls == "b") * 20, np.uint8)).save(d / f"{t}.png")
    cfg = _data(tmp_path / "root", tmp_path, size=16, frames=2, cache_frames=4)
    first = build_data(cfg).splits["train"].images.clone()
    frame = tmp_path / "root" / "a" / "c1" / "2.png"
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(frame)
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    again = build_data(cfg).splits["train"]
    assert not torch.equal(again.images, first) and int(again.images[0, 2].min()) == 255


def test_summary_of_a_clip_model_by_name(capsys):
    from trainlab.cli import main

    assert main(["summary", "cnn_lstm", "--input", "4x1x32x32", "--num-classes", "4"]) == 0
    out = capsys.readouterr().out
    model = build_model(ModelConfig(name="cnn_lstm"), 4, (4, 1, 32, 32))  # (T, C, H, W): built for the frames
    assert f"parameters: {sum(p.numel() for p in model.parameters()):,}" in out and "lstm (LSTM)" in out


def test_video_run_resumed_mid_epoch_matches_the_uninterrupted_run(generated, tmp_path):
    """Frame offsets and crops come from (seed, epoch, batch): a resumed run sees the same frames."""
    def recipe(run_dir, **train):
        return {"data": {**vars(_data(generated, tmp_path)), "valid_fraction": 0.25, "crop_padding": 2},
                "model": {"name": "cnn_lstm", "init_args": {"encoder_args": {"channels": [4, 4, 8, 8]},
                                                            "hidden_size": 8, "latent_dim": 8, "dropout": 0.2}},
                "task": {"name": "video"}, "train": {"epochs": 2, **train},
                "run": {"dir": str(run_dir), "progress": False, "tensorboard": False}}

    volatile = {"time", "seconds", "samples_per_s"}
    full = trainlab.train(recipe(tmp_path / "full"))
    trainlab.train(recipe(tmp_path / "part", max_steps=4))  # 3 batches per epoch: stops inside epoch 2
    resumed = trainlab.train(recipe(tmp_path / "part", resume="auto"))
    strip = lambda ms: [{k: v for k, v in m.items() if k not in volatile} for m in ms if m["step"] != 4]  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics)
    a, b = (torch.load(r.last_checkpoint, weights_only=True)["model"] for r in (full, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
