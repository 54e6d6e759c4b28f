"""What an export carries (``export_meta``) and the Markdown model card written beside it, in the
style of a hub model page: task, classes, input, the recipe, test metrics with a 95% interval,
training data and time, how to load the file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .. import atomic
from ..analysis.stats import wilson

FORMAT_VERSION = 1


def export_meta(model, sig, fmt: str) -> dict:
    """Everything a user of the exported file needs, JSON-ready (also what ``trainlab predict`` and
    ``trainlab serve`` read back from an ONNX export)."""
    meta, cfg = model.trainlab_meta, model.trainlab_config
    lm = meta.get("task") == "language_model"
    out = {
        "trainlab_export": FORMAT_VERSION, "format": fmt, "task": meta.get("task"), "model": cfg.model.name,
        "model_class": meta.get("model_class"), "model_kwargs": meta.get("model_kwargs"),
        "input": "tokens" if lm else ("clip" if meta.get("input") == "clip" else "image"),
        "input_shape": meta.get("input_shape"), "inputs": sig.inputs, "outputs": sig.outputs,
        "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in sig.axes.items()},
        "config": cfg.to_dict(),
    }
    if lm:
        out.update(vocab={"level": meta.get("level"), "itos": meta.get("itos")}, vocab_size=meta.get("vocab_size"),
                   max_len=getattr(model, "max_len", None))
    else:
        out.update(class_names=model.class_names, mean=meta.get("mean"), std=meta.get("std"),
                   resize=cfg.data.resize, channels=meta["input_shape"][-3])
    return out


def _run_facts(checkpoint) -> dict:
    """The run directory's final test record and timing, when the checkpoint still sits in its run."""
    if checkpoint is None:
        return {}
    run = Path(checkpoint).resolve().parent.parent
    facts = {"run": str(run)}
    mfile = run / "metrics.jsonl"
    if mfile.is_file():
        rows = [json.loads(line) for line in mfile.read_text(encoding="utf-8").splitlines() if line.strip()]
        facts["test"] = next((r for r in reversed(rows) if r.get("split") == "test"), None)
        facts["epochs"] = max((r.get("epoch", 0) for r in rows), default=0)
    if (run / "timing.json").is_file():
        facts["timing"] = json.loads((run / "timing.json").read_text(encoding="utf-8"))
    return facts


def _metrics_lines(test: dict | None, unit: str) -> list[str]:
    if not test:
        return ["No test evaluation was recorded for this run."]
    n = int(test.get("samples") or test.get("tokens") or 0)
    lines = ["| metric | value | 95% interval |", "| --- | --- | --- |"]
    for k, v in test.items():
        if k.startswith("acc") and isinstance(v, float):
            lo, hi = wilson(v * n, n)
            lines.append(f"| {k} | {v:.4f} | [{lo:.4f}, {hi:.4f}] (Wilson, n={n}) |")
        elif k in ("loss", "ppl") and isinstance(v, float):
            lines.append(f"| {k} | {v:.4f} | not computed (needs per-{unit[:-1] or 'sample'} losses) |")
    lines.append(f"\nMeasured on {n} test {unit} ({test.get('weights', 'the exported weights')}).")
    return lines


def _input_lines(meta: dict) -> list[str]:
    if meta["input"] == "tokens":
        v = meta["vocab"]
        return [f"- Input: token ids [batch, time] (int64), a {v['level']}-level vocabulary of "
                f"{meta['vocab_size']} entries (carried in the metadata as `vocab.itos`)",
                f"- Output: {', '.join(meta['outputs'])}; logits [batch, time, {meta['vocab_size']}]"]
    shape = "x".join(str(s) for s in meta["input_shape"])
    layout = "[batch, time, channels, height, width]" if meta["input"] == "clip" else "[batch, channels, height, width]"
    names = meta["class_names"]
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    return [f"- Input: float32 {layout}, one input {shape}; pixels scaled to [0, 1] then normalised with "
            f"mean {_fmt(meta['mean'])} and std {_fmt(meta['std'])} (resize: {meta['resize']})",
            f"- Output: logits [batch, {len(names)}]; softmax for probabilities",
            f"- Classes ({len(names)}): {shown}"]


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]" if values else "none"


