"""The fast-training techniques of the CIFAR-10 speed recipe (after airbench): patch whitening,
identity init, per-group LRs for normalization layers, Lookahead, alternating flips and
flip+translate test-time augmentation; each as an ordinary trainlab setting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainlab
from conftest import kill_at_step, tiny_recipe
from trainlab.config import OptimConfig, TaskConfig
from trainlab.data.loaders import BatchTransform, _Batches
from trainlab.engine.optim import build_optimizer
from trainlab.engine.lookahead import Lookahead
from trainlab.errors import ConfigError
from trainlab.models.speednet import SpeedNet, patch_whitening
from trainlab.registry import TASKS
from trainlab.tasks.classification import shift

VOLATILE = {"time", "seconds", "samples_per_s"}


def test_patch_whitening_makes_the_patch_covariance_the_identity():
    torch.manual_seed(0)
    # correlated channels and smooth images: far from white
    base = F.avg_pool2d(torch.randn(200, 1, 18, 18), 3, 1)
    x = torch.cat([base, base * 0.5 + 0.1 * torch.randn_like(base), torch.randn_like(base)], 1)  # [200, 3, 16, 16]
    w = patch_whitening(x, 2, eps=0.0)
    assert w.shape == (24, 3, 2, 2)
    assert torch.allclose(w[12:], -w[:12])
    out = F.conv2d(x, w[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(12), atol=1e-3)


def test_speednet_starts_from_identity_convs_and_a_frozen_stem():
    model = SpeedNet(widths=(16, 32, 32))
    conv = model.groups[1].conv1  # 16 -> 32
    expected = torch.zeros(16, 16, 3, 3)
    nn.init.dirac_(expected)
    assert torch.equal(conv.weight[:16], expected)
    assert not model.stem[0].weight.requires_grad and model.stem[0].bias.requires_grad
    x = torch.randn(64, 3, 12, 12)
    model.init_from_data(x)
    assert torch.allclose(model.stem[0].weight, patch_whitening(x, 2))
    with pytest.raises(ValueError, match="stem_width=24"):
        SpeedNet(stem_width=32)
    relu = SpeedNet(widths=(16, 32, 32), activation="relu")
    assert isinstance(relu.groups[0].act, nn.ReLU) and relu(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="activation='swish'"):
        SpeedNet(activation="swish")


def test_training_whitens_the_stem_from_the_data_and_keeps_it(tmp_path):
    recipe = tiny_recipe(tmp_path / "run", model={"name": "speednet", "init_args": {"widths": [8, 16, 16]}},
                         optim={"name": "sgd", "lr": 0.1, "nesterov": True}, train={"epochs": 1})
    run = trainlab.train(recipe)
    assert run.timing["init_s"] > 0
    model = trainlab.load(run.last_checkpoint)
    fresh = SpeedNet(in_channels=1, widths=(8, 16, 16))
    stem = model.stem[0].weight
    assert stem.shape == (8, 1, 2, 2) and not torch.allclose(stem, fresh.stem[0].weight)
    # eigenvectors of the 2x2 patches, scaled: each filter has the norm 1/sqrt(its eigenvalue)
    flat = stem[:4].reshape(4, -1)
    unit = flat / flat.norm(dim=1, keepdim=True)
    assert torch.allclose(unit @ unit.T, torch.eye(4), atol=1e-4)


def test_norm_layers_get_a_scaled_lr_with_the_same_decay_per_step():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(2, 3, 5, 5))
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.1, weight_decay=1e-3, norm_lr_scale=64))
    plain, norm = opt.param_groups
    assert {id(p) for p in norm["params"]} == {id(model[1].weight), id(model[1].bias)}
    assert norm["lr"] == pytest.approx(6.4) and norm["lr_scale"] == 64
    assert norm["lr"] * norm["weight_decay"] == pytest.approx(plain["lr"] * plain["weight_decay"])
    assert len(build_optimizer(model, OptimConfig(name="sgd")).param_groups) == 1


def test_schedule_keeps_the_norm_groups_lr_scaled(tmp_path):
    recipe = tiny_recipe(tmp_path / "run", optim={"name": "sgd", "lr": 0.05, "norm_lr_scale": 8.0},
                         model={"name": "speednet", "init_args": {"widths": [8, 16, 16]}},
                         schedule={"name": "linear", "warmup_epochs": 0.5}, train={"epochs": 1})
    run = trainlab.train(recipe)
    state = torch.load(run.last_checkpoint, weights_only=True)["optimizer"]
    lrs = [g["lr"] for g in state["param_groups"]]
    assert lrs[1] == pytest.approx(8 * lrs[0])


def test_lookahead_moves_an_average_and_copies_it_back():
    lin = nn.Linear(2, 1, bias=False)
    la = Lookahead(every=2, decay=0.5, start_step=2, total_steps=4)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    la.after_step(lin, 1)  # before the start: nothing
    assert la.avg is None
    la.after_step(lin, 2)  # the start: the average begins at the weights
    assert torch.equal(la.avg["weight"], lin.weight)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    la.after_step(lin, 3)  # not an N-th step
    assert torch.all(lin.weight == 3.0)
    la.after_step(lin, 4)  # rho = 0.5**2 * (4/4)**3 = 0.25: avg = 1 + 0.75 * (3 - 1) = 2.5, copied back
    assert torch.allclose(lin.weight, torch.full((1, 2), 2.5)) and torch.allclose(la.avg["weight"], lin.weight)
    with torch.no_grad():
        lin.weight.fill_(9.0)
    la.end_epoch(lin)
    assert torch.allclose(lin.weight, torch.full((1, 2), 2.5))


def _fast_recipe(run_dir, **train):
    return tiny_recipe(run_dir, model={"name": "speednet", "init_args": {"widths": [8, 16, 16]}},
                       data={"hflip": True, "hflip_mode": "alternate", "crop_padding": 2},
                       optim={"name": "sgd", "lr": 0.2, "momentum": 0.85, "nesterov": True, "weight_decay": 5e-4,
                              "norm_lr_scale": 16},
                       schedule={"name": "linear", "warmup_epochs": 0.5, "min_lr": 0.01},
                       task={"label_smoothing": 0.2, "tta": "flip_translate"},
                       train={"epochs": 3, "lookahead_every": 2, "lookahead_start_epoch": 0.5, **train})


def test_a_run_with_every_fast_setting_resumes_exactly(tmp_path, monkeypatch):
    """Killed mid-epoch (checkpoints every step), then resumed: the same metrics and weights as a run
    never stopped, Lookahead average and alternating flips included. (train.max_steps would shorten
    the LR schedule, so the stop is a simulated kill.)"""
    full = trainlab.train(_fast_recipe(tmp_path / "full"))
    kill_at_step(monkeypatch, 11)  # 8 steps per epoch: inside epoch 2; last.pt holds step 10
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(_fast_recipe(tmp_path / "part", checkpoint_every_steps=1))
    monkeypatch.undo()
    resumed = trainlab.train(_fast_recipe(tmp_path / "part", checkpoint_every_steps=1, resume="auto"))

    def comparable(metrics):
        return [{k: v for k, v in r.items() if k not in VOLATILE} for r in metrics]

    assert comparable(resumed.metrics) == comparable(full.metrics)
    a = trainlab.load(full.last_checkpoint).state_dict()
    b = trainlab.load(resumed.last_checkpoint).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(full.last_checkpoint, weights_only=True)["callbacks"]["lookahead"]["avg"] is not None


def test_resuming_with_lookahead_needs_its_state(tmp_path):
    plain = trainlab.train(_fast_recipe(tmp_path / "plain", lookahead_every=0, epochs=1))
    with pytest.raises(ConfigError, match="train.lookahead_every: 0 -> 2"):  # a different experiment
        trainlab.train(_fast_recipe(tmp_path / "plain", epochs=2, resume=str(plain.last_checkpoint)))
    with pytest.raises(ConfigError, match="holds no state for callback 'lookahead'"):  # even when allowed
        trainlab.train(_fast_recipe(tmp_path / "plain", epochs=2, resume=str(plain.last_checkpoint),
                                    resume_allow_changes=["train.lookahead_every"]))


def test_alternating_flips_invert_every_other_epoch():
    batches = _Batches(1000, 100, shuffle=True, seed=5, device=torch.device("cpu"), drop_last=False)
    tf = BatchTransform([0.0], [1.0], hflip=True, hflip_mode="alternate")
    idx = torch.arange(1000)
    e0, e1, e2 = (batches.flips(tf, idx, e) for e in range(3))
    assert torch.equal(e0, ~e1) and torch.equal(e0, e2)
    assert 400 < int(e0.sum()) < 600  # a fair coin per image
    other = _Batches(1000, 100, shuffle=True, seed=6, device=torch.device("cpu"), drop_last=False)
    assert not torch.equal(other.flips(tf, idx, 0), e0)
    assert batches.flips(BatchTransform([0.0], [1.0], hflip=True), idx, 0) is None  # random mode: a coin per batch
    x = torch.arange(6, dtype=torch.uint8).view(1, 1, 2, 3).repeat(2, 1, 1, 1)
    out = tf(x, train=True, gen=None, flips=torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].float().flip(-1) / 255) and torch.equal(out[1], x[1].float() / 255)


def test_flip_translate_tta_averages_six_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 3))
    x, y = torch.randn(4, 2, 5, 5), torch.randint(0, 3, (4,))
    task = TASKS.create("classification", TaskConfig(tta="flip_translate"), 3)
    out = task.step(model, {"inputs": x, "targets": y}, train=False)["outputs"]

    def mirror(v):
        return (model(v) + model(v.flip(-1))) / 2

    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., 2:7, 2:7], padded[..., 0:5, 0:5]
    assert torch.equal(shift(x, 1), up_left) and torch.equal(shift(x, -1), down_right)
    assert torch.allclose(out, mirror(x) / 2 + (mirror(up_left) + mirror(down_right)) / 4, atol=1e-6)
    clips = torch.randn(2, 3, 2, 5, 5)  # [B, T, C, H, W]: every frame shifted alike
    assert torch.equal(shift(clips, 1)[:, 1], shift(clips[:, 1], 1))


def test_new_settings_are_validated():
    from trainlab import config

    for key, value in (("optim.norm_lr_scale", "0"), ("train.lookahead_every", "-1"),
                       ("train.lookahead_decay", "1.0"), ("data.hflip_mode", "sometimes"),
                       ("task.tta", "rotate")):
        with pytest.raises(ConfigError, match=key):
            config.load({}, [f"{key}={value}"])


def test_keep_freed_memory_sets_glibc_malloc_once(monkeypatch):
    """The setting itself: mmap off and a 1 GiB trim threshold, applied once, False where there is
    no mallopt. (The page faults it saves are measured in benchmarks/malloc_faults.py: absolute
    fault counts depend on the kernel and allocator, so they are not a test.)"""
    from trainlab.engine import device

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(device, "_MALLOC_KEPT", False)
    monkeypatch.setattr(device.sys, "platform", "linux")
    monkeypatch.setattr(device.ctypes, "CDLL", lambda name: FakeLibc())
    assert device.keep_freed_memory() and device.keep_freed_memory()
    assert calls == [(-4, 0), (-1, 1 << 30)]  # M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB; the second call is a no-op

    class NoMallopt:  # musl and others
        pass

    monkeypatch.setattr(device, "_MALLOC_KEPT", False)
    monkeypatch.setattr(device.ctypes, "CDLL", lambda name: NoMallopt())
    assert device.keep_freed_memory() is False
    monkeypatch.setattr(device.sys, "platform", "darwin")
    assert device.keep_freed_memory() is False


def test_keep_freed_memory_is_applied_by_training(tmp_path, monkeypatch):
    """train.keep_freed_memory reaches the runtime setup on CPU, and false leaves malloc alone."""
    from trainlab.engine import device

    applied = []
    monkeypatch.setattr(device, "keep_freed_memory", lambda: applied.append(1) or True)
    from trainlab.engine import runtime

    runtime.setup_runtime(trainlab.config.load(tiny_recipe(tmp_path / "a")))
    assert applied == [1]
    runtime.setup_runtime(trainlab.config.load(tiny_recipe(tmp_path / "b", train={"keep_freed_memory": False})))
    assert applied == [1]


def test_reflect_crop_equals_f_pad_reflect_on_uint8_and_float():
    from trainlab.data.loaders import random_crop

    x = torch.randint(0, 256, (64, 3, 9, 7), dtype=torch.uint8)
    for dtype in (torch.uint8, torch.float32):
        out = random_crop(x.to(dtype), 2, torch.Generator().manual_seed(5), mode="reflect")
        gen = torch.Generator().manual_seed(5)  # the same offsets, drawn in the same order
        dy, dx = torch.randint(0, 5, (64,), generator=gen), torch.randint(0, 5, (64,), generator=gen)
        padded = F.pad(x.float(), (2, 2, 2, 2), mode="reflect")
        want = torch.stack([padded[i, :, dy[i]:dy[i] + 9, dx[i]:dx[i] + 7] for i in range(64)])
        assert out.dtype == dtype and torch.equal(out.float(), want)
    zeros = random_crop(x, 2, torch.Generator().manual_seed(5))  # the default stays zero padding
    assert (zeros == 0).any() and not torch.equal(zeros, out.to(torch.uint8))
    with pytest.raises(ValueError, match="crop_padding=9"):
        random_crop(x, 9, None, mode="reflect")


def test_crop_mode_reaches_the_batch_transform():
    from trainlab import config

    cfg = config.load({}, ["data.crop_padding=2", "data.crop_mode=reflect"])
    assert BatchTransform.from_config(cfg.data, [0.5], [0.5]).crop_mode == "reflect"
    with pytest.raises(ConfigError, match="crop_mode"):
        config.load({}, ["data.crop_mode=mirror"])


def test_convnet_stem_stride_and_pool_first_never_make_full_resolution_activations():
    from trainlab.models.convnet import ConvNet

    torch.manual_seed(0)
    net = ConvNet(channels=[8, 16, 32], hidden=[], kernel_size=5, stem_stride=2, pool_first=True)
    kinds = [type(m).__name__ for m in net.features]
    assert kinds[:7] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    assert net.features[0].stride == (2, 2) and kinds.count("MaxPool2d") == 2  # the stride replaced a pool
    sizes = []
    net.features[1].register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    net.features[5].register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10) and sizes == [14, 7]  # BN at 14 and 7 px, not 28
    mixed = ConvNet(channels=[16, 32], hidden=[], stem_kernel=5, stem_stride=2)
    assert mixed.features[0].kernel_size == (5, 5) and mixed.features[3].kernel_size == (3, 3)
    with pytest.raises(ValueError, match="stem_stride=0"):
        ConvNet(stem_stride=0)
