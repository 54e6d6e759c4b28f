"""Every image mode Pillow opens decodes to the right 8-bit values, or is refused naming the file;
a decompression bomb is refused before it is decoded, and on_bad_image=skip applies to it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainlab.data.image_cache import DecodeSettings, decode_image
from trainlab.errors import DataError

RGB = DecodeSettings(None, 3, "crop")
GREY = DecodeSettings(None, 1, "crop")


def _save(tmp_path, name, im, **kw):
    path = tmp_path / name
    im.save(path, **kw)
    return path


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = _save(tmp_path, "g16.png", Image.fromarray(arr))  # mode I;16
    assert Image.open(path).mode.startswith("I")
    assert decode_image(path, GREY)[0].tolist() == [[0, 100, 255]]  # convert("L") would give 0, 255, 255
    assert decode_image(path, RGB)[:, 0, 1].tolist() == [100, 100, 100]


def test_palette_greyscale_cmyk_and_bilevel(tmp_path):
    rgb = Image.new("RGB", (2, 1))
    rgb.putpixel((0, 0), (255, 0, 0))
    rgb.putpixel((1, 0), (0, 0, 255))
    pal = _save(tmp_path, "p.png", rgb.convert("P", palette=Image.ADAPTIVE, colors=2))
    assert decode_image(pal, RGB)[:, 0].T.tolist() == [[255, 0, 0], [0, 0, 255]]
    grey = _save(tmp_path, "l.png", Image.new("L", (1, 1), 77))
    assert decode_image(grey, RGB)[:, 0, 0].tolist() == [77, 77, 77]
    cmyk = _save(tmp_path, "c.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), quality=100)  # red
    r, g, b = decode_image(cmyk, RGB)[:, 4, 4].tolist()
    assert r > 240 and g < 15 and b < 15
    bits = _save(tmp_path, "b.png", Image.new("1", (1, 1), 1))
    assert decode_image(bits, GREY)[0, 0, 0] == 255


def test_alpha_is_composited_onto_black(tmp_path):
    im = Image.new("RGBA", (2, 1))
    im.putpixel((0, 0), (200, 100, 50, 255))  # opaque
    im.putpixel((1, 0), (200, 100, 50, 0))    # fully transparent: nothing there
    path = _save(tmp_path, "a.png", im)
    assert decode_image(path, RGB)[:, 0].T.tolist() == [[200, 100, 50], [0, 0, 0]]
    la = Image.new("LA", (1, 1), (200, 128))
    assert decode_image(_save(tmp_path, "la.png", la), GREY)[0, 0, 0] == round(200 * 128 / 255)
    pal = Image.new("P", (2, 1))
    pal.putpalette([200, 100, 50, 9, 9, 9])
    pal.putpixel((1, 0), 1)  # entry 1: transparent
    path = _save(tmp_path, "pt.png", pal, transparency=1)
    assert Image.open(path).info.get("transparency") == 1
    assert decode_image(path, RGB)[:, 0].T.tolist() == [[200, 100, 50], [0, 0, 0]]


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("L", (4, 2), 0)  # stored 4 wide, 2 high
    im.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path, "rot.jpg", im, exif=exif, quality=100)
    out = decode_image(path, GREY)
    assert out.shape == (1, 4, 2)  # shown 2 wide, 4 high
    assert out[0, 0, 1] > 200  # the top-left pixel moved to the top-right


def test_float_image_outside_unit_range_is_refused_naming_the_file(tmp_path):
    path = _save(tmp_path, "f.tiff", Image.fromarray(np.array([[0.0, 3.5]], dtype=np.float32)))
    with pytest.raises(DataError, match=r"f.tiff: .*floating-point image outside \[0, 1\]"):
        decode_image(path, GREY)
    ok = _save(tmp_path, "f1.tiff", Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)))
    assert decode_image(ok, GREY)[0].tolist() == [[0, 128, 255]]


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path, optimize=True)  # 400 MP, a small file
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DataError, match=r"bomb.png: 20000x20000 pixels \(400 MP\).*data.max_image_pixels"):
        decode_image(path, RGB)
    small = DecodeSettings(None, 3, "crop", max_pixels=10)
    with pytest.raises(DataError, match="max_image_pixels=10"):  # the limit is the user's to set
        decode_image(_save(tmp_path, "p.png", Image.new("L", (4, 4))), small)


def test_on_bad_image_skip_applies_to_a_bomb_in_a_dataset(tmp_path, caplog):
    import logging

    from trainlab.config import DataConfig
    from trainlab.data import build_data

    for split, n in (("train", 6), ("test", 2)):
        for c, cls in enumerate(("a", "b")):
            (tmp_path / "d" / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (40 * c, 10 * i, 0)).save(tmp_path / "d" / split / cls / f"{i}.png")
    Image.new("1", (20000, 20000)).save(tmp_path / "d" / "train" / "a" / "bomb.png", optimize=True)
    cfg = dict(name="imagefolder", root=str(tmp_path / "d"), valid_fraction=0.0)
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        bundle = build_data(DataConfig(**cfg, cache_dir=str(tmp_path / "c")))
    assert len(bundle.splits["train"]) == 12 and "bomb.png" in caplog.text and "max_image_pixels" in caplog.text
    with pytest.raises(DataError, match="bomb.png: 20000x20000"):
        build_data(DataConfig(**cfg, on_bad_image="error", cache_dir=str(tmp_path / "c2")))


def _full_decode(path, size, resize="crop"):
    """Every pixel decoded, then the same resize: decode_image without JPEG draft decoding."""
    from PIL import ImageOps

    from trainlab.data.image_cache import image_array

    with Image.open(path) as im:
        return image_array(ImageOps.exif_transpose(im), DecodeSettings(size, 3, resize)).astype(np.float64)


@pytest.mark.parametrize("size, resize", [((64, 64), "crop"), ((64, 64), "stretch"), ((100, 48), "crop"),
                                          ((160, 120), "crop")])
def test_jpeg_draft_decoding_matches_a_full_decode_of_real_photos(size, resize):
    from conftest import SHARED

    files = sorted((SHARED / "cats-vs-dogs").rglob("*.jpg"))[:40]
    assert len(files) == 40
    diffs = []
    for path in files:
        got = decode_image(path, DecodeSettings(size, 3, resize))
        assert got.shape == (3, *size)
        diffs.append(np.abs(got - _full_decode(path, size, resize)).mean())
    # of 255 (measured 1.5-1.9 mean, 4.6 worst): the DCT's box filter against bilinear, the same picture
    assert max(diffs) < 6.0 and np.mean(diffs) < 2.5, diffs


def test_jpeg_draft_never_decodes_below_the_target_size(tmp_path):
    """The resize from a draft-decoded JPEG never upsamples (unless the whole image is smaller than
    the target, when the draft keeps every pixel), for both EXIF layouts and both resize modes."""
    from trainlab.data.image_cache import _draft_size

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8))
    for orientation in (1, 6):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = _save(tmp_path, f"o{orientation}.jpg", im, exif=exif, quality=90)
        for (th, tw), resize in [((64, 64), "crop"), ((90, 40), "crop"), ((40, 90), "stretch"), ((200, 31), "crop"),
                                 ((375, 500), "crop"), ((33, 33), "stretch")]:
            s = DecodeSettings((th, tw), 3, resize)
            with Image.open(path) as f:
                f.draft(None, _draft_size(f.size, s, orientation))
                dw, dh = f.size if orientation == 1 else f.size[::-1]  # as shown
            full = (500, 375) if orientation == 1 else (375, 500)
            if resize == "crop":  # the box the resize reads, in draft pixels, is at least the target
                ok = max(tw / dw, th / dh) <= 1 or (dw, dh) == full
            else:
                ok = (dw >= tw and dh >= th) or (dw, dh) == full
            assert ok, (orientation, (th, tw), resize, (dw, dh))
            assert decode_image(path, s).shape == (3, th, tw)
    with Image.open(tmp_path / "o1.jpg") as f:  # the point of it: a 64 px target decodes at 1/4 scale
        f.draft(None, _draft_size(f.size, DecodeSettings((64, 64), 3, "crop"), 1))
        assert f.size == (125, 94)
