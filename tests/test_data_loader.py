"""DataLoader: batch shapes and dtypes, per-epoch shuffling, bit-identical results for any
number of worker threads, bounded prefetch, and no thread left behind after a break, an
error or a KeyboardInterrupt."""
import threading
import time

import numpy as np
import pytest
from PIL import Image

from weitiao.data import (ArrayDataset, DataLoader, ImageFolder, ImageReadError, Subset,
                          default_pipeline)
from weitiao.data.transforms import Compose, RandomResizedCrop, ToArray
from weitiao.models.config import ModelConfig

CFG = ModelConfig(input_size=16, resize_size=20)


@pytest.fixture
def photos(tmp_path):
    """3 classes x 7 photos of assorted sizes, formats and modes."""
    rng = np.random.default_rng(0)
    formats = [("jpg", "RGB"), ("png", "L"), ("bmp", "RGB"), ("webp", "RGB"), ("png", "RGBA")]
    for c in range(3):
        (tmp_path / f"class{c}").mkdir()
        for k in range(7):
            ext, mode = formats[(c + k) % len(formats)]
            h, w = 20 + 3 * k, 24 + 2 * c
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            img.convert(mode).save(tmp_path / f"class{c}" / f"{k}.{ext}")
    return tmp_path


def grey_arrays(n=10, size=6):
    imgs = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, size, size), np.uint8)
    return ArrayDataset(imgs, np.arange(n) % 3)


def all_batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_batches_shapes_dtypes_and_length():
    ds = grey_arrays(10)
    loader = DataLoader(ds, batch_size=4)
    batches = all_batches(loader)
    assert len(loader) == 3 and [x.shape[0] for x, _ in batches] == [4, 4, 2]
    for x, y in batches:
        assert x.dtype == np.float32 and x.flags["C_CONTIGUOUS"] and x.shape[1:] == (1, 6, 6)
        assert y.dtype == np.int64 and y.shape == (x.shape[0],)
    # unshuffled order, untransformed uint8 samples scaled as ToArray
    assert np.array_equal(np.concatenate([y for _, y in batches]), np.arange(10) % 3)
    assert np.allclose(np.concatenate([x for x, _ in batches])[:, 0, 0, 0],
                       np.arange(10) / 255)
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [x.shape[0] for x, _ in dropped] == [4, 4]


def test_shuffle_changes_with_epoch_and_repeats_for_the_same_seed_and_epoch():
    ds = grey_arrays(20)

    def order(loader):
        return np.concatenate([x[:, 0, 0, 0] for x, _ in loader]) * 255

    loader = DataLoader(ds, batch_size=6, shuffle=True, seed=7)
    e0, e1 = order(loader), order(loader)                   # epoch counter 0, then 1
    assert sorted(np.rint(e0)) == list(range(20)) and not np.array_equal(e0, e1)
    assert loader.epoch == 2
    loader.set_epoch(0)
    assert np.array_equal(order(loader), e0)
    other = DataLoader(ds, batch_size=6, shuffle=True, seed=7)
    other.set_epoch(1)
    assert np.array_equal(order(other), e1)
    assert not np.array_equal(order(DataLoader(ds, batch_size=6, shuffle=True, seed=8)), e0)
    assert np.array_equal(loader.order(3), other.order(3))


def test_results_are_bit_identical_for_any_number_of_workers(photos):
    ds = ImageFolder(photos, transform=default_pipeline(CFG, train=True))
    runs = {}
    for workers in (0, 1, 4):
        loader = DataLoader(ds, batch_size=5, shuffle=True, seed=3, num_workers=workers)
        runs[workers] = all_batches(loader) + all_batches(loader)   # epochs 0 and 1
    for workers in (1, 4):
        assert len(runs[workers]) == len(runs[0]) == 10
        for (x, y), (x0, y0) in zip(runs[workers], runs[0]):
            assert np.array_equal(x, x0) and np.array_equal(y, y0)
    assert not np.array_equal(runs[0][0][0], runs[0][5][0])   # epoch 1 differs
    # any sample can be reproduced on its own from (seed, epoch, index)
    loader = DataLoader(ds, batch_size=5, shuffle=True, seed=3)
    first = int(loader.order(0)[0])
    x, y = loader.load(first, epoch=0)
    assert np.array_equal(x, runs[0][0][0][0]) and y == runs[0][0][1][0]
    ref = ds.__getitem__(first, loader.sample_rng(0, first))[0]
    assert np.array_equal(x, ref)


def test_loader_transform_applies_per_split(photos):
    folder = ImageFolder(photos)
    train = Subset(folder, range(0, 21, 2))
    train_loader = DataLoader(train, batch_size=4, num_workers=2,
                              transform=default_pipeline(CFG, train=True))
    val_loader = DataLoader(Subset(folder, range(1, 21, 2)), batch_size=4,
                            transform=default_pipeline(CFG, train=False))
    x, y = next(iter(train_loader))
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 0, 0]
    assert next(iter(val_loader))[0].shape == (4, 3, 16, 16)


