"""Transforms against torchvision's semantics, without torchvision: geometric outputs are
compared with direct Pillow calls on hand-computed boxes and sizes (torchvision's PIL path
is exactly those calls), RandomResizedCrop's sampling with a scripted generator and by its
box statistics, and every random transform for determinism under a seed."""
import math

import numpy as np
import pytest
from conftest import photo
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from weitiao.data import functional as F
from weitiao.data.transforms import (CenterCrop, Compose, ConvertMode, Normalize,
                                     RandomHorizontalFlip, RandomResizedCrop, Resize, ToArray,
                                     default_pipeline)
from weitiao.models.config import ModelConfig


def tv_center_crop(img, th, tw):
    """torchvision.transforms.functional.center_crop on a PIL image, transcribed: pad with
    zeros (palette kept), then crop at int(round((size - crop) / 2.0))."""
    w, h = img.size
    if tw > w or th > h:
        pad = [(tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
               (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0]
        palette = img.getpalette() if img.mode == "P" else None
        img = ImageOps.expand(img, border=tuple(pad), fill=0)
        if palette is not None:
            img.putpalette(palette)
        w, h = img.size
        if (tw, th) == (w, h):
            return img
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return img.crop((left, top, left + tw, top + th))


# --- Resize -------------------------------------------------------------------------------

@pytest.mark.parametrize("hw, size, expected", [
    ((200, 300), 100, (100, 150)),
    ((250, 333), 224, (224, 298)),   # int(224 * 333 / 250) = int(298.37)
    ((333, 250), 224, (298, 224)),
    ((99, 99), 50, (50, 50)),
    ((200, 300), (64, 32), (64, 32)),
    ((200, 300), [100], (100, 150)),
])
def test_resized_output_size_matches_torchvision_formula(hw, size, expected):
    assert F.resized_output_size(*hw, size) == expected


def test_resized_output_size_max_size():
    # long side 300 * 100 / 200 = 150 > 120: long side capped, short int(120 * 100 / 150)
    assert F.resized_output_size(200, 300, 100, max_size=120) == (80, 120)
    with pytest.raises(ValueError, match="max_size"):
        F.resized_output_size(200, 300, 100, max_size=100)


@pytest.mark.parametrize("interp, pil", [("bilinear", Image.BILINEAR),
                                         ("bicubic", Image.BICUBIC),
                                         ("nearest", Image.NEAREST)])
def test_resize_equals_pillow_resize(interp, pil):
    img = photo(50, 70)
    out = Resize(20, interpolation=interp)(img)
    expected = img.resize((28, 20), pil)  # int(20 * 70 / 50) = 28
    assert out.size == (28, 20)
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    arr = Resize(20, interpolation=interp)(np.asarray(img))
    assert np.array_equal(arr, np.asarray(expected))


def test_resize_float_chw_goes_through_pillow_float_mode():
    chw = np.random.default_rng(1).random((2, 9, 13), dtype=np.float32)
    out = Resize((4, 6), interpolation="bicubic")(chw)
    assert out.shape == (2, 4, 6) and out.dtype == np.float32
    for c in range(2):
        ref = np.asarray(Image.fromarray(chw[c]).resize((6, 4), Image.BICUBIC))
        assert np.array_equal(out[c], ref)


def test_resize_grey_and_single_channel_arrays():
    grey = np.asarray(photo(10, 20, "L"))
    assert Resize(5)(grey).shape == (5, 10)
    assert Resize(5)(grey[:, :, None]).shape == (5, 10, 1)
    assert np.array_equal(Resize(5)(grey[:, :, None])[:, :, 0], Resize(5)(grey))


def test_resize_returns_image_unchanged_when_already_sized():
    img = photo(20, 30)
    assert Resize(20)(img) is img  # torchvision's early return


def test_resize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="interpolation"):
        Resize(10, interpolation="cubic")
    with pytest.raises(ValueError, match="positive int"):
        Resize(0)
    with pytest.raises(ValueError, match="height, width"):
        Resize((1, 2, 3))


# --- CenterCrop ---------------------------------------------------------------------------

@pytest.mark.parametrize("h, th, top", [
    (5, 2, 2),    # (5 - 2) / 2 = 1.5 -> round half to even -> 2
    (7, 2, 2),    # 2.5 -> 2
    (9, 2, 4),    # 3.5 -> 4
    (6, 2, 2),
    (4, 4, 0),
])
def test_center_crop_box_uses_pythons_round(h, th, top):
    assert F.center_crop_box(h, h, th, th) == (top, top)


def test_center_crop_pixels_equal_pillow_crop():
    img = photo(9, 12)
    out = CenterCrop((4, 5))(img)
    top, left = int(round((9 - 4) / 2.0)), int(round((12 - 5) / 2.0))
    ref = img.crop((left, top, left + 5, top + 4))
    assert np.array_equal(np.asarray(out), np.asarray(ref))
    assert np.array_equal(CenterCrop((4, 5))(np.asarray(img)), np.asarray(ref))
    chw = ToArray()(img)
    assert np.array_equal(CenterCrop((4, 5))(chw), ToArray()(ref))


@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
@pytest.mark.parametrize("size, crop", [((3, 3), (6, 6)), ((3, 8), (6, 4)),
                                        ((7, 2), (3, 5)), ((4, 5), (7, 8))])
def test_center_crop_pads_with_zeros_like_torchvision(mode, size, crop):
    img = photo(*size, mode=mode)
    out = CenterCrop(crop)(img)
    ref = tv_center_crop(img, *crop)
    assert out.size == (crop[1], crop[0]) and out.mode == mode
    assert np.array_equal(np.asarray(out), np.asarray(ref))
    if mode != "P":
        assert np.array_equal(CenterCrop(crop)(np.asarray(img)), np.asarray(ref))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), th=st.integers(1, 12),
       tw=st.integers(1, 12))
