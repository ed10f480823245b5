"""Augmentation transforms and presets against references, without torchvision: each
transform's output equals the direct Pillow call (rotate, transform, ImageEnhance) with the
parameters its ``get_params`` draws from an equal generator, or a NumPy reference where one
is natural (flips, quarter turns, integer shifts, the float colour formulas); torchvision's
inverse affine matrix is checked against matrices derived by hand. Every transform and
every preset is deterministic for a seed on PIL images, uint8 (H, W, C) and float (C, H, W)
arrays, and the float path agrees with the uint8 one within interpolation rounding."""
import math

import numpy as np
import pytest
from conftest import photo
from PIL import Image, ImageEnhance

from weitiao.data import functional as F
from weitiao.data.augment import (AUGMENT_PRESETS, DEFAULT_AUGMENT, Preset, eval_pipeline,
                                  preset_eval_crop, train_pipeline)
from weitiao.data.transforms import (ColorJitter, RandomAffine, RandomHorizontalFlip,
                                     RandomResizedCrop, RandomRot90, RandomRotation,
                                     RandomVerticalFlip, ToArray, default_pipeline)
from weitiao.models.config import ModelConfig

# The float path ("F" mode, or the tensor formulas) does not round. Pillow's uint8 results
# are rounded by Resize after each of its two 1-D passes (a level off at most), truncated
# by its bilinear and bicubic rotate/transform (a level), and rounded after each
# ImageEnhance step. Tolerances below are counted in these levels.
LEVEL = 1 / 255 + 1e-6


def three_kinds(img):
    """The same pixels as a PIL image, a uint8 (H, W[, C]) array and a float (C, H, W)
    array in [0, 1]."""
    return {"pil": img, "uint8": np.asarray(img), "float": ToArray()(img)}


def as_float(out):
    """Any kind of image as float (C, H, W) in [0, 1], for comparing kinds."""
    return ToArray()(out)


def rng(seed=0):
    return np.random.default_rng(seed)


class RecordingRng(np.random.Generator):
    """A real PCG64 generator that records the bounds of its uniform() calls."""

    def __init__(self, seed=0):
        super().__init__(np.random.PCG64(seed))
        self.calls = []

    def uniform(self, lo, hi):
        self.calls.append((lo, hi))
        return super().uniform(lo, hi)


# --- flips and quarter turns --------------------------------------------------------------

def test_vflip_is_reversed_rows_for_every_kind():
    img = photo(5, 7)
    kinds = three_kinds(img)
    assert np.array_equal(np.asarray(F.vflip(img)), kinds["uint8"][::-1])
    assert np.array_equal(F.vflip(kinds["uint8"]), kinds["uint8"][::-1])
    assert np.array_equal(F.vflip(kinds["float"]), kinds["float"][:, ::-1])
    assert F.vflip(kinds["float"]).flags["C_CONTIGUOUS"]


def test_random_vertical_flip():
    img = photo(4, 6)
    assert np.array_equal(np.asarray(RandomVerticalFlip(1.0)(img, 0)), np.asarray(img)[::-1])
    assert RandomVerticalFlip(0.0)(img, 0) is img
    g = rng()
    flips = [RandomVerticalFlip(0.5)(np.array([[0], [1]], np.uint8), g)[0, 0]
             for _ in range(2000)]
    assert 0.45 < np.mean(flips) < 0.55
    assert repr(RandomVerticalFlip(0.25)) == "RandomVerticalFlip(p=0.25)"


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, -1])
def test_rot90_is_numpy_rot90_for_every_kind(k):
    img = photo(5, 8)                                      # non-square: shapes swap
    kinds = three_kinds(img)
    ref = np.rot90(kinds["uint8"], k, axes=(0, 1))
    assert np.array_equal(np.asarray(F.rot90(img, k)), ref)
    assert np.array_equal(F.rot90(kinds["uint8"], k), ref)
    assert np.array_equal(F.rot90(kinds["float"], k), np.rot90(kinds["float"], k, axes=(1, 2)))
    grey = np.asarray(photo(5, 8, "L"))
    assert np.array_equal(F.rot90(grey, k), np.rot90(grey, k))


