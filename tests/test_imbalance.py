"""Imbalanced classes: task.class_weights (auto or a list) weights the training loss as it should,
and data.balanced_sampling draws class-balanced training batches, deterministically per epoch, on
a real imbalanced subset of cats vs dogs (40 cats, 10 dogs)."""

import pytest
import torch
import torch.nn.functional as F

from trainlab import config
from trainlab.build import build_parts
from trainlab.errors import ConfigError

from conftest import SHARED, needs_shared

CATSDOGS = SHARED / "cats-vs-dogs"


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    root = tmp_path_factory.mktemp("imbalanced")
    for split, counts in (("training_set", {"cats": 40, "dogs": 10}), ("test_set", {"cats": 5, "dogs": 5})):
        for cls, n in counts.items():
            (root / split / cls).mkdir(parents=True)
            for src in sorted((CATSDOGS / split / cls).glob("*.jpg"))[:n]:
                (root / split / cls / src.name).symlink_to(src)
    return root


def _parts(root, *overrides):
    cfg = config.load({"data": {"name": "catsdogs", "root": str(root), "size": 32, "valid_fraction": 0.0,
                                "batch_size": 10},
                       "model": {"name": "lenet5"}, "train": {"epochs": 1, "seed": 0, "monitor": "train.loss"}},
                      list(overrides))
    return build_parts(cfg, torch.device("cpu"))


@needs_shared(CATSDOGS)
def test_auto_class_weights_make_the_rare_class_count_more(imbalanced):
    parts = _parts(imbalanced, "task.class_weights=auto")
    w = parts.task.class_weights
    assert w.tolist() == pytest.approx([50 / (2 * 40), 50 / (2 * 10)])  # N / (classes x count)
    assert parts.meta["class_weights"] == pytest.approx(w.tolist())
    logits = torch.randn(6, 2)
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    batch = {"inputs": torch.zeros(6, 3, 32, 32), "targets": y}
    model = lambda x: logits  # noqa: E731
    loss = parts.task.step(model, batch, train=True)["loss"]
    per = F.cross_entropy(logits, y, reduction="none")
    assert float(loss) == pytest.approx(float((per * w[y]).sum() / w[y].sum()), rel=1e-5)
    assert float(parts.task.step(model, batch, train=False)["loss"]) == pytest.approx(float(per.mean()), rel=1e-5)


@needs_shared(CATSDOGS)
def test_given_class_weights_are_checked_against_the_classes(imbalanced):
    assert _parts(imbalanced, "task.class_weights=[1.0,3.0]").task.class_weights.tolist() == [1.0, 3.0]
    with pytest.raises(ConfigError, match="3 weights for 2 classes"):
        _parts(imbalanced, "task.class_weights=[1,2,3]")
    with pytest.raises(ConfigError, match="task.class_weights"):
        config.load({}, ["task.class_weights=autoo"])
    with pytest.raises(ConfigError, match="task.class_weights"):
        config.load({}, ["task.class_weights=[1,-2]"])


@needs_shared(CATSDOGS)
def test_balanced_sampling_draws_both_classes_equally_and_deterministically(imbalanced):
    loader = _parts(imbalanced, "data.balanced_sampling=true").loaders["train"]
    labels = torch.tensor([0] * 40 + [1] * 10)  # the folder order: cats, then dogs
    drawn = torch.cat([torch.cat(loader.index_batches(e)) for e in range(10)])
    assert len(drawn) == 500  # an epoch keeps its length (50 draws)
    share = float((labels[drawn] == 1).float().mean())
    assert 0.4 < share < 0.6, share  # dogs are 20% of the data, half of the draws
    assert all(torch.equal(a, b) for a, b in zip(loader.index_batches(3), loader.index_batches(3)))
    plain = _parts(imbalanced).loaders["train"]
    assert sorted(torch.cat(plain.index_batches(0)).tolist()) == list(range(50))  # unchanged without it