def test_center_crop_any_sizes_match_torchvision(h, w, th, tw):
    img = photo(h, w, seed=h * 13 + w)
    ref = np.asarray(tv_center_crop(img, th, tw))
    assert np.array_equal(np.asarray(CenterCrop((th, tw))(img)), ref)
    chw = ToArray()(img)
    assert np.array_equal(CenterCrop((th, tw))(chw), ToArray()(ref))


# --- RandomResizedCrop --------------------------------------------------------------------

class ScriptedRng(np.random.Generator):
    """Hands out given numbers for uniform() and integers(), recording the bounds asked."""

    def __init__(self, uniforms, integers):
        super().__init__(np.random.PCG64(0))
        self.uniforms, self.integers_ = list(uniforms), list(integers)
        self.calls = []

    def uniform(self, lo, hi):
        self.calls.append(("uniform", lo, hi))
        return self.uniforms.pop(0)

    def integers(self, lo, hi):
        self.calls.append(("integers", lo, hi))
        return self.integers_.pop(0)


def test_random_resized_crop_follows_torchvision_attempts():
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    lr = (math.log(3 / 4), math.log(4 / 3))
    # attempt 1: whole area at ratio 4/3 -> w = round(sqrt(1e4 * 4/3)) = 115 > 100, rejected;
    # attempt 2: a quarter of the area at ratio 1 -> 50 x 50, placed at (7, 11)
    rng = ScriptedRng([1.0, lr[1], 0.25, 0.0], [7, 11])
    assert RandomResizedCrop.get_params(100, 100, scale, ratio, rng) == (7, 11, 50, 50)
    assert rng.calls == [("uniform", 0.08, 1.0), ("uniform", *lr),
                         ("uniform", 0.08, 1.0), ("uniform", *lr),
                         ("integers", 0, 51), ("integers", 0, 51)]


def test_random_resized_crop_fallback_is_torchvision_centre_crop():
    never = ScriptedRng([1.0, math.log(4 / 3)] * 10, [])  # always too wide for 100 x 100
    assert RandomResizedCrop.get_params(100, 100, (0.08, 1), (3 / 4, 4 / 3), never) \
        == (0, 0, 100, 100)                                       # ratio 1 inside the range
    wide = RandomResizedCrop.get_params(10, 1000, (0.9, 1.0), (3 / 4, 4 / 3), 0)
    assert wide == (0, (1000 - 13) // 2, 10, 13)                 # w = round(10 * 4/3)
    tall = RandomResizedCrop.get_params(1000, 10, (0.9, 1.0), (3 / 4, 4 / 3), 0)
    assert tall == ((1000 - 13) // 2, 0, 13, 10)                 # h = round(10 / (3/4))


def test_random_resized_crop_box_statistics():
    H, W = 300, 400
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    rng = np.random.default_rng(0)
    boxes = np.array([RandomResizedCrop.get_params(H, W, scale, ratio, rng)
                      for _ in range(3000)])
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= H).all() and (left + w <= W).all()
    # w and h are rounded from sqrt(area * r) and sqrt(area / r), each off by <= 0.5 px;
    # the smallest window (0.08 of the area) has sides near 100, so 1 % covers it
    frac = h * w / (H * W)
    assert frac.min() >= scale[0] * 0.99 and frac.max() <= scale[1] * 1.01
    assert frac.min() < 0.1 and frac.max() > 0.9
    r = w / h
    assert r.min() >= ratio[0] * 0.99 and r.max() <= ratio[1] * 1.01
    # the log-ratio is drawn uniformly: about half of the windows are wider than tall
    assert 0.4 < np.mean(r > 1) < 0.6
    # positions uniform over the free range: mean relative offset near 1/2
    free = np.maximum(H - h, 1)
    assert 0.45 < np.mean(top / free) < 0.55


def test_random_resized_crop_is_deterministic_for_a_seed():
    img = photo(60, 80)
    t = RandomResizedCrop(24)
    a = [np.asarray(t(img, np.random.default_rng(5))) for _ in range(2)]
    b = np.asarray(t(img, np.random.default_rng(6)))
    assert a[0].shape == (24, 24, 3)
    assert np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)


