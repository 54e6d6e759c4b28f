import gzip

import numpy as np
import pytest
import torch

from trainlab.config import DataConfig
from trainlab.data import build_data
from trainlab.data.mnist import mnist, read_idx
from trainlab.errors import DataError

from conftest import MNIST_DIR, needs_shared_mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_shared_mnist()
def test_idx_files_parse_to_the_published_counts():
    raw = mnist(DataConfig(root=str(MNIST_DIR)))
    assert raw.train.images.shape == (60000, 1, 28, 28) and raw.train.images.dtype == torch.uint8
    assert raw.test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(raw.train.labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(raw.test.labels).tolist() == TEST_COUNTS


@needs_shared_mnist()
def test_raw_and_gz_files_give_the_same_tensors(tmp_path):
    src = MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(src.read_bytes()))
    assert torch.equal(read_idx(src), read_idx(raw))


@needs_shared_mnist()
def test_embedded_digits_are_real_mnist_training_images():
    from trainlab.data.embedded import mnist5k

    full = mnist(DataConfig(root=str(MNIST_DIR))).train
    five = mnist5k(DataConfig()).train
    # the first embedded image of each class is among the first MNIST training images of that class
    for c in range(10):
        img = five.images[five.labels == c][0]
        cand = full.images[:6000][full.labels[:6000] == c]
        assert (cand == img).flatten(1).all(1).any()


def test_truncated_idx_file_names_file_and_sizes(tmp_path):
    header = (2051).to_bytes(4, "big") + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(header + bytes(28 * 28 * 3))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated: header says 10x28x28"):
        read_idx(path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: cannot read IDX file"):
        read_idx(path)


def test_course_pth_pairs(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.arange(50) % 10
    for split in ("train", "test"):
        torch.save(x, tmp_path / f"{split}_data.pth")
        torch.save(y, tmp_path / f"{split}_labels.pth")
    raw = mnist(DataConfig(root=str(tmp_path)))
    assert torch.equal(raw.train.images[:, 0], x) and torch.equal(raw.test.labels, y)


def test_float_pth_images_in_unit_range_are_rescaled(tmp_path):
    x = torch.rand(20, 28, 28)
    torch.save(x, tmp_path / "train_data.pth")
    torch.save(torch.arange(20) % 10, tmp_path / "train_labels.pth")
    raw = mnist(DataConfig(root=str(tmp_path)))
    assert raw.train.images.dtype == torch.uint8 and int(raw.train.images.max()) > 200


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"no MNIST files found.*data.download=true"):
        mnist(DataConfig(root=str(tmp_path)))
    with pytest.raises(DataError, match="data.root is not set"):
        mnist(DataConfig(root=None))


def test_offline_download_fails_with_local_files_hint(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: [Errno -3] name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match=r"could not download MNIST.*set data.root=FOLDER"):
        mnist(DataConfig(root=str(tmp_path), download=True))


def test_labels_out_of_range_are_rejected(tmp_path):
    torch.save(torch.zeros(20, 28, 28, dtype=torch.uint8), tmp_path / "train_data.pth")
    torch.save(torch.arange(20), tmp_path / "train_labels.pth")  # labels up to 19, 10 classes
    with pytest.raises(DataError, match=r"labels range over \[0, 19\] but there are 10 classes"):
        build_data(DataConfig(root=str(tmp_path), test_fraction=0.2))


def test_split_is_seeded_disjoint_and_complete():
    cfg = DataConfig(name="mnist5k", valid_fraction=0.1, test_fraction=0.2, split_seed=5)
    a, b = build_data(cfg), build_data(cfg)
    idx = a.split_indices
    assert idx == b.split_indices
    everything = sorted(idx["train"] + idx["valid"] + idx["test"])
    assert everything == list(range(5000))
    assert (len(idx["test"]), len(idx["valid"])) == (1000, 400)
    other = build_data(DataConfig(name="mnist5k", valid_fraction=0.1, test_fraction=0.2, split_seed=6))
    assert other.split_indices["valid"] != idx["valid"]
    assert np.allclose(a.mean, [a.splits["train"].images.float().mean().item() / 255], atol=1e-6)
