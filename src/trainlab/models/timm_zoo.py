"""timm models by name: ``model.name=timm:resnet18d``, ``timm:convnext_atto``, ``timm:vit_tiny_patch16_224``.

Any architecture ``timm.list_models()`` lists (a pretrained tag too: ``timm:resnet18d.ra2_in1k``),
built by ``timm.create_model`` with the data's class count and channels and, for models that take
one (ViTs), its input size as ``img_size``; ``model.init_args`` go to the constructor.
``model.pretrained=true`` is timm's own download (the Hugging Face hub); offline, only a file
already in the local Hugging Face cache is used, else a ConfigError says how to use
``model.weights=PATH``. A weights file for a timm model (``adapt_state``) first goes through the
architecture's own ``checkpoint_filter_fn`` (a ViT's position embeddings resampled to the input
size) and gets its first convolution adapted to other input channels.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
import sys
from urllib.parse import urlparse

from torch import nn

from ..errors import ConfigError
from ..registry import MODELS

PREFIX = "timm:"
LOG = logging.getLogger("trainlab")
_OFFLINE_WORDS = ("1", "true", "yes", "on")


def _timm():
    try:
        import timm
    except ImportError:
        raise ConfigError("timm is not installed: pip install timm") from None
    return timm


def resolve(name: str):
    """Any timm model by name (timm.list_models()): timm:resnet18d, timm:convnext_atto, timm:vit_tiny_patch16_224

    Returns the factory; an unknown name is a ConfigError listing close matches."""
    timm = _timm()
    if not timm.is_model(name):
        arch = name.split(".", 1)[0]
        every = timm.list_models()
        close = timm.list_models(f"*{arch}*")[:6] or difflib.get_close_matches(arch, every, n=6, cutoff=0.6)
        hint = f"close matches: {', '.join(PREFIX + c for c in close)}; " if close else ""
        raise ConfigError(f"unknown timm model '{name}'; {hint}timm.list_models('PATTERN*') lists the "
                          f"{len(every)} architectures")
    return _factory(name)


def _factory(name: str):
    def factory(num_classes: int = 1000, in_channels: int = 3, input_size=None, pretrained: bool = False,
                **kwargs):
        return timm_model(name, num_classes, in_channels, input_size, pretrained, **kwargs)

    factory.__name__ = PREFIX + name
    factory.__doc__ = f"timm {name} (any class count, channels; img_size from the data where it takes one)"
    return factory


def timm_model(name: str, num_classes: int = 1000, in_channels: int = 3, input_size=None,
               pretrained: bool = False, **kwargs) -> nn.Module:
    kwargs = {"num_classes": num_classes, "in_chans": in_channels, **kwargs}
    cached = _offline_pretrained(name) if pretrained else None
    model = _create(name, pretrained and cached is None, input_size, kwargs)
    if cached:
        from .finetune import load_weights

        LOG.info("model.pretrained=true: offline; %s from the local Hugging Face cache", cached)
        load_weights(model, cached)
    return model


def _create(name: str, pretrained: bool, input_size, kwargs: dict) -> nn.Module:
    timm = _timm()
    if input_size and "img_size" not in kwargs:
        size = tuple(int(s) for s in input_size)
        try:
            return _call(timm, name, pretrained, {**kwargs, "img_size": size[0] if len(set(size)) == 1 else size})
        except TypeError as e:  # raised before any layer is built: this model takes no img_size
            if "img_size" not in str(e):
                raise
    return _call(timm, name, pretrained, kwargs)


def _call(timm, name: str, pretrained: bool, kwargs: dict) -> nn.Module:
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except TypeError:
        raise
    except Exception as e:  # noqa: BLE001 - blocked, removed or no weights: say how to use a local file
        raise _download_error(name, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _source(name: str) -> tuple[str, str]:
    """(hub repo id or '', the URL timm downloads from) for a model's default pretrained weights."""
    from huggingface_hub import constants

    cfg = _timm().models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ConfigError(f"model.pretrained=true: timm publishes no pretrained weights for {name}; "
                          f"use model.weights=PATH")
    if cfg.hf_hub_id:
        return cfg.hf_hub_id, f"{constants.ENDPOINT}/{cfg.hf_hub_id}/resolve/main/model.safetensors"
    return "", cfg.url


def _download_error(name: str, why: str) -> ConfigError:
    repo, url = _source(name)
    how = f"`hf download {repo} model.safetensors`, or {url}" if repo else url
    return ConfigError(f"model.pretrained=true: could not get timm's weights for {name} ({why}). Offline? "
                       f"Download the file elsewhere ({how}) and set model.pretrained=false model.weights=PATH")


def _offline_pretrained(name: str) -> str | None:
    """None when the download can be tried; the cached file when offline; else the offline error."""
    repo, url = _source(name)
    why = _unreachable(url)
    if not why:
        return None
    if repo:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return found
    raise _download_error(name, why)


def _unreachable(url: str) -> str:
    """Why the weights' host cannot be reached ('' when it answers or a proxy stands between)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _OFFLINE_WORDS or constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""
    parts = urlparse(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=5).close()
    except OSError as e:
        return f"{parts.hostname} cannot be reached: {e}"
    return ""


def is_timm(model: nn.Module) -> bool:
    return type(model).__module__.startswith("timm.")


def adapt_state(model: nn.Module, state: dict) -> dict:
    """A weights file for a timm model as its own pretrained loading prepares one: the architecture's
    ``checkpoint_filter_fn`` (format conversion, position embeddings resampled to the input size),
    then a first convolution saved for other input channels adapted to the model's."""
    from timm.models import adapt_input_conv

    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(dict(state), model)
        except TypeError:  # a filter of the state alone
            state = filter_fn(dict(state))
    convs = getattr(model, "pretrained_cfg", {}).get("first_conv") or ()
    own = model.state_dict()
    for conv in (convs,) if isinstance(convs, str) else convs:
        key = conv + ".weight"
        if key in state and key in own and state[key].ndim == 4 and state[key].shape[1] != own[key].shape[1]:
            try:
                state[key] = adapt_input_conv(own[key].shape[1], state[key], base_chans=state[key].shape[1])
            except (NotImplementedError, ValueError, AssertionError):
                pass  # left as it is: load_weights names the key that does not fit
    return state


MODELS.prefixes[PREFIX] = resolve
