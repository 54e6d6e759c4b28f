import os
import tempfile

import pytest
import torch

import trainlab
from trainlab.engine.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from trainlab.errors import CheckpointError

from conftest import tiny_recipe


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    evil = _Payload()
    evil.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "extra": evil}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint({"model": {"w": torch.randn(100, 100)}}, tmp_path / "c.pt")
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: unreadable or truncated"):
        load_checkpoint(cut)


def test_read_only_folder_gives_clear_error_and_keeps_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"value": torch.tensor(1)}, tmp_path / "ckpt" / "last.pt")

    def denied(*a, **k):  # what a read-only folder does (simulated: tests may run as root)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*last.pt: Permission denied.*intact"):
        save_checkpoint({"value": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["value"].item() == 1


def test_failed_write_midway_keeps_old_file(tmp_path, monkeypatch):
    """A crash or full disk during torch.save leaves last.pt as it was and no temp file behind."""
    path = save_checkpoint({"value": torch.tensor(1)}, tmp_path / "last.pt")

    def full_disk(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_checkpoint({"value": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["value"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoint_from_another_model_names_the_keys():
    a = torch.nn.Sequential(torch.nn.Linear(4, 3))
    b = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    with pytest.raises(CheckpointError, match=r"missing: 2.weight.*shape mismatch: 0.weight \(3, 4\) vs model \(5, 4\)"):
        load_model_state(b, a.state_dict(), "a.pt")


def test_checkpoints_hold_only_safe_types_and_load_back(tmp_path):
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}))
    last = torch.load(run.last_checkpoint, weights_only=True)
    for key in ("model", "optimizer", "schedule", "scaler", "rng", "trainer", "config", "meta"):
        assert key in last
    best = load_checkpoint(run.best_checkpoint)
    assert "optimizer" not in best and best["meta"]["class_names"] == [str(i) for i in range(10)]
    model = trainlab.load(run.best_checkpoint)
    assert model.class_names == [str(i) for i in range(10)] and not model.training


def test_checkpoint_file_mode_and_stale_temp_files(tmp_path):
    from trainlab.engine.checkpoint import remove_stale_temp_files

    path = save_checkpoint({"v": torch.tensor(1)}, tmp_path / "last.pt")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".last.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_checkpoint_that_inflates_to_gigabytes_is_refused_quickly(tmp_path, monkeypatch):
    import zipfile

    import pytest

    from trainlab.engine.checkpoint import load_checkpoint
    from trainlab.errors import CheckpointError

    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("archive/data.pkl", "w", force_zip64=True) as fh:
            chunk = bytes(1 << 20)
            for _ in range(256):  # 256 MiB of zeros, a few hundred kB on disk
                fh.write(chunk)
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(CheckpointError, match="inflate to 268,435,456.*TRAINLAB_MAX_CHECKPOINT_BYTES"):
        load_checkpoint(bomb)
    monkeypatch.setenv("TRAINLAB_MAX_CHECKPOINT_BYTES", str(1 << 30))  # raised: then torch says it is no checkpoint
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        load_checkpoint(bomb)


def test_an_atomic_write_that_fails_keeps_the_old_file_and_no_temp(tmp_path):
    import pytest

    from trainlab import atomic

    target = tmp_path / "report.html"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target) as fh:
            fh.write("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
    atomic.write_text(target, "new")
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) != oct(0o600)
