"""data.classes keeps some classes of any classification dataset, relabelled in the order given."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARED
from trainlab.config import DataConfig
from trainlab.data.base import build_data
from trainlab.errors import ConfigError, DataError

CATSDOGS = SHARED / "cats-vs-dogs"
TINY = SHARED / "tiny-imagenet-200"


def _cfg(**kw) -> DataConfig:
    kw.setdefault("cache_dir", None)
    return DataConfig(**kw)


@pytest.mark.skipif(not CATSDOGS.is_dir(), reason="needs ../shared/data/cats-vs-dogs")
def test_classes_in_another_order_relabel_every_split_and_keep_the_files(tmp_path):
    base = build_data(_cfg(name="catsdogs", root=str(CATSDOGS), size=16, cache_dir=str(tmp_path)))
    swapped = build_data(_cfg(name="catsdogs", root=str(CATSDOGS), size=16, cache_dir=str(tmp_path),
                              classes=list(reversed(base.class_names))))
    assert swapped.class_names == list(reversed(base.class_names))
    for split in ("train", "valid", "test"):
        a, b = base.splits[split], swapped.splits[split]
        assert a.ids == b.ids and torch.equal(a.images, b.images)  # the same samples, in the same order
        assert torch.equal(b.labels, 1 - a.labels)
    assert swapped.split_indices == base.split_indices


@pytest.mark.skipif(not TINY.is_dir(), reason="needs ../shared/data/tiny-imagenet-200")
def test_a_subset_keeps_only_those_classes_and_indices_point_into_the_full_training_split(tmp_path):
    full = build_data(_cfg(name="tiny_imagenet", root=str(TINY), cache_dir=str(tmp_path), valid_fraction=0.2))
    names = [full.class_names[i] for i in (7, 3, 150)]
    sub = build_data(_cfg(name="tiny_imagenet", root=str(TINY), cache_dir=str(tmp_path), valid_fraction=0.2,
                          classes=names))
    assert sub.class_names == names
    train, valid, test = (sub.splits[k] for k in ("train", "valid", "test"))
    assert len(train) + len(valid) == 3 * 25 and len(test) == 3 * 50  # the subset's own 25 / 50 per class
    assert sorted(torch.cat([train.labels, valid.labels]).bincount().tolist()) == [25, 25, 25]
    for s in (train, valid, test):
        assert set(s.labels.tolist()) <= {0, 1, 2}
    # split_indices name samples of the dataset's own training split: the same files as without the subset
    by_index = {i: sid for split in ("train", "valid")
                for i, sid in zip(full.split_indices[split], full.splits[split].ids)}
    for s, split in ((train, "train"), (valid, "valid")):
        for sample_id, i, label in zip(s.ids, sub.split_indices[split], s.labels.tolist()):
            assert by_index[i] == sample_id and f"/{names[label].rsplit('(', 1)[-1].rstrip(')')}/" in sample_id


def test_unknown_or_repeated_classes_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="data.classes"):
        _cfg(name="catsdogs", classes=["cats", "cats"]).validate()
    with pytest.raises(ConfigError, match="data.classes"):
        _cfg(name="catsdogs", classes=["cats"]).validate()
    if CATSDOGS.is_dir():
        with pytest.raises(DataError, match=r"data.classes: \['wolves'\] not among .*cats, dogs"):
            build_data(_cfg(name="catsdogs", root=str(CATSDOGS), size=16, cache_dir=str(tmp_path),
                            classes=["cats", "wolves"]))


def test_classes_on_a_text_corpus_is_refused(tmp_path):
    (tmp_path / "train.txt").write_text("a b c\nd e f\n" * 50, encoding="utf-8")
    with pytest.raises(DataError, match="data.classes.*no classes"):
        build_data(_cfg(name="text", root=str(tmp_path), files={"train": "train.txt"}, classes=["a", "b"],
                        valid_fraction=0.1, test_fraction=0.1))