def test_random_rot90_draws_k_uniformly_and_applies_it():
    img = photo(6, 9)
    for seed in range(12):                                 # k = 0, 1, 2 and 3 all occur
        k = RandomRot90.get_params(rng(seed))
        out = RandomRot90()(img, rng(seed))
        assert np.array_equal(np.asarray(out), np.rot90(np.asarray(img), k))
        assert out.size == ((9, 6) if k % 2 == 0 else (6, 9))
    assert RandomRot90.get_params(rng(11)) == 0 and RandomRot90()(img, rng(11)) is img
    g = rng()
    counts = np.bincount([RandomRot90.get_params(g) for _ in range(4000)], minlength=4)
    assert counts.size == 4 and (np.abs(counts / 4000 - 0.25) < 0.03).all()
    assert repr(RandomRot90()) == "RandomRot90()"


def test_flips_and_quarter_turns_sample_the_dihedral_group():
    # hflip + rot90 reach all 8 symmetries of a square, each about 1/8 of the time
    img = np.arange(9, dtype=np.uint8).reshape(3, 3)
    t = [RandomHorizontalFlip(), RandomRot90()]
    g = rng()
    seen = {}
    for _ in range(4000):
        out = t[1](t[0](img, g), g)
        seen[out.tobytes()] = seen.get(out.tobytes(), 0) + 1
    assert len(seen) == 8
    assert all(abs(n / 4000 - 1 / 8) < 0.025 for n in seen.values())


# --- RandomRotation -----------------------------------------------------------------------

def test_random_rotation_get_params_is_uniform_in_range():
    g = RecordingRng()
    angles = [RandomRotation.get_params((-10.0, 30.0), g) for _ in range(2000)]
    assert g.calls[0] == (-10.0, 30.0)
    assert -10 <= min(angles) < -9 and 29 < max(angles) <= 30
    assert abs(np.mean(angles) - 10) < 1
    assert RandomRotation(15).degrees == (-15.0, 15.0)


@pytest.mark.parametrize("kw", [
    {"degrees": 30},
    {"degrees": (10, 80), "interpolation": "bilinear"},
    {"degrees": 45, "interpolation": "bicubic", "expand": True, "fill": (10, 20, 30)},
    {"degrees": 20, "center": (1.5, 2.0), "fill": 7},
])
def test_random_rotation_equals_pillow_rotate(kw):
    img = photo(11, 14)
    t = RandomRotation(**kw)
    angle = t.get_params(t.degrees, rng(3))
    resample = F.pil_interpolation(t.interpolation)
    fill = kw.get("fill", 0)
    ref = img.rotate(angle, resample, expand=t.expand, center=kw.get("center"),
                     fillcolor=tuple(fill) if isinstance(fill, tuple) else (fill,) * 3)
    assert np.array_equal(np.asarray(t(img, rng(3))), np.asarray(ref))
    assert np.array_equal(t(np.asarray(img), rng(3)), np.asarray(ref))


def test_rotation_is_counter_clockwise():
    img = photo(6, 6)
    quarter = RandomRotation((90, 90))
    assert np.array_equal(np.asarray(quarter(img, 0)), np.rot90(np.asarray(img), 1))
    chw = ToArray()(img)
    assert np.array_equal(quarter(chw, 0), np.rot90(chw, 1, axes=(1, 2)))


def test_rotation_grey_and_odd_channel_counts():
    grey = photo(9, 9, "L")
    t = RandomRotation(25, interpolation="bilinear")
    ref = grey.rotate(t.get_params(t.degrees, rng()), Image.BILINEAR)
    assert np.array_equal(t(np.asarray(grey), rng()), np.asarray(ref))
    assert np.array_equal(t(np.asarray(grey)[:, :, None], rng())[:, :, 0], np.asarray(ref))
    two = np.stack([np.asarray(grey)] * 2, axis=2)         # no Pillow mode: per channel
    out = t(two, rng())
    assert out.shape == (9, 9, 2) and all(np.array_equal(out[..., c], ref) for c in range(2))


