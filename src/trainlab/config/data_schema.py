"""The ``data`` section of a recipe: where the data is, how it is split, decoded and augmented."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

from ._section import _f, _is_size, _Section


@dataclass
class DataConfig(_Section):
    name: str = _f("mnist", "dataset by registered name (see `trainlab list datasets`)")
    root: Optional[str] = _f(None, "folder holding the dataset files")
    batch_size: int = _f(128, "training batch size (global, summed over devices)")
    eval_batch_size: Optional[int] = _f(None, "evaluation batch size (default: 4 x batch_size; text: batch_size)")
    valid_fraction: float = _f(0.1, "fraction of the training split held out for validation")
    test_fraction: float = _f(0.0, "fraction held out for test when the dataset has no test split")
    split_seed: int = _f(0, "seed of the train/valid(/test) split, independent of train.seed")
    folds: Optional[int] = _f(None, "k-fold cross-validation: the valid split is fold data.fold of k stratified "
                                    "folds of the training data (replaces valid_fraction; trainlab cv runs all k)")
    balanced_sampling: bool = _f(False, "classification: draw training samples with replacement so every class "
                                        "is equally likely (an epoch keeps its length; for imbalanced data)")
    fold: int = _f(0, "with data.folds: which fold (0 .. folds-1) is held out for validation")
    max_samples: Optional[int] = _f(None, "keep only the first N samples of each split (quick tries)")
    classes: Optional[list] = _f(None, "classification: keep only these classes, by name, relabelled in this "
                                       "order (e.g. [cat, dog] of CIFAR-10); null: all")
    crop_padding: int = _f(0, "batched random crop after padding by this many pixels (train only)")
    crop_mode: Literal["zeros", "reflect"] = _f("zeros", "crop_padding's border: zeros, or the image mirrored "
                                                "at its edge (airbench)")
    hflip: bool = _f(False, "batched random horizontal flip (train only)")
    hflip_mode: Literal["random", "alternate"] = _f("random", "hflip: a fresh coin per image and epoch, or one coin "
                                                    "per image for the run, inverted every other epoch (airbench)")
    random_resized_crop: bool = _f(False, "batched random-resized crop to the image size (train only)")
    rrc_scale: list = _f([0.35, 1.0], "random_resized_crop: range of the crop's area fraction")
    color_jitter: Any = _f(0.0, "batched colour jitter (train only): s, or [brightness, contrast, saturation"
                                "(, hue)]; each image draws factors in [1-s, 1+s] (hue: a shift in [-h, h] turns)")
    auto_augment: Literal["none", "randaugment", "trivialaugment"] = _f(
        "none", "batched per-image random ops (train only): RandAugment (data.randaugment_ops ops at "
                "data.randaugment_magnitude) or TrivialAugment-Wide (one op, random magnitude)")
    randaugment_ops: int = _f(2, "randaugment: ops applied to each image, one after another")
    randaugment_magnitude: int = _f(9, "randaugment: strength of every op, 0 .. 30 (torchvision's 31 bins)")
    random_erasing: float = _f(0.0, "probability of erasing one random box of each training image (filled "
                                    "with noise after normalisation; boxes of 2%-33% of the area)")
    mixup: float = _f(0.0, "MixUp alpha (0: off): each batch mixed with its reverse by lam ~ Beta(a, a), "
                           "the targets mixed likewise (soft targets)")
    cutmix: float = _f(0.0, "CutMix alpha (0: off): a box of the reversed batch pasted in, targets by area; "
                            "with mixup too, each batch uses one of the two (even odds)")
    mix_prob: float = _f(1.0, "mixup/cutmix: probability that a training batch is mixed")
    size: Optional[Any] = _f(None, "image files: resize to N or [H, W] when decoding (None: native size)")
    channels: Optional[int] = _f(None, "image files: 3 (RGB) or 1 (grey); default 3")
    resize: Literal["crop", "stretch"] = _f("crop", "image files: keep aspect and centre-crop, or stretch")
    layout: Literal["auto", "class_folders", "filename_prefix"] = _f("auto", "image files: how labels are stored")
    split_dirs: dict = _f({}, "image files: split -> folder under root (default: train/val/test names found)")
    max_image_pixels: int = _f(89_478_485, "image files: refuse (or, with on_bad_image=skip, skip) an image with "
                                           "more pixels than this, checked before decoding (decompression bombs)")
    on_bad_image: Literal["skip", "error"] = _f("skip", "unreadable image or clip, or a clip shorter than data.frames: "
                                                          "skip it with a warning, or stop")
    frames: int = _f(16, "video: frames sampled per clip (uniform segments; random offsets in training)")
    cache_frames: int = _f(32, "video: frames kept per clip in the decoded cache (longer clips subsampled evenly)")
    split_id: int = _f(1, "video: which trainlistNN.txt / testlistNN.txt pair to use (UCF101 ships 1-3)")
    split_lists: Optional[str] = _f(None, "video: folder of the split lists (default: data.root, then ucfTrainTestlist)")
    cache: bool = _f(True, "decode image files once into a memory-mapped uint8 cache")
    cache_dir: Optional[str] = _f(None, "cache folder (default: $TRAINLAB_CACHE or ~/.cache/trainlab)")
    cache_max_gb: float = _f(16.0, "larger decoded datasets are read by a DataLoader with workers instead")
    normalize: bool = _f(True, "subtract the training mean and divide by its std, per channel")
    download: bool = _f(False, "download the dataset when it is not found under root (needs network)")
    num_workers: int = _f(0, "DataLoader workers for datasets that are not held in memory")
    files: dict = _f({}, "text: split -> file under data.root (null: carve it from train by fraction)")
    level: Literal["word", "word_punct", "char"] = _f(
        "word", "text: word tokens (split on spaces, as PTB/WikiText-2 are prepared) with <eos> at line ends; "
                "word_punct: the same with punctuation split from words (raw text such as Tiny Shakespeare); char")
    vocab_size: Optional[int] = _f(None, "text: keep the N most frequent tokens (specials included); rest <unk>")
    min_freq: int = _f(1, "text: tokens seen fewer times in train become <unk>")
    bptt: int = _f(35, "text: tokens per training window (truncated backpropagation through time)")
    variable_bptt: bool = _f(False, "text: vary window lengths around bptt each epoch (AWD-LSTM style)")
    max_tokens: Optional[int] = _f(None, "text: keep only the first N tokens of each split (quick tries)")

    section: ClassVar[str] = "data"

    def validate(self) -> None:
        lo_hi = self.rrc_scale
        self._require({
            "batch_size": (self.batch_size > 0, "must be > 0"),
            "valid_fraction": (0 <= self.valid_fraction < 1, "must be in [0, 1)"),
            "folds": (self.folds is None or self.folds >= 2, "must be >= 2 (or null: no cross-validation)"),
            "fold": (0 <= self.fold < (self.folds or 1) if self.folds else self.fold == 0,
                     f"must be in [0, data.folds - 1 = {(self.folds or 1) - 1}]" if self.folds
                     else "needs data.folds (k-fold cross-validation)"),
            "test_fraction": (0 <= self.test_fraction < 1, "must be in [0, 1)"),
            "crop_padding": (self.crop_padding >= 0, "must be >= 0"),
            "size": (self.size is None or _is_size(self.size), "must be N or [H, W]"),
            "channels": (self.channels in (None, 1, 3), "must be 1 or 3"),
            "rrc_scale": (len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1] <= 1, "must be [low, high] within (0, 1]"),
            "frames": (self.frames >= 1, "must be >= 1"),
            "cache_frames": (self.cache_frames >= self.frames, f"must be >= data.frames ({self.frames})"),
            "split_id": (self.split_id >= 1, "must be >= 1"),
            "bptt": (self.bptt >= 1, "must be >= 1"),
            "min_freq": (self.min_freq >= 1, "must be >= 1"),
            "vocab_size": (self.vocab_size is None or self.vocab_size >= 2, "must be >= 2"),
            "max_tokens": (self.max_tokens is None or self.max_tokens >= 2, "must be >= 2"),
            "classes": (self.classes is None or (isinstance(self.classes, list) and len(self.classes) >= 2
                                                 and len(set(map(str, self.classes))) == len(self.classes)),
                        "must be a list of at least 2 distinct class names (or null for all)"),
            "max_samples": (self.max_samples is None or self.max_samples >= 1, "must be >= 1 (or null for all)"),
            "color_jitter": (_jitter_ok(self.color_jitter), "must be a number >= 0 or a list [brightness, contrast, "
                                                            "saturation(, hue)] of numbers >= 0 (hue <= 0.5)"),
            "randaugment_ops": (self.randaugment_ops >= 1, "must be >= 1"),
            "randaugment_magnitude": (0 <= self.randaugment_magnitude <= 30, "must be in [0, 30]"),
            "random_erasing": (0 <= self.random_erasing <= 1, "must be in [0, 1]"),
            "mixup": (self.mixup >= 0, "must be >= 0 (0: off)"),
            "cutmix": (self.cutmix >= 0, "must be >= 0 (0: off)"),
            "mix_prob": (0 <= self.mix_prob <= 1, "must be in [0, 1]"),
        })


def _jitter_ok(v) -> bool:
    """A number, or [brightness, contrast, saturation] with an optional hue (at most half a turn)."""
    vals = v if isinstance(v, list) else [v]
    if isinstance(v, list) and len(vals) not in (3, 4):
        return False
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in vals):
        return False
    return len(vals) < 4 or vals[3] <= 0.5
