"""timm models by name (model.name=timm:NAME): a step of training on real cats-vs-dogs images and a
best.pt that reloads to the same outputs, a ViT at a non-224 input size, model.weights from a timm
state_dict with another head, freeze=backbone, unknown names, and model.pretrained offline (no network)."""

import socket

import pytest
import torch

import trainlab
from trainlab import config
from trainlab.config import ModelConfig
from trainlab.errors import CheckpointError, ConfigError
from trainlab.models import build_model, count_parameters
from trainlab.models.finetune import freeze

from conftest import SHARED, needs_shared

timm = pytest.importorskip("timm")
CATSDOGS = SHARED / "cats-vs-dogs"


@pytest.fixture(scope="module")
def catsdogs(tmp_path_factory):
    """12 + 12 training images and 4 + 4 test images, linked from the real data."""
    root = tmp_path_factory.mktemp("timm_cd")
    for split, n in (("training_set", 12), ("test_set", 4)):
        for cls in ("cats", "dogs"):
            (root / split / cls).mkdir(parents=True)
            for src in sorted((CATSDOGS / split / cls).glob("*.jpg"))[:n]:
                (root / split / cls / src.name).symlink_to(src)
    return root


def _recipe(root, run_dir, model: dict, size: int) -> dict:
    return {"data": {"name": "imagefolder", "root": str(root), "size": size, "valid_fraction": 0.25,
                     "batch_size": 8, "cache_dir": str(run_dir.parent / "cache")},
            "model": model, "optim": {"name": "adamw", "lr": 1e-3},
            "train": {"epochs": 1, "max_steps": 1, "seed": 0},
            "run": {"dir": str(run_dir), "progress": False, "tensorboard": False}}


def _reloads_identically(run, tmp_path):
    """best.pt through trainlab.load (weights-only): the test loss of the run, to the last digit."""
    ckpt = torch.load(run.best_checkpoint, map_location="cpu", weights_only=True)
    model = trainlab.load(run.best_checkpoint)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt["model"].items())
    again = trainlab.evaluate(run.best_checkpoint, out=tmp_path / "eval.json")
    assert again["loss"] == pytest.approx(run.test["loss"], rel=1e-5, abs=1e-6)
    return model


@needs_shared(CATSDOGS)
def test_timm_resnet_trains_a_step_and_best_pt_reloads(catsdogs, tmp_path):
    run = trainlab.train(_recipe(catsdogs, tmp_path / "run", {"name": "timm:resnet10t"}, 32))
    assert [r["step"] for r in run.metrics if r["split"] == "train"][-1] == 1
    model = _reloads_identically(run, tmp_path)
    assert type(model).__module__ == "timm.models.resnet" and model.fc.out_features == 2


@needs_shared(CATSDOGS)
def test_timm_vit_at_48px_from_a_224_state_dict_frozen_backbone(catsdogs, tmp_path):
    """weights=PATH: a 5-class, 224 px ViT saved as safetensors; its position embeddings are resampled
    to 3x3 patches, its head replaced by a 2-class one, and only that head trains."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = timm.create_model("vit_tiny_patch16_224", num_classes=5)
    save_file(src.state_dict(), tmp_path / "vit.safetensors")
    model_cfg = {"name": "timm:vit_tiny_patch16_224", "weights": str(tmp_path / "vit.safetensors"),
                 "freeze": "backbone"}
    run = trainlab.train(_recipe(catsdogs, tmp_path / "run", model_cfg, 48))
    model = _reloads_identically(run, tmp_path)
    assert tuple(model.pos_embed.shape) == (1, 1 + 9, 192) and model.head.out_features == 2
    # pos_embed and cls_token are the model's own parameters, outside any child module: frozen too
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert torch.equal(model.blocks[5].mlp.fc2.weight, src.blocks[5].mlp.fc2.weight)  # frozen: as loaded
    assert not torch.equal(model.head.weight[:2], src.head.weight[:2])


def test_weights_file_with_another_head_and_channels(tmp_path):
    torch.manual_seed(0)
    src = timm.create_model("resnet10t", num_classes=1000)
    torch.save(src.state_dict(), tmp_path / "pytorch_model.bin")
    model = build_model(ModelConfig(name="timm:resnet10t", weights=str(tmp_path / "pytorch_model.bin")), 3, (1, 32, 32))
    assert model.fc.out_features == 3
    assert torch.equal(model.layer4[0].conv1.weight, src.layer4[0].conv1.weight)
    # grey input: the RGB stem is summed over its channels, as timm adapts its own pretrained weights
    assert torch.allclose(model.conv1[0].weight, src.conv1[0].weight.sum(1, keepdim=True))
    with pytest.raises(CheckpointError, match=r"does not fit model ResNet.*layer1\.0\.conv1\.weight"):
        build_model(ModelConfig(name="timm:resnet14t", weights=str(tmp_path / "pytorch_model.bin")), 3, (3, 32, 32))
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="bad.safetensors: unreadable safetensors"):
        build_model(ModelConfig(name="timm:resnet10t", weights=str(tmp_path / "bad.safetensors")), 3, (3, 32, 32))


def test_freeze_backbone_keeps_batchnorm_activations_and_trains_only_the_classifier():
    """mobilenetv3's BatchNormAct2d holds its activation: freezing keeps it (same outputs)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="timm:mobilenetv3_small_050"), 3, (3, 64, 64)).eval()
    x = torch.randn(2, 3, 64, 64)
    before = model(x)
    freeze(model, "backbone")
    assert torch.allclose(model.eval()(x), before, atol=1e-5)
    total, trainable = count_parameters(model)
    assert trainable == model.classifier.weight.numel() + model.classifier.bias.numel() < total
    convnext = build_model(ModelConfig(name="timm:convnext_atto", freeze="backbone"), 4, (3, 32, 32))
    assert [n for n, p in convnext.named_parameters() if p.requires_grad] == ["head.fc.weight", "head.fc.bias"]


