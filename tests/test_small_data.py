"""Small-data training tools: per-image batch augmentation, MixUp/CutMix, EMA/SWA as the model of
record, discriminative learning rates and gradual unfreezing. Each is a setting any recipe can use;
each is checked for what it promises, and the random ones for exact resumption mid-epoch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trainlab
from trainlab.config import DataConfig, load
from trainlab.data.augment import OPS, PixelAugment, apply_op, random_erasing
from trainlab.data.mixing import Mixer
from trainlab.engine.layer_groups import layer_groups, lr_scales
from trainlab.engine.optim import param_groups
from trainlab.errors import ConfigError

from conftest import SHARED, kill_at_step, tiny_recipe

VOLATILE = {"time", "seconds", "samples_per_s"}
CATSDOGS = SHARED / "cats-vs-dogs"


def comparable(metrics):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in metrics]


def _photos(n=16, size=48) -> torch.Tensor:
    """Real cats-vs-dogs photos as float 0..255 [n, 3, size, size] (the shared data's JPEGs)."""
    import numpy as np
    from PIL import Image

    files = sorted(CATSDOGS.rglob("*.jpg"))[:n]
    if len(files) < n:
        pytest.skip(f"cats-vs-dogs JPEGs not found under {CATSDOGS}")
    imgs = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((size, size))).copy()) for f in files]
    return torch.stack(imgs).permute(0, 3, 1, 2).float()


# ------------------------------------------------------------------ MixUp / CutMix
@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixed_batches_carry_soft_targets_whose_rows_sum_to_one_and_the_loss_takes_them(kind):
    x, y = _photos(8, 32), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    mixer = Mixer(2, mixup=0.4 if kind == "mixup" else 0, cutmix=1.0 if kind == "cutmix" else 0)
    out = mixer({"inputs": x, "targets": y, "index": torch.arange(8)}, seed=5)
    soft = out["soft_targets"]
    assert soft.shape == (8, 2) and torch.allclose(soft.sum(1), torch.ones(8))
    assert torch.equal(out["targets"], y)  # the hard labels stay for the training accuracy
    kind_drawn, lam, box = mixer.draw(5, 32, 32)
    assert kind_drawn == kind and 0 <= lam <= 1
    assert torch.allclose(soft[:, 0], lam * (y == 0).float() + (1 - lam) * (y.flip(0) == 0).float())
    if kind == "cutmix":  # lam is the area kept: the pasted box is exactly the partner's pixels
        y0, y1, x0, x1 = box
        assert torch.equal(out["inputs"][..., y0:y1, x0:x1], x.flip(0)[..., y0:y1, x0:x1])
        assert lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 32 ** 2)
    else:
        assert torch.allclose(out["inputs"], lam * x + (1 - lam) * x.flip(0))
    logits = torch.randn(8, 2, requires_grad=True)
    loss = F.cross_entropy(logits, soft, label_smoothing=0.1)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad is not None
    again = mixer({"inputs": x, "targets": y, "index": torch.arange(8)}, seed=5)
    assert torch.equal(again["inputs"], out["inputs"])  # a function of the seed alone


def test_unmixed_batches_are_left_alone_with_one_hot_targets():
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    out = Mixer(4, mixup=1.0, prob=1e-9)({"inputs": x, "targets": y}, seed=1)
    assert torch.equal(out["inputs"], x) and torch.equal(out["soft_targets"], F.one_hot(y, 4).float())
    with pytest.raises(ConfigError, match="data.mix_prob"):
        DataConfig(mix_prob=2).validate()


# ------------------------------------------------------------------ per-image ops
def test_every_op_keeps_shape_and_range_and_changes_real_photos():
    x = _photos(4, 40)
    for op in OPS:
        m = torch.full((4,), 0.5 if op in ("brightness", "color", "contrast", "sharpness") else
                       {"shear_x": 0.3, "shear_y": 0.3, "rotate": 30.0, "posterize": 4.0, "solarize": 128.0}
                       .get(op, 8.0))
        out = apply_op(x, op, m, group=3)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255, op
        assert torch.isfinite(out).all(), op
        if op != "identity":
            assert not torch.equal(out, x), f"{op} changed nothing"


def test_randaugment_draws_its_own_op_per_image_and_is_a_function_of_the_generator():
    x = _photos(16, 32)
    aug = PixelAugment(0.0, "trivialaugment", group=3)
    g = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    a, b = aug(x, g()), aug(x, g())
    assert torch.equal(a, b)
    # one op per image: comparing each image with the same op applied batch-wide would be circular; instead,
    # the changed fraction differs between images (identity leaves some untouched, geometric ops move most)
    changed = (a != x).float().mean(dim=(1, 2, 3))
    assert changed.std() > 0.05
    assert not torch.equal(aug(x, torch.Generator().manual_seed(12)), a)


