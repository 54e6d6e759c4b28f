"""The deliverables a lab file asks for, each written into the lab folder and shown in its report.

``deliverables:`` in a lab file (see trainlab.sweep.lab) may hold:

    diff: [[a, b], ...]          # evaluate two runs' best checkpoints, list the samples they disagree on
    predict: {run: NAME|best, files: [PATH, ...]}   # top-5 for a few files
    layers: [NAME, ...]          # per-layer output sizes (and attention internals for a Transformer)
    generate: {runs: [NAME, ...], prompt: "the", words: 40, temperature: 0.9, seed: 0}
    devices: {run: NAME, steps: 20}                 # time per step on CPU, 1 GPU and every GPU count
    tensorboard: true            # where the scalars and the network graph are

Each section is computed from the finished runs' checkpoints (never by training) and written to
``OUT/lab/`` (CSV, PNG, UTF-8 text) so the files can be handed in as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ._doc import Doc

LOG = logging.getLogger("trainlab")


def _best(run_dirs: dict, name: str) -> Path | None:
    d = run_dirs.get(name)
    p = d / "checkpoints" / "best.pt" if d else None
    return p if p is not None and p.is_file() else None


def diff_section(doc: Doc, pairs, run_dirs: dict, out: Path) -> None:
    from .diff import diff_checkpoints

    doc.heading("Evaluate-only of two checkpoints, and the samples they disagree on", 2)
    for a, b in pairs:
        ca, cb = _best(run_dirs, a), _best(run_dirs, b)
        if ca is None or cb is None:
            doc.para(f"{a} vs {b}: a best.pt is missing (did both runs finish?)", note=True)
            continue
        res = diff_checkpoints(ca, cb, out=out / f"diff_{a}_vs_{b}", force=True, sheet_size=24)
        s = res.summary
        doc.heading(f"{a} vs {b} ({res.split} split)", 3)
        mc = s["mcnemar"]
        doc.table(["", a, b], [["accuracy (%)", round(s["accuracy_a"] * 100, 2), round(s["accuracy_b"] * 100, 2)],
                               ["right where the other is wrong", mc["b"], mc["c"]]])
        doc.para(f"{s['samples']:,} samples; the two agree on {s['agreement']:.1%} and disagree on "
                 f"{s['disagreements']:,} ({s['both_wrong']:,} wrong in both). McNemar ({mc['method']}): "
                 f"p = {mc['p_value']:.3g} (a small p: the accuracies differ beyond chance on these samples). "
                 f"All disagreements, by file: {res.files['disagreements']}", note=True)
        rows = [[Path(str(r["id"])).name, r["true"], r["pred_a"], f"{r['conf_a']:.2f}", r["pred_b"],
                 f"{r['conf_b']:.2f}"] for r in res.disagreements[:20]]
        if rows:
            doc.table(["file", "true", f"{a} predicts", "p", f"{b} predicts", "p"], rows, fit=True)
        sheet = res.files.get("contact_sheet")
        if sheet:
            doc.image(f"diff_{a}_vs_{b}.png", Path(sheet).read_bytes(), f"disagreements of {a} and {b}")


def predict_section(doc: Doc, spec: dict, run_dirs: dict, best_name: str, base: Path, out: Path) -> None:
    from ..api import load
    from ..inference.predict import predict_files, write_predictions_csv

    name = best_name if spec.get("run", "best") == "best" else spec["run"]
    ckpt = _best(run_dirs, name)
    doc.heading(f"A prediction with {name}", 2)
    if ckpt is None:
        doc.para(f"{name}: no best.pt", note=True)
        return
    files = [base / f for f in spec.get("files", [])]
    rows = predict_files(load(ckpt), files, topk=5)
    write_predictions_csv(rows, out / f"predict_{name}.csv")
    doc.pre(f"trainlab predict {ckpt} {' '.join(str(f) for f in files)}")
    doc.table(["file", "prediction", "probability", "then"],
              [[Path(r["path"]).name, r["top"][0][0], f"{r['top'][0][1]:.3f}",
                ", ".join(f"{n} {p:.2f}" for n, p in r["top"][1:])] for r in rows], fit=True)


def layers_section(doc: Doc, names, run_dirs: dict, out: Path) -> None:
    from .. import atomic
    from ..api import load
    from .summary import summarize_model

    for name in names:
        ckpt = _best(run_dirs, name)
        doc.heading(f"Per-layer output sizes: {name}", 2)
        if ckpt is None:
            doc.para(f"{name}: no best.pt", note=True)
            continue
        model = load(ckpt)
        meta = model.trainlab_meta
        text = summarize_model(model, meta.get("input_shape"), meta.get("input_dtype", "float")).text(depth=4)
        atomic.write_text(out / f"layers_{name}.txt", text + "\n")
        doc.para(f"trainlab summary {ckpt} (written to {out / f'layers_{name}.txt'})", note=True)
        doc.pre(text)


def generate_section(doc: Doc, spec: dict, run_dirs: dict, out: Path) -> None:
    from ..api import load
    from ..data.vocab import Vocab
    from ..inference.generate import generate, write_stream

    doc.heading("Generated text", 2)
    prompt = spec.get("prompt", "")
    for name in spec.get("runs") or list(run_dirs):
        ckpt = _best(run_dirs, name)
        if ckpt is None:
            continue
        model = load(ckpt)
        pieces = generate(model, Vocab.from_meta(model.trainlab_meta), int(spec.get("words", 40)), prompt=prompt,
                          temperature=float(spec.get("temperature", 1.0)), top_k=spec.get("top_k"),
                          top_p=spec.get("top_p"), seed=int(spec.get("seed", 0)))
        path = out / f"generated_{name}.txt"
        text = write_stream(iter([prompt, *pieces]), path, None)
        doc.heading(name, 3)
        doc.para(f"{spec.get('words', 40)} words after the prompt {prompt!r}, temperature {spec.get('temperature', 1.0)}, "
                 f"seed {spec.get('seed', 0)}; written as UTF-8 to {path}", note=True)
        doc.pre(text.strip(), wrap=True)


def devices_section(doc: Doc, spec: dict, run_dirs: dict, out: Path) -> None:
    from .. import atomic
    from ..sweep.devices import bench_devices, format_table

    name = spec["run"]
    cfg_path = run_dirs[name] / "config.yaml" if name in run_dirs else None
    doc.heading(f"Training time per step: CPU vs 1 GPU vs every GPU ({name})", 2)
    if cfg_path is None or not cfg_path.is_file():
        doc.para(f"{name}: no config.yaml", note=True)
        return
    rows, notes = bench_devices(str(cfg_path), ["run.tensorboard=false"], int(spec.get("steps", 20)))
    table = format_table(rows, notes)
    atomic.write_text(out / f"devices_{name}.txt", table + "\n")
    doc.pre(table)
    doc.para(f"The same optimizer steps of {name}'s recipe timed on each device count "
             f"(trainlab bench devices {cfg_path} --steps {spec.get('steps', 20)}).", note=True)


def tensorboard_section(doc: Doc, run_dirs: dict, sweep_out: Path) -> None:
    doc.heading("TensorBoard: scalars and the network graph", 2)
    rows = []
    for name, d in run_dirs.items():
        events = sorted((d / "tensorboard").glob("**/events.out.tfevents.*")) if (d / "tensorboard").is_dir() else []
        rows.append([name, len(events), sum(e.stat().st_size for e in events)])
    doc.table(["run", "event files", "bytes"], rows)
    doc.pre(f"tensorboard --logdir {sweep_out / 'runs'}")
    doc.para("Each run writes its scalars (loss, accuracy, learning rate per epoch) and its network graph "
             "(run.tensorboard_graph) there; the command above shows every run of the lab side by side.", note=True)
