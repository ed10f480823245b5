"""Datasets: ImageFolder on small generated folders of every format and mode it reads, its
errors; ArrayDataset; Subset and the splits; Fashion-MNIST (IDX parser on generated files,
the real Debian files when installed) and ELPV (when elpv-dataset is installed)."""
import gzip
import os
import sys

import numpy as np
import pytest
from PIL import Image

from weitiao.data import (ELPV, ArrayDataset, FashionMNIST, ImageFolder, ImageReadError,
                          SkippedSample, Subset, ToArray, default_pipeline, random_split,
                          stratified_split)
from weitiao.data.fashion_mnist import read_idx
from weitiao.data.transforms import RandomResizedCrop
from weitiao.models.config import ModelConfig


def noise(h, w, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3),
                                                                dtype=np.uint8))


# class folder -> [(relative file name, Pillow mode, format or None for the extension's)]
LAYOUT = {
    "cat": [("a.jpg", "RGB"), ("b.png", "L"), ("c.bmp", "RGB"), ("d.gif", "P")],
    "Dog": [("e.webp", "RGB"), ("f.png", "RGBA"), ("g.jpg", "CMYK"), ("h.tif", "RGB"),
            ("I.PNG", "LA"), ("sub/j.ppm", "RGB")],
    "bird": [("k.pgm", "L"), ("l.jpeg", "RGB"), ("m.png", "P")],
}


def make_folder(root, layout=LAYOUT):
    """Writes each image (size depends on its position) and a few non-image files."""
    seed = 0
    for cls, files in layout.items():
        for name, mode in files:
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            seed += 1
            noise(10 + seed, 12 + seed, seed).convert(mode).save(path)
        (root / cls / "notes.txt").write_text("not an image")
    (root / "README.txt").write_text("a file at the root is not a class")
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "photos")


# --- ImageFolder --------------------------------------------------------------------------

def test_image_folder_classes_and_samples_in_torchvision_order(folder):
    ds = ImageFolder(folder)
    assert ds.classes == ["Dog", "bird", "cat"] == sorted(LAYOUT)  # capitals sort first
    assert ds.class_to_idx == {"Dog": 0, "bird": 1, "cat": 2}
    names = [os.path.relpath(p, folder) for p, _ in ds.samples]
    assert names == ["Dog/I.PNG", "Dog/e.webp", "Dog/f.png", "Dog/g.jpg", "Dog/h.tif",
                     "Dog/sub/j.ppm", "bird/k.pgm", "bird/l.jpeg", "bird/m.png",
                     "cat/a.jpg", "cat/b.png", "cat/c.bmp", "cat/d.gif"]
    assert ds.targets == [0] * 6 + [1] * 3 + [2] * 4
    assert len(ds) == 13 and ds.skipped == []
    assert "Number of datapoints: 13" in repr(ds)


def test_image_folder_converts_every_mode_to_rgb_as_pil_loader(folder):
    ds = ImageFolder(folder)
    for i, (path, label) in enumerate(ds.samples):
        img, target = ds[i]
        assert img.mode == "RGB" and target == label
        with Image.open(path) as ref:
            assert np.array_equal(np.asarray(img), np.asarray(ref.convert("RGB"))), path
    assert ds[-1][1] == 2


def test_image_folder_channels_and_transform(folder):
    assert {ImageFolder(folder, channels="L")[i][0].mode for i in range(13)} == {"L"}
    assert ImageFolder(folder, channels=None)[3][0].mode == "CMYK"
    x, y = ImageFolder(folder, transform=ToArray())[0]
    assert x.dtype == np.float32 and x.shape[0] == 3 and y == 0
    cfg = ModelConfig(input_size=8, resize_size=10)
    ds = ImageFolder(folder, transform=default_pipeline(cfg, train=True))
    a = ds.__getitem__(4, np.random.default_rng(0))[0]
    assert a.shape == (3, 8, 8)
    assert np.array_equal(a, ds.__getitem__(4, np.random.default_rng(0))[0])
    with pytest.raises(ValueError, match="channels"):
        ImageFolder(folder, channels="RGBA")
    with pytest.raises(ValueError, match="on_error"):
        ImageFolder(folder, on_error="ignore")