def test_random_resized_crop_output_is_crop_then_pillow_resize():
    img = photo(60, 80)
    t = RandomResizedCrop((20, 30), interpolation="bicubic")
    top, left, h, w = t.get_params(60, 80, t.scale, t.ratio, np.random.default_rng(3))
    ref = img.crop((left, top, left + w, top + h)).resize((30, 20), Image.BICUBIC)
    out = t(img, np.random.default_rng(3))
    assert np.array_equal(np.asarray(out), np.asarray(ref))
    assert np.array_equal(t(np.asarray(img), np.random.default_rng(3)), np.asarray(ref))


def test_random_resized_crop_rejects_bad_ranges():
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(10, scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="ratio"):
        RandomResizedCrop(10, ratio=(0, 1))


# --- flip, ToArray, Normalize, ConvertMode ------------------------------------------------

def test_random_horizontal_flip():
    img = photo(4, 6)
    mirrored = np.asarray(img)[:, ::-1]
    assert np.array_equal(np.asarray(RandomHorizontalFlip(1.0)(img, 0)), mirrored)
    assert RandomHorizontalFlip(0.0)(img, 0) is img
    chw = ToArray()(img)
    assert np.array_equal(RandomHorizontalFlip(1.0)(chw, 0), chw[:, :, ::-1])
    rng = np.random.default_rng(0)
    flips = [RandomHorizontalFlip(0.5)(np.array([[0, 1]], np.uint8), rng)[0, 0]
             for _ in range(2000)]
    assert 0.45 < np.mean(flips) < 0.55
    with pytest.raises(ValueError, match="p must be"):
        RandomHorizontalFlip(1.5)


def test_to_array_pil_rgb_matches_to_tensor():
    img = photo(5, 7)
    out = ToArray()(img)
    ref = np.asarray(img).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    assert out.dtype == np.float32 and out.shape == (3, 5, 7)
    assert out.flags["C_CONTIGUOUS"]
    assert np.array_equal(out, ref)  # same float32 division as ToTensor: bit-identical
    assert out.min() >= 0 and out.max() <= 1


def test_to_array_other_inputs():
    grey = photo(5, 7, "L")
    assert ToArray()(grey).shape == (1, 5, 7)
    assert np.array_equal(ToArray()(np.asarray(grey)), ToArray()(grey))
    hwc = np.asarray(photo(5, 7))
    assert np.array_equal(ToArray()(hwc), ToArray()(photo(5, 7)))
    chw = np.random.default_rng(0).random((3, 2, 2))        # float64 -> float32
    out = ToArray()(chw)
    assert out.dtype == np.float32 and np.allclose(out, chw)
    assert ToArray()(Image.new("1", (3, 2), 1)).tolist() == [[[1.0] * 3] * 2]
    assert ToArray()(Image.new("I;16", (2, 2), 65535)).max() == 1.0
    pal = photo(4, 4, "P")                                  # palette looked up, not indices
    assert np.array_equal(ToArray()(pal), ToArray()(pal.convert("RGB")))


def test_normalize_matches_formula_and_checks_input():
    x = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = Normalize(mean, std)(x)
    m = np.array(mean, np.float32)[:, None, None]
    s = np.array(std, np.float32)[:, None, None]
    assert np.array_equal(out, (x - m) / s)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="zero"):
        Normalize(mean, (1, 0, 1))
    with pytest.raises(ValueError, match="1 channels.*ConvertMode"):
        Normalize(mean, std)(x[:1])
    with pytest.raises(TypeError, match="ToArray"):
        Normalize(mean, std)(photo(2, 2))


