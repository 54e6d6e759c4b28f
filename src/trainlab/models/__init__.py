"""Models: pure nn.Modules built by registered name or by the import path of the user's class.

``build_model`` passes ``num_classes``, ``in_channels`` and ``input_size`` (from the data) to
constructors that take them, then ``model.init_args``. A user's class with a no-argument
constructor (as courses require) works unchanged. ``timm:NAME`` is any timm model (timm_zoo.py).
"""

from __future__ import annotations

from . import cifar_resnet, convnet, lenet, mlp, rnn_lm, small, speednet, timm_zoo, transformer_lm, video, zoo  # noqa: F401,E501
from .build import build_model, count_parameters, import_class

__all__ = ["build_model", "count_parameters", "import_class"]