def test_random_erasing_erases_one_box_per_chosen_image():
    x = torch.zeros(64, 3, 16, 16)
    out = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    erased = (out != 0).flatten(1).any(1)
    assert 15 < int(erased.sum()) < 49  # about half of the images
    for img in out[erased]:
        rows, cols = (img[0] != 0).nonzero(as_tuple=True)
        box = img[0, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (box != 0).float().mean() > 0.99  # one solid rectangle of noise


AUGMENTED = dict(data={"auto_augment": "randaugment", "color_jitter": 0.3, "random_erasing": 0.25,
                       "mixup": 0.3, "cutmix": 1.0, "crop_padding": 2, "hflip": True})


def _kill_and_resume(tmp_path, monkeypatch, **sections):
    full = trainlab.train(tiny_recipe(tmp_path / "full", **sections))
    part = {k: dict(v) for k, v in sections.items()}
    part.setdefault("train", {})["checkpoint_every_steps"] = 1
    kill_at_step(monkeypatch, 11)  # 8 steps per epoch: inside epoch 2; last.pt holds step 10
    with pytest.raises(KeyboardInterrupt):
        trainlab.train(tiny_recipe(tmp_path / "part", **part))
    monkeypatch.undo()
    part["train"]["resume"] = "auto"
    resumed = trainlab.train(tiny_recipe(tmp_path / "part", **part))
    assert comparable(resumed.metrics) == comparable(full.metrics)
    for name in ("last", "best"):
        a = trainlab.load(getattr(full, f"{name}_checkpoint")).state_dict()
        b = trainlab.load(getattr(resumed, f"{name}_checkpoint")).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    return full


def test_augmented_and_mixed_training_resumes_exactly_mid_epoch(tmp_path, monkeypatch):
    full = _kill_and_resume(tmp_path, monkeypatch, **AUGMENTED, train={"epochs": 3})
    plain = trainlab.train(tiny_recipe(tmp_path / "plain", train={"epochs": 3}))
    assert comparable(plain.metrics) != comparable(full.metrics)  # the settings did something


# ------------------------------------------------------------------ EMA / SWA
@pytest.mark.parametrize("kind", ["ema", pytest.param("swa", marks=pytest.mark.slow)])
def test_weight_average_resumes_exactly_and_is_the_model_of_record(tmp_path, monkeypatch, kind):
    # monitored on the training loss, which falls every epoch here: best.pt is the last epoch's, so it can be
    # compared with the average that last.pt carries
    train = {"epochs": 3, "weight_average": kind, "ema_decay": 0.9, "average_start_epoch": 0.5,
             "monitor": "train.loss"}
    full = _kill_and_resume(tmp_path, monkeypatch, train=train)
    ckpt = torch.load(full.last_checkpoint, weights_only=True)
    avg = ckpt["callbacks"]["weight_average"]["average"]
    assert int(avg["n_averaged"]) == (3 if kind == "swa" else 21)  # swa: 3 epoch ends; ema: steps 4..24
    trained = ckpt["model"]
    averaged = {k.removeprefix("module."): v for k, v in avg.items() if k.startswith("module.")}
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained)
    best = torch.load(full.best_checkpoint, weights_only=True)["model"]
    assert full.metrics[-1]["best_epoch"] == 3
    assert all(torch.equal(best[k], averaged[k]) for k in best)  # best.pt is the average, not the trained weights


def test_swa_is_the_equal_mean_of_the_epoch_end_weights(tmp_path):
    seen = []

    class EpochEnds(trainlab.Callback):
        name = "epoch_ends"

        def on_step_end(self, trainer):
            if trainer.state.batch == len(trainer.loaders["train"]):
                seen.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 3, "weight_average": "swa"}),
                         callbacks=[EpochEnds()])
    avg = torch.load(run.last_checkpoint, weights_only=True)["callbacks"]["weight_average"]["average"]
    for k, v in seen[0].items():
        if v.is_floating_point():
            assert torch.allclose(avg[f"module.{k}"], sum(s[k] for s in seen) / 3, atol=1e-6), k


# ------------------------------------------------------------------ layer groups, discriminative LR, unfreezing
def test_layer_groups_follow_depth_and_layer_lr_decay_scales_them():
    from torchvision.models import resnet18

    model = resnet18(num_classes=2)
    groups = layer_groups(model)
    ids = [id(p) for g in groups for p in g]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # every parameter once
    assert groups[0][0] is model.conv1.weight and groups[-1][-1] is model.fc.bias
    scales = lr_scales(model, 0.5)
    assert scales[id(model.fc.weight)] == 1 and scales[id(model.conv1.weight)] == 0.5 ** (len(groups) - 1)
    assert scales[id(model.layer1[0].conv1.weight)] > scales[id(model.conv1.weight)]
    cfg = load(None, ["optim.lr=0.01", "optim.layer_lr_decay=0.5"]).optim
    pg = param_groups(model, cfg)
    assert pg[0]["lr_scale"] == 1 and pg[0]["lr"] == 0.01  # the head's group first: it is the LR logged
    assert [g["lr_scale"] for g in pg] == sorted((g["lr_scale"] for g in pg), reverse=True)