# --- RandomAffine -------------------------------------------------------------------------

def test_random_affine_get_params_follows_torchvision_order():
    t = RandomAffine(20, translate=(0.1, 0.2), scale=(0.8, 1.2), shear=(-5, 5, -3, 3))
    g = RecordingRng(1)
    angle, (tx, ty), s, (shx, shy) = t.get_params(50, 100, t.degrees, t.translate, t.scale,
                                                  t.shear, g)
    # img_size is (width, height) in torchvision: max dx = 0.1 * 100, max dy = 0.2 * 50
    assert g.calls == [(-20.0, 20.0), (-10.0, 10.0), (-10.0, 10.0), (0.8, 1.2), (-5.0, 5.0),
                       (-3.0, 3.0)]
    assert isinstance(tx, int) and isinstance(ty, int)
    g2 = np.random.default_rng(1)
    draws = [g2.uniform(lo, hi) for lo, hi in g.calls]
    assert (angle, tx, ty, s, shx, shy) == (draws[0], int(round(draws[1])),
                                            int(round(draws[2])), draws[3], draws[4],
                                            draws[5])
    # without translate, scale or shear only the angle is drawn
    g = RecordingRng(1)
    assert RandomAffine.get_params(5, 5, (-3.0, 3.0), None, None, None, g)[1:] == \
        ((0, 0), 1.0, (0.0, 0.0))
    assert len(g.calls) == 1
    assert RandomAffine(0, shear=7).shear == (-7.0, 7.0)


def hand_inverse(center, angle, translate, scale, shear):
    """torchvision's inverse affine matrix built by composing 3x3 matrices and inverting
    numerically: forward = T(center + translate) @ R(angle) @ Sy @ Sx @ S(scale) @
    T(-center), R clockwise on screen (y down), Sx = [[1, -tan sx], [0, 1]],
    Sy = [[1, 0], [-tan sy, 1]]."""
    t, sx, sy = (math.radians(v) for v in (angle, *shear))

    def m(a, b, c, d, e, f):
        return np.array([[a, b, c], [d, e, f], [0, 0, 1]], dtype=np.float64)

    cx, cy = center
    fwd = (m(1, 0, cx + translate[0], 0, 1, cy + translate[1])
           @ m(math.cos(t), -math.sin(t), 0, math.sin(t), math.cos(t), 0)
           @ m(1, 0, 0, -math.tan(sy), 1, 0) @ m(1, -math.tan(sx), 0, 0, 1, 0)
           @ m(scale, 0, 0, 0, scale, 0) @ m(1, 0, -cx, 0, 1, -cy))
    return np.linalg.inv(fwd)[:2].ravel()


def test_inverse_affine_matrix_hand_derived_cases():
    c = (8.0, 8.0)
    # pure rotation by 90 degrees about the centre of a 16 x 16 image (clockwise on
    # screen): x_in = y - cy + cx, y_in = -(x - cx) + cy, so the output's corners show the
    # input's corners one turn on: top-left <- bottom-left, top-right <- top-left, ...
    m = np.array(F.inverse_affine_matrix(c, 90, (0, 0), 1.0, (0, 0)))
    assert np.allclose(m, [0, 1, 0, -1, 0, 16], atol=1e-12)
    a, b, cc, d, e, f = m
    corners = {(0, 0): (0, 16), (16, 0): (0, 0), (16, 16): (16, 0), (0, 16): (16, 16)}
    for (x, y), (xi, yi) in corners.items():
        assert np.allclose((a * x + b * y + cc, d * x + e * y + f), (xi, yi), atol=1e-12)
    # pure shear along x by s: x' = x - tan(s) (y - cy), so x = x' + tan(s) (y' - cy)
    s = 30.0
    tan = math.tan(math.radians(s))
    assert np.allclose(F.inverse_affine_matrix(c, 0, (0, 0), 1.0, (s, 0)),
                       [1, tan, -tan * 8, 0, 1, 0], atol=1e-12)
    # pure shear along y: y' = y - tan(s) (x - cx)
    assert np.allclose(F.inverse_affine_matrix(c, 0, (0, 0), 1.0, (0, s)),
                       [1, 0, 0, tan, 1, -tan * 8], atol=1e-12)
    # pure scale by 2 about the centre: x = cx + (x' - cx) / 2
    assert np.allclose(F.inverse_affine_matrix(c, 0, (0, 0), 2.0, (0, 0)),
                       [0.5, 0, 4, 0, 0.5, 4], atol=1e-12)
    # pure translation: x = x' - tx
    assert np.allclose(F.inverse_affine_matrix(c, 0, (3, -2), 1.0, (0, 0)),
                       [1, 0, -3, 0, 1, 2], atol=1e-12)