def test_mismatched_sizes_and_bad_labels_are_explained(photos):
    with pytest.raises(ValueError, match="sample 1 has shape .* but sample 0"):
        next(iter(DataLoader(ImageFolder(photos, transform=ToArray()), batch_size=4)))
    with pytest.raises(TypeError, match="label of sample 0"):
        next(iter(DataLoader([(np.zeros((2, 2), np.uint8), 0.5)], batch_size=1)))
    with pytest.raises(TypeError, match="sample 0 is str"):
        next(iter(DataLoader([("img", 0)], batch_size=1)))


def test_plain_sequence_datasets_work():
    data = [(np.full((3, 2, 2), i, np.float32), i) for i in range(5)]
    x, y = next(iter(DataLoader(data, batch_size=5, num_workers=2)))
    assert x.shape == (5, 3, 2, 2) and y.tolist() == list(range(5))


def test_invalid_arguments():
    ds = grey_arrays()
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(ds, seed=-3)
    with pytest.raises(ValueError, match="epoch"):
        DataLoader(ds).set_epoch(-1)


def test_skipped_files_drop_out_of_their_batch(photos):
    bad = photos / "class1" / "9_truncated.jpg"
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad)
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])                # passes verify, fails to decode
    ds = ImageFolder(photos, on_error="skip", transform=default_pipeline(CFG))
    assert len(ds) == 22 and ds.skipped == []
    loader = DataLoader(ds, batch_size=22, num_workers=2)
    x, y = next(iter(loader))
    assert x.shape[0] == 21 and ds.skipped == [str(bad)]
    assert np.bincount(y).tolist() == [7, 7, 7]           # the other labels stay in place
    with pytest.raises(ImageReadError, match="9_truncated.jpg"):
        next(iter(DataLoader(ImageFolder(photos, transform=default_pipeline(CFG)),
                             batch_size=22, num_workers=2)))


# --- threads ------------------------------------------------------------------------------

def wait_for_threads(baseline, timeout=5.0):
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_early_break_leaves_no_threads(photos):
    baseline = threading.active_count()
    ds = ImageFolder(photos, transform=default_pipeline(CFG, train=True))
    for _ in range(3):
        for x, _ in DataLoader(ds, batch_size=2, shuffle=True, num_workers=4):
            assert threading.active_count() > baseline          # workers were running
            break
        assert threading.active_count() == baseline            # joined before break returns
    it = iter(DataLoader(ds, batch_size=2, num_workers=3))
    next(it)
    it.close()                                                  # an iterator kept around
    assert threading.active_count() == baseline


def test_keyboard_interrupt_in_a_worker_or_the_loop_cleans_up():
    baseline = threading.active_count()

    def interrupt_at_7(img, rng=None):
        if int(img[0, 0]) == 7:
            raise KeyboardInterrupt
        return img

    loader = DataLoader(grey_arrays(20), batch_size=2, num_workers=3, transform=interrupt_at_7)
    with pytest.raises(KeyboardInterrupt):
        for _ in loader:
            pass
    assert wait_for_threads(baseline) == baseline

    with pytest.raises(KeyboardInterrupt):
        for _ in DataLoader(grey_arrays(20), batch_size=2, num_workers=3):
            raise KeyboardInterrupt
    assert wait_for_threads(baseline) == baseline


def test_worker_error_propagates_and_threads_end(photos):
    baseline = threading.active_count()
    (photos / "class0" / "broken.png").write_bytes(b"not a png")
    loader = DataLoader(ImageFolder(photos, transform=default_pipeline(CFG)), batch_size=4,
                        num_workers=4)
    with pytest.raises(ImageReadError, match="broken.png"):
        all_batches(loader)
    assert wait_for_threads(baseline) == baseline


def test_prefetch_is_bounded():
    started = []

    class Counting(ArrayDataset):
        def __getitem__(self, index, rng=None):
            started.append(index)
            return super().__getitem__(index, rng)

    base = grey_arrays(200)
    ds = Counting(base.images, base.targets)
    loader = DataLoader(ds, batch_size=4, num_workers=4, prefetch_batches=2)
    it = iter(loader)
    next(it)
    time.sleep(0.2)                                  # give the workers time to run ahead
    assert len(started) <= (2 + 1) * 4               # the batch handed out + 2 queued
    rest = list(it)
    assert len(rest) == 49 and sorted(started) == list(range(200))


def test_random_transform_of_loader_uses_per_sample_generators():
    ds = ArrayDataset(np.random.default_rng(0).integers(0, 256, (8, 30, 30), np.uint8),
                      np.zeros(8, int))
    t = Compose([RandomResizedCrop(10), ToArray()])
    a = all_batches(DataLoader(ds, batch_size=3, transform=t, num_workers=0))
    b = all_batches(DataLoader(ds, batch_size=3, transform=t, num_workers=4))
    assert all(np.array_equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))
    x = np.concatenate([x for x, _ in a])
    assert len({x[i].tobytes() for i in range(8)}) == 8     # each sample its own crop
