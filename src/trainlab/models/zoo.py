"""torchvision classification models by name, adapted to any class count, channels and size.

``resnet18`` ... ``vit_b_16`` are registered by name; any other torchvision classification
model resolves through the registry's fallback (``efficientnet_b0``, ``convnext_tiny``, ...).
``stem="small"`` gives a ResNet the 3x3, stride-1, no-max-pool stem used for 32-64 px inputs.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..registry import MODELS

NAMED = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg11_bn", "vgg13",
         "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vit_b_16"]


def torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ConfigError(f"{type(model).__name__} has no Conv2d to adapt to the input channels")


def head(model: nn.Module) -> tuple[str, nn.Module]:
    """The classifier: the one a timm model's get_classifier() names, else the last nn.Linear in module order."""
    own = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
    if isinstance(own, nn.Module) and not isinstance(own, nn.Identity):
        for n, m in model.named_modules():
            if m is own and n:
                return n, m
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear classifier head")
    return found[-1]


def set_in_channels(model: nn.Module, in_channels: int) -> None:
    name, conv = first_conv(model)
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None)
    replace_module(model, name, new)


def set_num_classes(model: nn.Module, num_classes: int) -> bool:
    """Replace the head when its output size differs. Returns True if replaced."""
    name, lin = head(model)
    if lin.out_features == num_classes:
        return False
    replace_module(model, name, nn.Linear(lin.in_features, num_classes, bias=lin.bias is not None))
    return True


def small_stem(model: nn.Module, in_channels: int) -> None:
    if not (hasattr(model, "conv1") and hasattr(model, "maxpool")):
        raise ConfigError(f"model.init_args.stem=small is for ResNets, not {type(model).__name__}")
    model.conv1 = nn.Conv2d(in_channels, model.conv1.out_channels, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()


def torchvision_model(name: str, num_classes: int = 1000, in_channels: int = 3, input_size=(224, 224),
                      stem: str = "imagenet", pretrained: bool = False, **kwargs) -> nn.Module:
    import torchvision

    if stem not in ("imagenet", "small"):
        raise ConfigError(f"model.init_args.stem={stem!r} must be imagenet or small")
    if name.startswith("vit_") and not pretrained:
        kwargs.setdefault("image_size", int(input_size[0]))
    if pretrained:
        model = _download_pretrained(name, **kwargs)
        set_num_classes(model, num_classes)
    else:
        model = torchvision.models.get_model(name, num_classes=num_classes, **kwargs)
    if stem == "small":
        small_stem(model, in_channels)
    set_in_channels(model, in_channels)
    return model


def _download_pretrained(name: str, **kwargs) -> nn.Module:
    import torchvision

    try:
        return torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
    except Exception as e:  # noqa: BLE001 - offline or blocked: say how to use a local file
        raise ConfigError(
            f"model.pretrained=true: could not download torchvision's ImageNet weights for {name} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Offline? Download the "
            f"state_dict elsewhere (torchvision.models.get_model_weights('{name}').DEFAULT.url) and set "
            f"model.pretrained=false model.weights=PATH") from None


def _named_factory(name: str):
    def factory(num_classes: int = 1000, in_channels: int = 3, input_size=(224, 224), stem: str = "imagenet",
                pretrained: bool = False, **kwargs):
        return torchvision_model(name, num_classes, in_channels, input_size, stem, pretrained, **kwargs)

    factory.__name__ = name
    factory.__doc__ = f"torchvision {name} (stem=imagenet|small; any class count, channels, input size)"
    return factory


for _name in NAMED:
    MODELS.register(_name)(_named_factory(_name))


def _fallback(name: str):
    try:
        return _named_factory(name) if name in torchvision_names() else None
    except Exception:  # noqa: BLE001 - an unusual torchvision build without list_models
        return None


MODELS.fallback = _fallback
