"""trainlab embed: penultimate features of the test split cached in the run, TensorBoard's projector, the
report's t-SNE map; a second call reuses the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_recipe
from PIL import Image

from trainlab.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import trainlab

    return trainlab.train(tiny_recipe(tmp_path_factory.mktemp("embed") / "run", train={"epochs": 1}))


def test_embed_caches_features_points_and_a_projector(run, capsys):
    from trainlab.analysis.embedding_section import read_points
    from trainlab.predictions import read_csv

    assert main(["embed", str(run.best_checkpoint)]) == 0
    assert "embeddings written to" in capsys.readouterr().out
    folder = run.dir / "embeddings"
    feats = np.load(folder / "features.npy")
    points = read_points(folder)
    preds = {r["index"]: r for r in read_csv(run.dir / "predictions.csv")}
    assert feats.shape == (len(preds), 32) and feats.dtype == np.float32  # convnet's hidden layer: 32 wide
    assert len(points) == len(preds) and all(np.isfinite([p["x"], p["y"]]).all() for p in points)
    for p in points:  # the same samples, classes and predictions as the final test's predictions.csv
        r = preds[p["index"]]
        assert (p["sample_id"], p["target"], p["pred"]) == (r["sample_id"], r["target"], r["pred"])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["samples"] == len(points) and meta["feature_dims"] == 32 and meta["split"] == "test"
    proj = next((folder / "projector").rglob("tensors.tsv")).parent
    assert len((proj / "tensors.tsv").read_text().splitlines()) == len(points)
    assert (proj / "metadata.tsv").read_text().splitlines()[0].split("\t") == ["true", "predicted", "correct"]
    side = int(np.ceil(np.sqrt(len(points)))) * 32  # a square sprite of 32-pixel thumbnails
    assert Image.open(proj / "sprite.png").size == (side, side)
    assert "sprite" in next((folder / "projector").rglob("projector_config.pbtxt")).read_text()


def test_a_second_call_reuses_the_cache_and_another_limit_needs_force(run, capsys):
    if not (run.dir / "embeddings" / "meta.json").is_file():
        assert main(["embed", str(run.best_checkpoint)]) == 0
    before = (run.dir / "embeddings" / "points.csv").stat().st_mtime_ns
    assert main(["embed", str(run.best_checkpoint)]) == 0
    assert "already in" in capsys.readouterr().out
    assert (run.dir / "embeddings" / "points.csv").stat().st_mtime_ns == before
    out = run.dir / "embeddings-50"
    assert main(["embed", str(run.best_checkpoint), "--limit", "50", "--out", str(out)]) == 0
    first = (out / "points.csv").read_text()
    assert len(first.splitlines()) == 51
    assert main(["embed", str(run.best_checkpoint), "--limit", "40", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "points.csv").read_text() == first
    assert main(["embed", str(run.best_checkpoint), "--limit", "50", "--out", str(out), "--force"]) == 0
    assert (out / "points.csv").read_text() == first  # the seeded subset and map: the same again
    assert main(["embed", str(run.best_checkpoint), "--limit", "3", "--out", str(run.dir / "e3")]) == 2
    assert "at least 5 samples" in capsys.readouterr().err
    assert main(["embed", str(run.best_checkpoint), "optim.lr=1", "--out", str(run.dir / "e4")]) == 2
    assert "only data.* overrides" in capsys.readouterr().err


def test_the_head_applied_to_the_features_gives_the_logits(run):
    import trainlab
    from trainlab.inference.embed import features
    from trainlab.models.zoo import head

    model = trainlab.load(run.best_checkpoint)
    x = torch.randn(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    feats, logits = features(model, model, x, batch_size=3)
    assert feats.shape == (7, 32)
    with torch.no_grad():
        assert torch.allclose(head(model)[1](feats), logits, atol=1e-5)


def test_the_report_shows_the_map_when_the_cache_exists(run, tmp_path):
    from trainlab.analysis.report import write_report

    if not (run.dir / "embeddings" / "meta.json").is_file():
        assert main(["embed", str(run.best_checkpoint)]) == 0
    html, md = write_report([run.dir], tmp_path / "r.html")
    text = html.read_text()
    assert "Embeddings (test split, penultimate layer)" in text and 'alt="t-SNE map of the penultimate' in text
    assert "tensorboard --logdir" in text and "_embedding.png" in md.read_text()
    both, _ = write_report([run.dir, run.dir], tmp_path / "two.html")
    assert "Embeddings (" not in both.read_text()  # a comparison folds each run without its map
