"""Real photos for the tests of pretrained ImageNet models: scikit-image's sample photos, the
ImageNet classes a correct classifier ranks first, and torchvision's evaluation crop in
NumPy. Test modules import this after ``pytest.importorskip("skimage.data")`` and
``pytest.importorskip("PIL.Image")``.
"""
from functools import lru_cache

import numpy as np
import skimage.data as skdata
from PIL import Image

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TF_INCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # TF's Lite models: (x - 127) / 128

# skimage photos and the ImageNet classes a correct classifier puts first.
PHOTOS = {
    "chelsea": (lambda: skdata.chelsea(), {281, 282, 285}),  # tabby, tiger cat, Egyptian cat
    "coffee": (lambda: skdata.coffee(), {967, 968, 504}),  # espresso, cup, coffee mug
    "rocket": (lambda: skdata.rocket(), {657, 744, 812}),  # missile, projectile, shuttle
    "camera": (lambda: skdata.camera(), {872, 759}),  # tripod, reflex camera
    "motorcycle": (lambda: skdata.stereo_motorcycle()[0], {665, 670}),  # moped, scooter
}


def centre_crop(image: np.ndarray, resize: int = 256, size: int = 224) -> np.ndarray:
    """Shorter side to ``resize`` (bilinear), centre ``size`` crop, RGB in [0, 1], HWC;
    torchvision's rounding (long side truncated, crop offset rounded half to even)."""
    im = Image.fromarray(image).convert("RGB")
    w, h = im.size
    if w <= h:
        im = im.resize((resize, int(resize * h / w)), Image.BILINEAR)
    else:
        im = im.resize((int(resize * w / h), resize), Image.BILINEAR)
    w, h = im.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return np.asarray(im.crop((left, top, left + size, top + size)), np.float32) / 255.0


@lru_cache(maxsize=4)
def photo_crops(resize: int = 256, size: int = 224) -> dict:
    """Every photo of PHOTOS through :func:`centre_crop`, by name (cached: do not modify)."""
    return {name: centre_crop(load(), resize, size) for name, (load, _) in PHOTOS.items()}


def normalise(crops, mean, std) -> np.ndarray:
    """(N, H, W, 3) in [0, 1] -> (N, 3, H, W) float32, C-contiguous."""
    x = (np.asarray(crops) - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def softmax(logits):
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def ranked(model, config, names=tuple(PHOTOS)) -> dict:
    """Class indices by decreasing probability for each named photo, the model in eval mode
    on the config's crop and normalisation."""
    crops = photo_crops(config.resize_size, config.input_size)
    probs = softmax(model.eval()(normalise([crops[n] for n in names], config.mean,
                                           config.std)))
    return {n: list(np.argsort(-p)) for n, p in zip(names, probs)}
