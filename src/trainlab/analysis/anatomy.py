"""Model anatomy: per-module output shapes, parameters (trainable/frozen, shared counted once)
and multiply-adds, from one forward pass with hooks.

Rows follow the module tree (``named_modules`` order), so a module that the forward pass
never called still appears, with no output shape. A parameter tied between two modules (a
language model's embedding and output layer) belongs to the first module that owns it; the
later one shows it as shared and adds nothing to the totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import DataError
from ._macs import FunctionCounter, _first_tensor, module_macs


@dataclass
class Row:
    name: str                 # dotted module path ('' for the model itself)
    kind: str                 # class name
    depth: int                # 0 for the model, 1 for its children ...
    leaf: bool
    output: tuple | None      # output shape of the first call (batch 1), None if never called
    params: int = 0           # this module's own parameters not already counted elsewhere
    trainable: int = 0
    shared: int = 0           # parameters tied to a module listed earlier
    shared_with: str = ""
    macs: int = 0             # summed over every call (a module reused k times counts k times)
    calls: int = 0
    order: int = -1           # position of its first call in the forward pass (-1: never called)
    function: str = ""        # what a function it called computed, e.g. attention's q/k/v and scores
    total_params: int = 0     # own + children, each tensor once (set after collection)
    total_trainable: int = 0
    total_macs: int = 0


@dataclass
class Anatomy:
    model: str
    input_shape: tuple
    rows: list[Row] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def _own_params(model: nn.Module) -> dict[str, tuple[int, int, int, str]]:
    """module name -> (new params, new trainable, shared params, owner of the shared ones)."""
    owner: dict[int, str] = {}
    out: dict[str, tuple[int, int, int, str]] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        if name in out:
            continue
        new = train = shared = 0
        shared_with = ""
        for p in mod.parameters(recurse=False):
            if id(p) in owner and owner[id(p)] != name:
                shared += p.numel()
                shared_with = shared_with or owner[id(p)]
                continue
            owner[id(p)] = name
            new += p.numel()
            train += p.numel() if p.requires_grad else 0
        out[name] = (new, train, shared, shared_with)
    return out


def example_input(input_shape, dtype: str = "float") -> torch.Tensor:
    """A batch of one: zeros for images, token id 0 for language models (dtype 'long')."""
    if dtype == "long":
        return torch.zeros(1, *input_shape, dtype=torch.long)
    return torch.zeros(1, *input_shape)


class _Recorder:
    """Forward hooks for every module: first output shape, mult-adds and calls per module name."""

    def __init__(self, model: nn.Module):
        self.modules = dict(model.named_modules())
        self.stats: dict[str, list] = {name: [None, 0, 0] for name in self.modules}  # shape, macs, calls
        self.started: dict[str, int] = {}
        self.running: list[str] = []  # modules whose forward is in progress, innermost last
        self.functions: dict[str, str] = {}  # module -> what a function it called computed (attention)
        self.hooks = []
        for name, mod in self.modules.items():
            self.hooks.append(mod.register_forward_hook(self._after(name), with_kwargs=True))
            self.hooks.append(mod.register_forward_pre_hook(self._before(name)))

    def _before(self, name: str):
        def fn(mod, args):
            self.started.setdefault(name, len(self.started))
            self.running.append(name)
        return fn

    def _after(self, name: str):
        def fn(mod, args, kwargs, out):
            args = args or tuple(v for k, v in kwargs.items() if k in ("input", "query", "key", "value"))
            s = self.stats[name]
            t = _first_tensor(out)
            if s[0] is None and t is not None:
                s[0] = tuple(t.shape)
            s[1] += module_macs(mod, args, out)
            s[2] += 1
            if self.running and self.running[-1] == name:
                self.running.pop()
        return fn

    def credit(self, macs: int, what: str = "") -> None:
        """Mult-adds of a function (attention) called inside the innermost running module, and what
        it computed (the first call's shapes)."""
        if self.running and not isinstance(self.modules[self.running[-1]], nn.MultiheadAttention):
            self.stats[self.running[-1]][1] += macs  # (MultiheadAttention's own rule already counts it)
            if what:
                self.functions.setdefault(self.running[-1], what)

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def analyse(model: nn.Module, input_shape, dtype: str = "float") -> Anatomy:
    """Run one forward pass (eval mode, no grad, CPU) and describe every module."""
    params = _own_params(model)
    rec = _Recorder(model)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), FunctionCounter(rec.credit):
            try:
                model(example_input(input_shape, dtype).to(_device(model)))
            except (RuntimeError, ValueError, TypeError, IndexError) as e:
                shape = "x".join(map(str, input_shape))
                raise DataError(
                    f"{type(model).__name__} cannot take an input of {shape} ({dtype}): "
                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. Check --input: CxHxW for images "
                    f"(e.g. 1x28x28, 3x64x64), T with --dtype long for token ids") from None
    finally:
        model.train(was_training)
        rec.remove()
    stats, started = rec.stats, rec.started
    anatomy = Anatomy(type(model).__name__, tuple(input_shape))
    for name, mod in model.named_modules():
        new, train, shared, with_ = params[name]
        shape, macs, calls = stats[name]
        anatomy.rows.append(Row(name, type(mod).__name__, 0 if not name else name.count(".") + 1,
                                not any(True for _ in mod.children()), shape, new, train, shared, with_,
                                macs, calls, started.get(name, -1), rec.functions.get(name, "")))
    for r in anatomy.rows:  # subtree totals, each tensor once
        prefix = r.name + "." if r.name else ""
        sub = [o for o in anatomy.rows if o is r or o.name.startswith(prefix)]
        r.total_params = sum(o.params for o in sub)
        r.total_trainable = sum(o.trainable for o in sub)
        r.total_macs = sum(o.macs for o in sub)
    return anatomy


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