LOADING = {
    "onnx": ("import json, onnxruntime as ort\n"
             "sess = ort.InferenceSession('{name}', providers=['CPUExecutionProvider'])\n"
             "meta = json.loads(sess.get_modelmeta().custom_metadata_map['trainlab.json'])\n"
             "logits = sess.run(None, {{'{first}': x}})[0]   # x: numpy array as in 'Input'"),
    "torchscript": ("import json, torch\n"
                    "extra = {{'trainlab.json': ''}}\n"
                    "model = torch.jit.load('{name}', _extra_files=extra)\n"
                    "meta = json.loads(extra['trainlab.json'])\n"
                    "logits = model(x)"),
    "safetensors": ("import json\nfrom safetensors.torch import load_file\n"
                    "{build}\n"
                    "model.load_state_dict(load_file('{name}'))\n"
                    "meta = json.load(open('{sidecar}'))"),
    "state_dict": ("import torch\n"
                   "{build}\n"
                   "model.load_state_dict(torch.load('{name}', weights_only=True))"),
}


def _build_line(meta: dict) -> str:
    """The constructor call that rebuilds the architecture (or your own class with the same names)."""
    module, _, cls = (meta.get("model_class") or "your_module:YourModel").partition(":")
    kwargs = {**(meta["config"]["model"].get("init_args") or {}), **(meta.get("model_kwargs") or {})}
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"from {module} import {cls}   # or your own class with the same parameter names\nmodel = {cls}({args})"


def card_path(out: Path) -> Path:
    """model.onnx -> model.onnx.md"""
    return Path(out).with_name(Path(out).name + ".md")


def write_model_card(model, meta: dict, out: Path, fmt: str, parity: dict, checkpoint=None) -> Path:
    cfg = meta["config"]
    facts = _run_facts(checkpoint)
    unit = model.trainlab_meta.get("task_metrics", {}).get("unit", "samples")
    timing = facts.get("timing", {})
    code = LOADING[fmt].format(name=Path(out).name, first=meta["inputs"][0], build=_build_line(meta),
                               sidecar=Path(out).name + ".json")
    lines = [
        f"# {cfg['run'].get('name') or cfg['model']['name']}: {meta['model']} for {meta['task']}", "",
        f"A `{meta['model']}` ({meta['model_class']}) trained with trainlab, exported as {fmt} (`{Path(out).name}`).", "",
        "## Task and input", "", f"- Task: {meta['task']}", *_input_lines(meta),
        f"- Batch axis dynamic: {', '.join(f'{k}[{a}]' for k, v in meta['dynamic_axes'].items() for a in v)}", "",
        "## Test metrics", "", *_metrics_lines(facts.get("test"), unit), "",
        "## Training", "",
        f"- Data: `{cfg['data']['name']}`" + (f" from `{cfg['data']['root']}`" if cfg['data'].get('root') else ""),
        f"- Epochs: {facts.get('epochs', cfg['train']['epochs'])}; fit time {timing.get('fit_s', 'unknown')} s"
        f" (data preparation {timing.get('data_s', 'unknown')} s)",
        f"- Optimizer: {cfg['optim']['name']}, lr {cfg['optim']['lr']}; schedule: {cfg['schedule']['name']}",
        f"- Run directory: `{facts.get('run', 'unknown')}`", "",
        "## Export check", "",
        f"Checked against the PyTorch model on {parity['samples']} {'real inputs from the run' if parity.get('inputs') == 'data' else 'random inputs'}: "
        f"max absolute difference {parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']:g}), "
        f"top-1 agreement {parity['top1_agreement']:.1%}.", "",
        "## How to load it", "", "```python", code, "```", "",
        "## Recipe", "", "```yaml", yaml.safe_dump({k: cfg[k] for k in ("data", "model", "task", "optim", "schedule", "train")
                                                    if k in cfg}, sort_keys=False).rstrip(), "```", "",
    ]
    path = card_path(out)
    atomic.write_text(path, "\n".join(lines))
    return path