def test_unfreezing_trains_the_backbone_only_after_its_epoch(tmp_path):
    kw = dict(model={"freeze": "backbone", "unfreeze_epoch": 1}, optim={"layer_lr_decay": 0.7},
              train={"epochs": 2})
    one = trainlab.train(tiny_recipe(tmp_path / "run", **{**kw, "train": {"epochs": 1}}))
    w1 = torch.load(one.last_checkpoint, weights_only=True)["model"]
    two = trainlab.train(tiny_recipe(tmp_path / "run", **{**kw, "train": {"epochs": 2, "resume": "auto"}}))
    w2 = torch.load(two.last_checkpoint, weights_only=True)["model"]
    first_conv = next(k for k in w1 if k.endswith("weight") and w1[k].dim() == 4)
    fresh = trainlab.train(tiny_recipe(tmp_path / "fresh", **{**kw, "train": {"epochs": 1, "max_steps": 1}}))
    w0 = torch.load(fresh.last_checkpoint, weights_only=True)["model"]
    assert torch.equal(w0[first_conv], w1[first_conv])  # frozen for the first epoch
    assert not torch.equal(w1[first_conv], w2[first_conv])  # trained after it


def test_bad_small_data_settings_name_the_key():
    with pytest.raises(ConfigError, match="model.unfreeze_epoch"):
        load(None, ["model.unfreeze_epoch=1"])
    with pytest.raises(ConfigError, match="data.color_jitter"):
        load(None, ["data.color_jitter=[0.1,0.2]"])
    with pytest.raises(ConfigError, match="train.ema_decay"):
        load(None, ["train.ema_decay=1.5"])
    with pytest.raises(ConfigError, match="optim.layer_lr_decay"):
        load(None, ["optim.layer_lr_decay=0"])


def test_unfreezing_opens_what_model_freeze_froze_and_nothing_else():
    from types import SimpleNamespace

    from trainlab.engine.layer_groups import Unfreeze
    from trainlab.models.finetune import freeze
    from trainlab.registry import MODELS

    model = MODELS.create("speednet", num_classes=2, widths=[8, 16, 16])
    fixed = {n for n, p in model.named_parameters() if not p.requires_grad}  # whitening stem, BN scales
    assert fixed
    freeze(model, "backbone")
    cb = Unfreeze(start=1, every=1)
    trainer = SimpleNamespace(model=model, state=SimpleNamespace(epoch=0))
    cb.on_fit_start(trainer, resumed=False)
    trainable = lambda: {n for n, p in model.named_parameters() if p.requires_grad}  # noqa: E731
    assert trainable() == {"head.weight"}
    cb.on_epoch_end(trainer, 0, partial=False)  # one group, the one next to the head
    first = trainable()
    cb.on_epoch_end(trainer, 5, partial=False)  # after that, every group
    assert len(first) < len(trainable())
    assert not fixed & trainable()  # the model's own fixed weights stay fixed


def test_a_clip_gets_one_op_for_all_its_frames():
    from trainlab.data.clip_loader import ClipTransform

    d = DataConfig(auto_augment="trivialaugment", color_jitter=[0.4, 0.4, 0.4, 0.1], random_erasing=1.0)
    tf = ClipTransform.from_config(d, [0.5] * 3, [0.25] * 3, frames=4)
    frame = _photos(6, 32).round().to(torch.uint8)
    clips = frame.unsqueeze(1).expand(6, 4, 3, 32, 32).contiguous()  # every frame of a clip the same picture
    out = tf(clips, train=True, gen=torch.Generator().manual_seed(3))
    assert out.shape == (6, 4, 3, 32, 32)
    assert all(torch.equal(out[:, t], out[:, 0]) for t in range(4))  # the same view of every frame
    assert not torch.equal(out, tf(clips, train=False, gen=None))  # and it did augment
    erase_only = ClipTransform.from_config(DataConfig(random_erasing=1.0), [0.5] * 3, [0.25] * 3, frames=4)
    out = erase_only(clips, train=True, gen=torch.Generator().manual_seed(3))
    assert all(torch.equal(out[:, t], out[:, 0]) for t in range(4))


def test_batched_equalize_is_pils_equalize():
    import numpy as np
    from PIL import Image, ImageOps

    from trainlab.data.augment import _equalize

    imgs = _photos(8, 32).round().to(torch.uint8)
    imgs[0] = 7  # a flat image: PIL leaves it as it is
    pil = torch.stack([torch.from_numpy(np.asarray(ImageOps.equalize(Image.fromarray(i.permute(1, 2, 0).numpy())))
                                        .copy()).permute(2, 0, 1) for i in imgs])
    assert torch.equal(_equalize(imgs.float().view(8, 1, 3, 32, 32)).view(8, 3, 32, 32), pil.float())