def test_inverse_affine_matrix_equals_composed_matrices():
    g = rng(7)
    for _ in range(50):
        center = tuple(g.uniform(0, 50, 2))
        args = (g.uniform(-180, 180), tuple(g.uniform(-10, 10, 2)), g.uniform(0.5, 2),
                tuple(g.uniform(-40, 40, 2)))
        assert np.allclose(F.inverse_affine_matrix(center, *args),
                           hand_inverse(center, *args), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("kw", [
    {"degrees": 25},
    {"degrees": 10, "translate": (0.1, 0.1), "scale": (0.8, 1.2), "shear": 10,
     "interpolation": "bilinear"},
    {"degrees": (5, 40), "shear": (-5, 5, -8, 8), "interpolation": "bicubic",
     "fill": (1, 2, 3)},
    {"degrees": 30, "center": (2, 3), "fill": 9},
])
def test_random_affine_equals_pillow_transform(kw):
    img = photo(13, 17)
    t = RandomAffine(**kw)
    angle, translate, scale, shear = t.get_params(13, 17, t.degrees, t.translate, t.scale,
                                                  t.shear, rng(4))
    matrix = F.inverse_affine_matrix(kw.get("center", (17 * 0.5, 13 * 0.5)), angle,
                                     translate, scale, shear)
    fill = kw.get("fill", 0)
    ref = img.transform(img.size, Image.AFFINE, matrix, F.pil_interpolation(t.interpolation),
                        fillcolor=tuple(fill) if isinstance(fill, tuple) else (fill,) * 3)
    assert np.array_equal(np.asarray(t(img, rng(4))), np.asarray(ref))
    assert np.array_equal(t(np.asarray(img), rng(4)), np.asarray(ref))


def zero_filled_shift(arr, tx, ty):
    """np.roll by (ty, tx) on the first two axes with what wrapped around set to zero."""
    out = np.roll(arr, (ty, tx), axis=(0, 1))
    h, w = arr.shape[:2]
    rows = slice(0, ty) if ty >= 0 else slice(h + ty, h)
    cols = slice(0, tx) if tx >= 0 else slice(w + tx, w)
    out[rows] = 0
    out[:, cols] = 0
    return out


def test_random_affine_integer_shift_is_zero_filled_roll():
    img = photo(12, 15)
    t = RandomAffine(0, translate=(0.3, 0.3))
    for seed in range(6):
        _, (tx, ty), _, _ = t.get_params(12, 15, t.degrees, t.translate, t.scale, t.shear,
                                         rng(seed))
        ref = zero_filled_shift(np.asarray(img), tx, ty)
        assert np.array_equal(np.asarray(t(img, rng(seed))), ref)
        chw = ToArray()(img)
        assert np.array_equal(t(chw, rng(seed)), ToArray()(ref))


def test_affine_angle_is_clockwise_as_torchvision():
    img = photo(8, 8)
    out = F.affine(img, 90, (0, 0), 1.0, (0, 0))
    assert np.array_equal(np.asarray(out), np.rot90(np.asarray(img), -1))


# --- ColorJitter --------------------------------------------------------------------------

def test_color_jitter_ranges_and_draws():
    t = ColorJitter(brightness=0.4, contrast=(0.5, 1.5), saturation=2)
    assert (t.brightness, t.contrast, t.saturation) == ((0.6, 1.4), (0.5, 1.5), (0.0, 3.0))
    assert ColorJitter().brightness is None and ColorJitter(contrast=(1, 1)).contrast is None
    order, b, c, s = t.get_params(t.brightness, t.contrast, t.saturation, rng(2))
    g = rng(2)
    assert order == tuple(g.permutation(3))
    assert (b, c, s) == (g.uniform(0.6, 1.4), g.uniform(0.5, 1.5), g.uniform(0.0, 3.0))
    order, b, c, s = ColorJitter.get_params(None, (0.9, 1.1), None, rng(2))
    assert b is None and s is None and c is not None
    orders = {ColorJitter.get_params(None, None, None, g)[0] for _ in range(200)}
    assert len(orders) == 6


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_color_jitter_equals_image_enhance_in_drawn_order(mode):
    img = photo(9, 11, mode)
    t = ColorJitter(0.3, 0.3, 0.3)
    order, *factors = t.get_params(t.brightness, t.contrast, t.saturation, rng(5))
    ref = img
    for i in order:
        ref = getattr(ImageEnhance, ("Brightness", "Contrast", "Color")[i])(ref).enhance(
            factors[i])
    assert np.array_equal(np.asarray(t(img, rng(5))), np.asarray(ref))
    assert np.array_equal(t(np.asarray(img), rng(5)), np.asarray(ref))


def test_color_float_formulas_by_hand():
    x = np.random.default_rng(0).random((3, 5, 6), dtype=np.float32)
    r, g, b = x
    luma = 0.2989 * r + 0.587 * g + 0.114 * b
    assert np.allclose(F.adjust_brightness(x, 1.7), np.clip(1.7 * x, 0, 1))
    assert np.allclose(F.adjust_contrast(x, 1.5),
                       np.clip(1.5 * x - 0.5 * luma.mean(), 0, 1), atol=1e-6)
    assert np.allclose(F.adjust_saturation(x, 0.3),
                       np.clip(0.3 * x + 0.7 * luma[None], 0, 1), atol=1e-6)
    grey = x[:1]
    assert F.adjust_saturation(grey, 0.0) is grey          # 1 channel: a no-op
    assert np.allclose(F.adjust_contrast(grey, 0.0), grey.mean())
    assert F.adjust_brightness(x, 1.3).dtype == np.float32
    # the float steps run in the drawn order, each clipped
    t = ColorJitter(0.5, 0.5, 0.5)
    order, *factors = t.get_params(t.brightness, t.contrast, t.saturation, rng(1))
    ref = x
    for i in order:
        ref = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)[i](ref, factors[i])
    assert np.array_equal(t(x, rng(1)), ref)