def test_image_folder_extensions_argument(folder):
    ds = ImageFolder(folder, extensions=(".txt",))
    assert len(ds) == 3 and all(p.endswith("notes.txt") for p, _ in ds.samples)


def test_image_folder_index_errors(folder):
    ds = ImageFolder(folder)
    with pytest.raises(IndexError, match="out of range"):
        ds[13]
    with pytest.raises(TypeError, match="integers"):
        ds["0"]


def test_image_folder_missing_root(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*does not exist"):
        ImageFolder(missing)
    (tmp_path / "file.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(tmp_path / "file.jpg")


def test_image_folder_without_class_folders(tmp_path):
    noise(4, 4, 0).save(tmp_path / "loose.png")
    with pytest.raises(FileNotFoundError, match=f"no class folders in {tmp_path}"):
        ImageFolder(tmp_path)


def test_image_folder_empty_class_folder_is_named(folder):
    (folder / "empty").mkdir()
    (folder / "texts").mkdir()
    (folder / "texts" / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError,
                       match=f"{folder / 'empty'}, {folder / 'texts'}.*extensions"):
        ImageFolder(folder)


def test_image_folder_hidden_checkpoint_folder_gets_a_hint(folder):
    (folder / ".ipynb_checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="hidden folder"):
        ImageFolder(folder)


def corrupt_files(folder):
    """A garbage file, a zero-byte file, a truncated PNG (caught by Image.verify) and a
    truncated JPEG (passes verify, fails to decode). Returns their paths."""
    bad = {"garbage": folder / "cat" / "zz_garbage.png", "empty": folder / "bird" / "z.jpg",
           "png": folder / "cat" / "zz_trunc.png", "jpg": folder / "Dog" / "zz_trunc.jpg"}
    bad["garbage"].write_bytes(b"this is not a PNG file")
    bad["empty"].write_bytes(b"")
    for key in ("png", "jpg"):
        noise(64, 64, 9).save(bad[key])
        data = bad[key].read_bytes()
        bad[key].write_bytes(data[:len(data) // 2])
    return {k: str(v) for k, v in bad.items()}


def test_corrupt_file_raises_naming_the_file_when_loaded(folder):
    bad = corrupt_files(folder)
    ds = ImageFolder(folder)                      # construction does not decode anything
    assert len(ds) == 17
    i = [p for p, _ in ds.samples].index(bad["garbage"])
    with pytest.raises(ImageReadError, match=f"cannot read image {bad['garbage']}"):
        ds[i]
    i = [p for p, _ in ds.samples].index(bad["jpg"])
    with pytest.raises(ImageReadError, match=f"{bad['jpg']}.*truncated"):
        ds[i]


def test_on_error_skip_leaves_out_bad_files_and_keeps_indices(folder):
    bad = corrupt_files(folder)
    with pytest.warns(UserWarning, match="skipped 3 unreadable"):
        ds = ImageFolder(folder, on_error="skip")
    assert sorted(ds.skipped) == sorted([bad["garbage"], bad["empty"], bad["png"]])
    assert len(ds) == 14                          # 13 good images + the truncated JPEG
    paths = [p for p, _ in ds.samples]
    j = paths.index(bad["jpg"])
    before = [(p, t) for p, t in ds.samples]
    with pytest.raises(SkippedSample, match=bad["jpg"]):
        ds[j]
    assert ds.skipped[-1] == bad["jpg"] and len(ds.skipped) == 4
    with pytest.raises(SkippedSample):            # recorded once, however often it fails
        ds[j]
    assert len(ds.skipped) == 4
    assert ds.samples == before and len(ds) == 14  # nobody else moved
    assert ds[j + 1][1] == before[j + 1][1]


# --- ArrayDataset -------------------------------------------------------------------------

def test_array_dataset_layouts():
    rng = np.random.default_rng(0)
    grey = ArrayDataset(rng.integers(0, 256, (5, 6, 7), dtype=np.uint8), [0, 1, 2, 1, 0])
    assert grey.classes == ["0", "1", "2"] and grey[1][0].shape == (6, 7)
    assert grey.targets.dtype == np.int64
    hwc = ArrayDataset(rng.integers(0, 256, (2, 6, 7, 3), dtype=np.uint8), [1, 0],
                       classes=["a", "b"])
    assert hwc[0][0].shape == (6, 7, 3) and hwc.class_to_idx == {"a": 0, "b": 1}
    chw = ArrayDataset(rng.random((2, 3, 6, 7)), [0, 0])   # float64 stored as float32
    assert chw.images.dtype == np.float32 and chw[0][0].shape == (3, 6, 7)
    img = grey[0][0]
    with pytest.raises(ValueError, match="read-only"):
        img[0, 0] = 1                                       # views cannot alter the data
    x, y = ArrayDataset(grey.images, grey.targets, transform=ToArray())[2]
    assert x.shape == (1, 6, 7) and y == 2


def test_array_dataset_validation():
    imgs = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="expected 3 labels"):
        ArrayDataset(imgs, [0, 1])
    with pytest.raises(TypeError, match="integers"):
        ArrayDataset(imgs, [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match=r"label 2 outside \[0, 2\)"):
        ArrayDataset(imgs, [0, 1, 2], classes=["a", "b"])
    with pytest.raises(ValueError, match="label -1"):
        ArrayDataset(imgs, [0, -1, 0])
    with pytest.raises(ValueError, match="floating .N, C, H, W."):
        ArrayDataset(np.zeros((3, 4, 4), np.float32), [0, 0, 0])
    with pytest.raises(ValueError, match="C in 1..4"):
        ArrayDataset(np.zeros((3, 4, 4, 5), np.uint8), [0, 0, 0])


# --- Subset and splits --------------------------------------------------------------------

def labelled(n_per_class):
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    imgs = np.zeros((labels.size, 4, 4), np.uint8) + labels[:, None, None].astype(np.uint8)
    return ArrayDataset(imgs, labels)


def test_subset_passes_labels_classes_and_generator_through():
    base = ArrayDataset(np.random.default_rng(0).integers(0, 256, (6, 20, 20), np.uint8),
                        [0, 1, 2, 0, 1, 2], transform=RandomResizedCrop(8))
    sub = Subset(base, [5, 2, 0])
    assert len(sub) == 3 and sub.targets == [2, 2, 0] and sub.classes == ["0", "1", "2"]
    a = sub.__getitem__(1, np.random.default_rng(4))[0]
    assert np.array_equal(a, base.__getitem__(2, np.random.default_rng(4))[0])
    with pytest.raises(IndexError, match="index 6 out of range"):
        Subset(base, [6])
    assert Subset([("x", 1), ("y", 0)], [1])[0] == ("y", 0)   # any indexable works


def test_random_split_counts_and_determinism():
    ds = labelled([10, 10])
    a, b = random_split(ds, [15, 5], seed=3)
    assert (len(a), len(b)) == (15, 5)
    assert sorted(a.indices + b.indices) == list(range(20))
    assert a.indices == random_split(ds, [15, 5], seed=3)[0].indices
    assert a.indices != random_split(ds, [15, 5], seed=4)[0].indices
    # torch's fractions: floor(10 / 3) = 3 each, the leftover item to the first part
    assert [len(s) for s in random_split(labelled([10]), [1 / 3] * 3)] == [4, 3, 3]
    with pytest.raises(ValueError, match="sum to the dataset's 20"):
        random_split(ds, [10, 5])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(ds, [0.5, 0.2])


def test_stratified_split_is_proportional_per_class():
    ds = labelled([50, 30, 7, 1])
    parts = stratified_split(ds, [0.7, 0.2, 0.1], seed=0)
    counts = [np.bincount(p.targets, minlength=4).tolist() for p in parts]
    # per class: floors of n * f, then one more to the largest remainders
    assert counts == [[35, 21, 5, 1], [10, 6, 1, 0], [5, 3, 1, 0]]
    all_idx = sorted(i for p in parts for i in p.indices)
    assert all_idx == list(range(len(ds)))
    assert all(p.indices == sorted(p.indices) for p in parts)
    again = stratified_split(ds, [0.7, 0.2, 0.1], seed=0)
    assert [p.indices for p in again] == [p.indices for p in parts]
    assert stratified_split(ds, [0.7, 0.2, 0.1], seed=1)[0].indices != parts[0].indices


def test_stratified_split_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(labelled([4]), [0.5, 0.6])
    with pytest.raises(TypeError, match="no `targets`"):
        stratified_split([(0, 0), (1, 1)], [0.5, 0.5])


# --- Fashion-MNIST ------------------------------------------------------------------------

def write_idx(path, array, gz):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz, sub", [(True, ""), (False, "FashionMNIST/raw")])
def test_fashion_mnist_reads_idx_files(tmp_path, gz, sub):
    folder = tmp_path / sub
    folder.mkdir(parents=True, exist_ok=True)
    imgs = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    labels = np.array([9, 0, 3, 9], np.uint8)
    ext = ".gz" if gz else ""
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", imgs, gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", labels, gz)
    ds = FashionMNIST(tmp_path, train=False)
    assert np.array_equal(ds.data, imgs) and ds.targets.tolist() == [9, 0, 3, 9]
    assert ds.classes[9] == "Ankle boot" and ds.classes[0] == "T-shirt/top"
    with pytest.raises(FileNotFoundError,
                       match="train-images-idx3-ubyte.*apt-get install dataset-fashion-mnist"):
        FashionMNIST(tmp_path, train=True)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01x")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(str(tmp_path / "bad"))
    write_idx(tmp_path / "short", np.zeros((3, 2), np.uint8), gz=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"header says \(3, 2\).*5 bytes"):
        read_idx(str(tmp_path / "short"))


fashion_files = pytest.mark.skipif(
    not os.path.exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
    reason="apt-get install dataset-fashion-mnist")


@fashion_files
def test_fashion_mnist_debian_files():
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.data.shape == (60000, 28, 28) and train.data.dtype == np.uint8
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert test[0][1] == 9 and len(test.classes) == 10
    x = default_pipeline(ModelConfig(input_size=32, resize_size=36))(test[0][0])
    assert x.shape == (3, 32, 32)


# --- ELPV ---------------------------------------------------------------------------------

def test_elpv_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)
    with pytest.raises(ImportError, match="pip install elpv-dataset"):
        ELPV()


def test_elpv_from_a_folder(tmp_path):
    (tmp_path / "images").mkdir()
    for k in range(3):
        noise(30, 30, k).convert("L").save(tmp_path / "images" / f"cell{k}.png")
    (tmp_path / "labels.csv").write_text(
        "images/cell0.png  1.0  mono\nimages/cell1.png  0.3333333333333333 poly\n"
        "images/cell2.png 0.0 poly\n")
    ds = ELPV(root=tmp_path, transform=ToArray())
    assert ds.targets == [3, 1, 0] and ds.types == ["mono", "poly", "poly"]
    assert ds[0][0].shape == (3, 30, 30)
    (tmp_path / "labels.csv").write_text("images/cell0.png 0.5 mono\n")
    with pytest.raises(ValueError, match="cell0.png has defect probability 0.5"):
        ELPV(root=tmp_path)


def test_elpv_package():
    pytest.importorskip("elpv_dataset")
    ds = ELPV()
    assert len(ds) == 2624 and ds.classes == ["0", "1/3", "2/3", "1"]
    assert np.bincount(ds.targets).tolist() == [1508, 295, 106, 715]
    assert np.allclose(ds.probabilities, np.array(ds.targets) / 3)
    assert sorted(set(ds.types)) == ["mono", "poly"] and ds.types.count("mono") == 1074
    img, label = ds[0]
    assert img.mode == "RGB" and img.size == (300, 300) and label == 3
    grey = ELPV(channels="L", transform=ToArray())[0][0]
    assert grey.shape == (1, 300, 300)
    assert np.array_equal(ToArray()(img)[0], grey[0])
