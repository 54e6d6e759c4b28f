"""The opt-in training-dynamics callback, its report section, and TensorBoard's hparams."""

from __future__ import annotations

import json

from conftest import tiny_recipe


def test_dynamics_callback_writes_per_layer_measurements_and_the_report_shows_them(tmp_path):
    import trainlab
    from trainlab.analysis.report import write_report

    run = trainlab.train(tiny_recipe(tmp_path / "run", data={"max_samples": 256},
                                     train={"epochs": 2, "callbacks": [{"name": "dynamics", "every": 3}]},
                                     run={"tensorboard": True}))
    recs = [json.loads(line) for line in (run.dir / "dynamics.jsonl").read_text().splitlines()]
    steps = run.metrics[-1]["step"]
    assert [r["step"] for r in recs] == list(range(3, steps + 1, 3))
    layers = set(recs[0]["grad_norm"])
    assert {"features.0", "classifier.3"} <= layers and set(recs[0]["update_ratio"]) == layers
    assert all(0 < v < 1 for r in recs for v in r["update_ratio"].values())
    assert all(v > 0 for r in recs for v in r["grad_norm"].values())
    html, _ = write_report([run.dir], tmp_path / "r.html")
    assert "Training dynamics (per layer)" in html.read_text()
    events = b"".join(p.read_bytes() for p in (run.dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert b"hparams" in events and b"dynamics/update_ratio" in events


def test_dead_and_exploding_layers_are_named():
    from trainlab.analysis.dynamics_section import findings

    recs = [{"step": s, "grad_norm": {"a": 1.0, "dead": 0.0, "boom": 1.0 if s < 40 else 500.0},
             "update_ratio": {"a": 1e-3, "dead": 0.0, "boom": 1e-3 if s < 40 else 0.5}} for s in range(10, 60, 10)]
    notes = findings(recs)
    assert any(n.startswith("dead: dead or frozen in 5 of 5") for n in notes)
    assert any(n.startswith("boom: exploding") and "40" in n for n in notes)
    assert not any(n.startswith("a:") for n in notes)