def test_color_jitter_saturation_is_a_no_op_on_grey():
    grey = photo(4, 5, "L")
    t = ColorJitter(saturation=0.9)
    for kind, img in three_kinds(grey).items():
        out = t(img, rng())
        assert np.array_equal(np.asarray(out), np.asarray(img)), kind


def test_color_jitter_refuses_modes_it_cannot_blend():
    with pytest.raises(ValueError, match="adjust_brightness: expected an 'L' or 'RGB' image, "
                                         "got mode 'P'.*ConvertMode"):
        ColorJitter(brightness=0.5)(photo(4, 4, "P"), 0)
    with pytest.raises(ValueError, match="adjust_contrast: expected 1 or 3 channels, got 4"):
        F.adjust_contrast(np.zeros((4, 2, 2), np.float32), 0.5)


# --- seeded determinism and agreement across kinds ----------------------------------------

TRANSFORMS = {
    "vflip": RandomVerticalFlip(),
    "rot90": RandomRot90(),
    "rotation_nearest": RandomRotation(30),
    "rotation_bilinear": RandomRotation(30, interpolation="bilinear", expand=True),
    "affine_nearest": RandomAffine(15, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10),
    "affine_bilinear": RandomAffine(15, translate=(0.1, 0.1), scale=(0.8, 1.2),
                                    interpolation="bilinear"),
    "jitter": ColorJitter(0.3, 0.3, 0.3),
}