def test_unknown_timm_name_lists_close_matches():
    with pytest.raises(ConfigError, match=r"model\.name='timm:convnext_atoo'.*close matches: timm:convnext_atto"):
        config.load({"model": {"name": "timm:convnext_atoo"}})
    cfg = config.load({"model": {"name": "timm:resnet18d"}})  # a real name passes validation
    assert cfg.model.name == "timm:resnet18d"


def test_init_args_reach_timm_and_a_wrong_one_is_named():
    model = build_model(ModelConfig(name="timm:resnet10t", init_args={"drop_rate": 0.3}), 2, (3, 32, 32))
    assert model.drop_rate == 0.3
    with pytest.raises(ConfigError, match="unexpected keyword argument 'no_such_arg'"):
        build_model(ModelConfig(name="timm:resnet10t", init_args={"no_such_arg": 1}), 2, (3, 32, 32))


def _offline(monkeypatch, cache):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def test_pretrained_offline_without_the_file_says_how_to_use_weights(tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path / "empty_cache")
    with pytest.raises(ConfigError, match=r"HF_HUB_OFFLINE is set.*timm/resnet10t.*model\.weights=PATH"):
        build_model(ModelConfig(name="timm:resnet10t", pretrained=True), 2, (3, 32, 32))


def test_pretrained_offline_uses_the_local_hugging_face_cache(tmp_path, monkeypatch):
    """The cache laid out as huggingface_hub writes it: refs/main names the snapshot."""
    from safetensors.torch import save_file

    repo = tmp_path / "hub" / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    torch.manual_seed(1)
    src = timm.create_model("resnet10t")
    save_file(src.state_dict(), repo / "snapshots" / "0123abcd" / "model.safetensors")
    _offline(monkeypatch, tmp_path / "hub")
    model = build_model(ModelConfig(name="timm:resnet10t", pretrained=True), 2, (3, 32, 32))
    assert torch.equal(model.layer3[0].conv2.weight, src.layer3[0].conv2.weight) and model.fc.out_features == 2


def test_pretrained_with_the_hub_unreachable_fails_at_once(tmp_path, monkeypatch):
    from huggingface_hub import constants

    with socket.socket() as s:  # a port nothing listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1 cannot be reached.*model\.pretrained=false model\.weights=PATH"):
        build_model(ModelConfig(name="timm:resnet10t", pretrained=True), 2, (3, 32, 32))


@needs_shared(CATSDOGS)
def test_a_timm_model_exports_to_onnx_and_serves_the_checkpoints_predictions(catsdogs, tmp_path):
    """timm:NAME through the last mile: ONNX export (its parity checked on the run's own data) and
    `trainlab serve` of the export answer a real photo as the checkpoint's server does."""
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from trainlab.inference.export import export
    from trainlab.inference.serve import create_app

    run = trainlab.train(_recipe(catsdogs, tmp_path / "run", {"name": "timm:resnet10t"}, 32))
    res = export(trainlab.load(run.best_checkpoint), "onnx", tmp_path / "model.onnx", checkpoint=run.best_checkpoint)
    assert res.parity["inputs"] == "data" and res.parity["max_abs_diff"] <= 1e-3 and res.parity["top1_agreement"] == 1
    photo = sorted((CATSDOGS / "test_set" / "dogs").glob("*.jpg"))[0].read_bytes()
    answers = []
    for model in (run.best_checkpoint, tmp_path / "model.onnx"):
        with TestClient(create_app(model)) as c:
            r = c.post("/predict", content=photo, headers={"content-type": "image/jpeg"})
            assert r.status_code == 200, r.text
            answers.append(r.json()["top"])
    assert [t["class"] for t in answers[0]] == [t["class"] for t in answers[1]]
    assert all(abs(a["probability"] - b["probability"]) < 1e-4 for a, b in zip(*answers))