def test_convert_mode_rgb_for_every_pillow_mode():
    rgb = photo(6, 5)
    for mode in ("L", "P", "RGBA", "CMYK", "LA"):
        img = rgb.convert(mode)
        out = ConvertMode("RGB")(img)
        assert out.mode == "RGB"
        assert np.array_equal(np.asarray(out), np.asarray(img.convert("RGB")))
    assert ConvertMode("RGB")(rgb) is rgb


def test_convert_mode_arrays():
    grey = np.asarray(photo(4, 5, "L"))
    out = ConvertMode("RGB")(grey)
    assert out.shape == (4, 5, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))
    rgba = np.asarray(photo(4, 5).convert("RGBA"))
    assert np.array_equal(ConvertMode("RGB")(rgba), rgba[..., :3])
    chw = np.ones((1, 2, 2), np.float32)
    assert ConvertMode("RGB")(chw).shape == (3, 2, 2)
    rgb = photo(4, 5)
    # Pillow's L is fixed-point; our float formula rounds the same value: at most 1 apart
    diff = ConvertMode("L")(np.asarray(rgb)).astype(int) - np.asarray(rgb.convert("L"))
    assert np.abs(diff).max() <= 1
    chw_grey = ConvertMode("L")(ToArray()(rgb))
    assert chw_grey.shape == (1, 4, 5) and chw_grey.dtype == np.float32
    assert np.abs(chw_grey[0] * 255 - np.asarray(rgb.convert("L"))).max() <= 1
    assert np.array_equal(ConvertMode("RGB")(grey[:, :, None]), out)
    with pytest.raises(ValueError, match="'RGB' or 'L'"):
        ConvertMode("CMYK")(grey)


# --- Compose and the default pipelines ----------------------------------------------------

def test_compose_threads_one_generator_through_random_steps():
    t = Compose([RandomResizedCrop(16), RandomHorizontalFlip(), ToArray()])
    img = photo(40, 50)
    a = t(img, np.random.default_rng(1))
    b = t(img, np.random.default_rng(1))
    c = t(img, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(t(img, 1), a)           # an int seed means default_rng(seed)
    assert t.random and not Compose([ToArray()]).random
    assert "RandomResizedCrop(size=(16, 16)" in repr(t)


def test_compose_plain_callables():
    seen = []

    def with_rng(img, rng=None):
        seen.append(rng)
        return img

    t = Compose([lambda img: img + 1, with_rng])
    assert t(np.zeros((1, 1), np.uint8), 3)[0, 0] == 1
    assert isinstance(seen[0], np.random.Generator)
    with pytest.raises(TypeError, match="not callable"):
        Compose([3])


def test_default_eval_pipeline_equals_manual_pillow_steps():
    cfg = ModelConfig(input_size=32, resize_size=36, mean=(0.5, 0.4, 0.3),
                      std=(0.2, 0.25, 0.3), interpolation="bicubic")
    img = photo(45, 60)
    out = default_pipeline(cfg, train=False)(img)
    resized = img.resize((48, 36), Image.BICUBIC)          # int(36 * 60 / 45) = 48
    cropped = resized.crop((8, 2, 40, 34))                 # round(16 / 2), round(4 / 2)
    x = np.asarray(cropped).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    m = np.array(cfg.mean, np.float32)[:, None, None]
    s = np.array(cfg.std, np.float32)[:, None, None]
    assert np.array_equal(out, (x - m) / s)


def test_default_train_pipeline_shape_and_determinism():
    cfg = ModelConfig(input_size=24, resize_size=28)
    t = default_pipeline(cfg, train=True)
    names = [type(s).__name__ for s in t.transforms]
    assert names == ["ConvertMode", "RandomResizedCrop", "RandomHorizontalFlip", "ToArray",
                     "Normalize"]
    img = photo(50, 40, "L")                                # grey input -> 3 channels
    a = t(img, np.random.default_rng(0))
    assert a.shape == (3, 24, 24) and a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
    assert np.array_equal(a, t(img, np.random.default_rng(0)))
    eval_names = [type(s).__name__ for s in default_pipeline(cfg).transforms]
    assert eval_names == ["ConvertMode", "Resize", "CenterCrop", "ToArray", "Normalize"]


@pytest.mark.parametrize("module", ["__init__", "functional", "transforms", "augment",
                                    "image_files", "datasets", "splits", "fashion_mnist",
                                    "elpv", "loader"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    name = "weitiao.data" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