# float vs uint8 tolerance per transform, in levels: exact where no value is computed
# (flips, turns, nearest); one truncation for bilinear warps; ColorJitter rounds after each
# of its three steps, later factors (up to 1.3) scale earlier errors, and Pillow's contrast
# mean is its fixed-point luma rounded to an integer where the float path uses the exact
# mean of 0.2989 R + 0.587 G + 0.114 B: 4 levels in all (3.3 seen over 30 seeds).
KIND_ATOL = {"vflip": 0, "rot90": 0, "rotation_nearest": 0, "rotation_bilinear": 1,
             "affine_nearest": 0, "affine_bilinear": 1, "jitter": 4}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_transform_is_deterministic_and_agrees_across_kinds(name):
    t = TRANSFORMS[name]
    kinds = three_kinds(photo(10, 13))
    outs = {}
    for kind, img in kinds.items():
        a, b = t(img, rng(11)), t(img, rng(11))
        assert type(a) is type(b) and np.array_equal(np.asarray(a), np.asarray(b)), kind
        outs[kind] = as_float(a)
    assert np.array_equal(outs["pil"], outs["uint8"])
    assert outs["float"].dtype == np.float32
    assert np.abs(outs["float"] - outs["uint8"]).max() <= KIND_ATOL[name] * LEVEL
    # different seeds draw different parameters for the transforms with many outcomes
    if name not in ("vflip", "rot90"):
        assert not np.array_equal(as_float(t(kinds["pil"], rng(12))), outs["pil"])


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_transform_returns_the_kind_it_was_given(name):
    t = TRANSFORMS[name]
    for kind, img in three_kinds(photo(10, 13)).items():
        out = t(img, rng(3))
        if kind == "pil":
            assert isinstance(out, Image.Image) and out.mode == "RGB"
        else:
            assert out.dtype == (np.uint8 if kind == "uint8" else np.float32)
            assert out.ndim == 3 and (out.shape[2] == 3 if kind == "uint8" else
                                      out.shape[0] == 3)


