"""model.weights / model.freeze: head replacement and frozen parameters that do not move."""

import pytest
import torch

from trainlab.config import ModelConfig
from trainlab.engine.checkpoint import save_checkpoint
from trainlab.errors import CheckpointError, ConfigError
from trainlab.models import build_model, count_parameters


def _pretrained_file(tmp_path, as_trainlab_checkpoint: bool):
    torch.manual_seed(0)
    src = build_model(ModelConfig(name="resnet18", init_args={"stem": "small"}), 10, (3, 32, 32))
    path = tmp_path / ("src.pt" if as_trainlab_checkpoint else "src_state_dict.pth")
    if as_trainlab_checkpoint:
        save_checkpoint({"model": src.state_dict()}, path)
    else:
        torch.save(src.state_dict(), path)
    return src, path


@pytest.mark.parametrize("as_checkpoint", [True, False])
def test_weights_load_and_head_is_replaced_for_other_class_count(tmp_path, as_checkpoint):
    src, path = _pretrained_file(tmp_path, as_checkpoint)
    cfg = ModelConfig(name="resnet18", init_args={"stem": "small"}, weights=str(path))
    model = build_model(cfg, 2, (3, 32, 32))
    assert model.fc.out_features == 2
    assert torch.equal(model.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    assert torch.equal(model.bn1.running_mean, src.bn1.running_mean)


def test_weights_of_another_architecture_name_the_keys(tmp_path):
    _, path = _pretrained_file(tmp_path, True)
    with pytest.raises(CheckpointError, match=r"does not fit model ResNet.*conv1.weight"):
        build_model(ModelConfig(name="resnet18", weights=str(path)), 2, (3, 32, 32))  # imagenet stem


def test_frozen_backbone_does_not_change_after_a_step(tmp_path):
    _, path = _pretrained_file(tmp_path, True)
    model = build_model(ModelConfig(name="resnet18", init_args={"stem": "small"}, weights=str(path),
                                    freeze="backbone"), 2, (3, 32, 32))
    total, trainable = count_parameters(model)
    assert trainable == model.fc.weight.numel() + model.fc.bias.numel() < total
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.randint(0, 2, (8,))).backward()
        opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # batch-norm statistics included: nothing else moves


def test_freeze_by_prefix_and_unknown_prefix():
    model = build_model(ModelConfig(name="convnet", freeze="features"), 10, (1, 28, 28))
    assert all(not p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    with pytest.raises(ConfigError, match="no module named"):
        build_model(ModelConfig(name="convnet", freeze="featurez"), 10, (1, 28, 28))


def test_vgg_backbone_freeze_keeps_only_last_linear_trainable():
    model = build_model(ModelConfig(name="vgg_small", freeze="backbone"), 2, (3, 32, 32))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.4.weight", "classifier.4.bias"]
