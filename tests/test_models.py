import inspect

import pytest
import torch

from trainlab import registry
from trainlab.config import ModelConfig
from trainlab.errors import ConfigError
from trainlab.models import build_model, count_parameters


# language models (they take a vocab_size) are checked on token ids in test_lm_models.py
IMAGE_MODELS = [n for n in registry.MODELS.names()
                if "vocab_size" not in inspect.signature(registry.MODELS.get(n)).parameters]


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_forward_backward(name, shape):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name), num_classes=7, input_shape=shape)
    x = torch.randn(4, *shape)
    out = model(x)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing}"
    assert all(p.grad.abs().sum() > 0 for p in model.parameters()), "some parameter got a zero gradient"


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
