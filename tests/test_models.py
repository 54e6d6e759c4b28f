import inspect

import pytest
import torch

from trainlab import registry
from trainlab.config import ModelConfig
from trainlab.errors import ConfigError
from trainlab.models import build_model, count_parameters


GREY_OK = {"mlp", "lenet5", "convnet", "bilstm_rows", "resnet18"}
# large torchvision variants share their code path with resnet18: run them with -m slow
SLOW = {"resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
        "vgg19", "vgg19_bn", "vit_b_16"}


# language models (they take a vocab_size) are checked on token ids in test_lm.py, clip models in test_video.py
IMAGE_MODELS = [n for n in registry.MODELS.names()
                if "vocab_size" not in inspect.signature(registry.MODELS.get(n)).parameters
                and not getattr(registry.MODELS.get(n), "takes_clips", False)]


def _cases():
    for name in IMAGE_MODELS:
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(name, (3, 32, 32), {}, marks=marks)
        if name in GREY_OK:
            yield pytest.param(name, (1, 28, 28), {"stem": "small"} if name == "resnet18" else {}, marks=marks)


@pytest.mark.parametrize("name, shape, args", list(_cases()))
def test_every_model_forward_backward(name, shape, args):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, init_args=args), num_classes=7, input_shape=shape)
    x = torch.randn(4, *shape)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # the second pass: zero-initialised heads (ViT) pass gradients on after one step
        opt.zero_grad()
        out = model(x)
        assert out.shape == (4, 7)
        assert torch.isfinite(out).all()
        torch.nn.functional.cross_entropy(out, y).backward()
        opt.step()
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # speednet fixes its BN scales
    missing = [n for n, p in trained if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing}"
    zero = [n for n, p in trained if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with a zero gradient: {zero}"


def test_classic_mnist_convnet_recipe_shape():
    model = build_model(ModelConfig(name="convnet", init_args={"channels": [32, 64], "hidden": [128, 64]}),
                        10, (1, 28, 28))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 and len(linears) == 3
    assert linears[0].in_features == 64 * 7 * 7


def test_unknown_model_argument_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'model.init_args.channels'"):
        build_model(ModelConfig(name="convnet", init_args={"chanels": [8]}), 10, (1, 28, 28))


def test_lenet5_has_the_classic_parameter_count():
    # LeNet-5 on 32x32 input: 61,706 parameters (the textbook figure).
    total, trainable = count_parameters(build_model(ModelConfig(name="lenet5"), 10, (1, 32, 32)))
    assert total == trainable == 61706


def test_any_torchvision_model_by_name_and_small_stem():
    model = build_model(ModelConfig(name="mobilenet_v3_small"), 5, (3, 32, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    small = build_model(ModelConfig(name="resnet18", init_args={"stem": "small"}), 200, (3, 64, 64))
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, torch.nn.Identity)
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        build_model(ModelConfig(name="resnet81"), 5, (3, 32, 32))


def test_pretrained_offline_says_to_use_weights(monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(ConfigError, match=r"could not download .*resnet18.*model.weights=PATH"):
        build_model(ModelConfig(name="resnet18", pretrained=True), 2, (3, 64, 64))