# --- bad arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: RandomVerticalFlip(2), r"RandomVerticalFlip: p must be in \[0, 1\], got 2"),
    (lambda: RandomRotation(-5), r"RandomRotation: degrees must be a non-negative number "
                                 r"or a \(min, max\) pair, got -5"),
    (lambda: RandomRotation((10, -10)), r"RandomRotation: degrees must be \(min, max\) with "
                                        r"min <= max, got \(10, -10\)"),
    (lambda: RandomRotation((1, 2, 3)), r"RandomRotation: degrees .*got \(1, 2, 3\)"),
    (lambda: RandomRotation(10, interpolation="lanczos"),
     r"RandomRotation: interpolation must be one of \['nearest', 'bilinear', 'bicubic'\], "
     r"got 'lanczos'"),
    (lambda: RandomRotation(10, center=(1,)), r"RandomRotation: center must be a sequence "
                                              r"of 2 numbers, got \(1,\)"),
    (lambda: RandomRotation(10, fill="black"), r"RandomRotation: fill must be finite "
                                               r"numbers, got 'black'"),
    (lambda: RandomRotation(float("nan")), r"RandomRotation: degrees must be finite"),
    (lambda: RandomAffine(10, translate=(0.1, 1.5)),
     r"RandomAffine: translate fractions must be in \[0, 1\], got \(0.1, 1.5\)"),
    (lambda: RandomAffine(10, translate=0.1),
     r"RandomAffine: translate must be a sequence of 2 numbers, got 0.1"),
    (lambda: RandomAffine(10, scale=(0, 1)),
     r"RandomAffine: scale must be \(min, max\) with 0 < min <= max, got \(0, 1\)"),
    (lambda: RandomAffine(10, shear=(1, 2, 3)),
     r"RandomAffine: shear must be a non-negative number or a \(min, max\) pair or 4 "
     r"numbers, got \(1, 2, 3\)"),
    (lambda: RandomAffine(10, shear=(0, 5, 3, 1)),
     r"RandomAffine: shear must be \(min, max\) with min <= max"),
    (lambda: RandomAffine(10, interpolation="box"), r"RandomAffine: interpolation"),
    (lambda: ColorJitter(brightness=-0.1), r"ColorJitter: brightness must be a "
                                           r"non-negative number or a \(min, max\) pair, "
                                           r"got -0.1"),
    (lambda: ColorJitter(contrast=(1.5, 0.5)), r"ColorJitter: contrast must be \(min, max\) "
                                               r"with 0 <= min <= max, got \(1.5, 0.5\)"),
    (lambda: ColorJitter(saturation=(0, 1, 2)), r"ColorJitter: saturation must be a "
                                                r"sequence of 2 numbers"),
])
def test_bad_arguments_raise_value_errors_naming_the_transform(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_fill_must_match_the_channels_at_call_time():
    with pytest.raises(ValueError, match="rotate: fill has 2 values for an image with 3 "
                                         "channels"):
        RandomRotation(10, fill=(1, 2))(photo(4, 4), 0)
    with pytest.raises(ValueError, match="affine: fill has 2 values for an image with 1 "
                                         "channels"):
        RandomAffine(10, fill=(1, 2))(np.zeros((1, 4, 4), np.float32), 0)
    with pytest.raises(ValueError, match="rot90: k must be an int, got 1.5"):
        F.rot90(np.zeros((2, 2), np.uint8), 1.5)


# --- presets and pipelines ----------------------------------------------------------------

CFG = ModelConfig(input_size=32, resize_size=36)


def step_names(pipeline):
    return [type(t).__name__ for t in pipeline.transforms]


def test_preset_table():
    assert list(AUGMENT_PRESETS) == ["none", "light", "dihedral", "standard", "strong"]
    assert DEFAULT_AUGMENT in AUGMENT_PRESETS
    assert {n: preset_eval_crop(n) for n in AUGMENT_PRESETS} == {
        "none": False, "light": False, "dihedral": False, "standard": True, "strong": True}
    assert all(isinstance(p, Preset) and p.summary for p in AUGMENT_PRESETS.values())
    assert step_names(train_pipeline(CFG, "light")) == [
        "ConvertMode", "Resize", "RandomAffine", "RandomHorizontalFlip", "ToArray",
        "Normalize"]
    assert step_names(train_pipeline(CFG, "dihedral"))[1:-2] == [
        "Resize", "RandomAffine", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRot90"]
    assert step_names(train_pipeline(CFG, "strong"))[1:-2] == [
        "RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter"]
    light = train_pipeline(CFG, "light").transforms
    assert light[1].size == (32, 32)
    assert (light[2].degrees, light[2].translate, light[2].scale, light[2].interpolation) == (
        (-10.0, 10.0), (0.05, 0.05), (0.9, 1.1), "bilinear")
    assert train_pipeline(CFG, "strong").transforms[1].scale == (0.25, 1.0)


def test_none_preset_is_the_whole_image_eval_pipeline():
    img = photo(40, 30, "L")
    train, evaluate = train_pipeline(CFG, "none"), eval_pipeline(CFG, crop=False)
    assert repr(train) == repr(evaluate)
    assert step_names(evaluate) == ["ConvertMode", "Resize", "ToArray", "Normalize"]
    x = evaluate(img)
    ref = ToArray()(img.convert("RGB").resize((32, 32), Image.BILINEAR))
    m = np.array(CFG.mean, np.float32)[:, None, None]
    s = np.array(CFG.std, np.float32)[:, None, None]
    assert np.array_equal(x, (ref - m) / s)
    assert np.array_equal(train(img, rng()), x)


def test_default_pipeline_is_the_standard_preset_and_centre_crop_eval():
    assert repr(default_pipeline(CFG, train=True)) == repr(train_pipeline(CFG, "standard"))
    assert repr(default_pipeline(CFG, train=True)) == repr(train_pipeline(CFG))
    assert repr(default_pipeline(CFG)) == repr(eval_pipeline(CFG, crop=True))
    assert repr(default_pipeline(CFG)) == repr(eval_pipeline(CFG))
    img = photo(45, 60)
    assert np.array_equal(default_pipeline(CFG, True)(img, rng(2)),
                          train_pipeline(CFG, "standard")(img, rng(2)))


# float vs uint8 tolerance per preset, in levels before the normalisation: Resize and
# RandomResizedCrop 1, "light"'s warp 1 more, "strong"'s jitter 4 more (see KIND_ATOL)
PRESET_ATOL = {"none": 1, "light": 2, "dihedral": 2, "standard": 1, "strong": 5}


@pytest.mark.parametrize("name", list(AUGMENT_PRESETS))
def test_every_preset_is_deterministic_for_every_kind(name):
    t = train_pipeline(CFG, name)
    img = photo(40, 52, "L")                               # non-square grey photo
    outs = {}
    for kind, x in three_kinds(img).items():
        a, b = t(x, rng(8)), t(x, rng(8))
        assert a.shape == (3, 32, 32) and a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
        assert np.array_equal(a, b), kind
        outs[kind] = a
    assert np.array_equal(outs["pil"], outs["uint8"])
    atol = PRESET_ATOL[name] * LEVEL / min(CFG.std)
    assert np.abs(outs["float"] - outs["uint8"]).max() <= atol
    if name != "none":
        assert not np.array_equal(t(img, rng(9)), outs["pil"])
    evaluate = eval_pipeline(CFG, crop=preset_eval_crop(name))
    assert evaluate(img).shape == (3, 32, 32)


def test_callable_augment_replaces_the_geometry():
    crop = RandomResizedCrop(32, scale=(0.5, 1.0))
    t = train_pipeline(CFG, crop)
    assert step_names(t) == ["ConvertMode", "RandomResizedCrop", "ToArray", "Normalize"]
    assert t.transforms[1] is crop
    img = photo(40, 40)
    assert np.array_equal(t(img, rng(1)), t(img, rng(1)))
    assert preset_eval_crop(crop) is True
    flat = Preset(lambda cfg: [crop], eval_crop=False)
    assert step_names(train_pipeline(CFG, flat))[1] == "RandomResizedCrop"
    assert preset_eval_crop(flat) is False


def test_pipeline_arguments_are_checked():
    with pytest.raises(ValueError, match=r"augment must be one of \['none', 'light', "
                                         r"'dihedral', 'standard', 'strong'\], a Preset or "
                                         r"a callable transform, got 'heavy'"):
        train_pipeline(CFG, "heavy")
    with pytest.raises(ValueError, match="augment must be one of .* got 3"):
        preset_eval_crop(3)
    with pytest.raises(ValueError, match="eval_pipeline: crop must be True or False, got "
                                         "'yes'"):
        eval_pipeline(CFG, crop="yes")


def test_classifier_preprocess_passes_augment_and_crop_through():
    from weitiao.models import resnet18

    net = resnet18(num_classes=2, rng=0)
    cfg = net.config
    assert repr(net.preprocess()) == repr(default_pipeline(cfg))          # unchanged
    assert repr(net.preprocess(train=True)) == repr(default_pipeline(cfg, train=True))
    assert repr(net.preprocess(True, augment="dihedral")) == \
        repr(train_pipeline(cfg, "dihedral"))
    assert repr(net.preprocess(augment="dihedral")) == repr(eval_pipeline(cfg, crop=False))
    assert repr(net.preprocess(augment="standard", crop=False)) == \
        repr(eval_pipeline(cfg, crop=False))
    assert repr(net.preprocess(augment="light", crop=True)) == repr(eval_pipeline(cfg))
