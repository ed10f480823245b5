"""`python -m weitiao pretrain` and the resnet_small it trains, at a tiny size: a fake
Fashion-MNIST of a few random images written as IDX files."""
import gzip
import json

import numpy as np
import pytest

from weitiao.cli import main
from weitiao.finetune import FineTuner
from weitiao.io import save_state_dict
from weitiao.models import ARCHITECTURES, create_model
from weitiao.pretrain import ShiftFlip, fashion_mnist_split, parse_classes, pretrain_record


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def fake_fmnist(tmp_path_factory):
    """A folder with the four IDX files: 6 train and 2 test images of each of 10 classes."""
    root = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for prefix, per_class in (("train", 6), ("t10k", 2)):
        labels = np.repeat(np.arange(10), per_class)
        images = rng.integers(0, 256, size=(labels.size, 28, 28))
        images[:, :, :14] //= (labels[:, None, None] + 1)  # a little class signal
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(scope="module")
def pretrained(fake_fmnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "src.safetensors"
    code = main(["pretrain", "--dataset", "fashion-mnist", "--root", str(fake_fmnist),
                 "--classes", "0,Trouser,4", "--epochs", "1", "--batch-size", "6",
                 "--workers", "0", "--seed", "3", "--out", str(out)])
    assert code == 0
    return out


def test_pretrain_writes_a_model_that_create_model_loads(pretrained):
    assert "resnet_small" in ARCHITECTURES
    model = create_model("resnet_small", weights=pretrained)
    assert model.num_classes == 3
    assert model.config.class_names == ("T-shirt/top", "Trouser", "Coat")
    assert (model.config.input_size, model.config.resize_size) == (28, 28)
    assert model.stage_names() == ["stem", "layer1", "layer2", "layer3"]
    record = pretrain_record(pretrained)
    assert record["classes"] == [0, 1, 4] and record["epochs"] == 1 and record["seed"] == 3
    assert record["train_images"] == 18 and 0.0 <= record["test_accuracy"] <= 1.0


def test_pretrained_file_is_a_finetuner_checkpoint(pretrained):
    tuner = FineTuner.load(pretrained)
    assert tuner.classes == ["T-shirt/top", "Trouser", "Coat"]
    x = np.zeros((2, 3, 28, 28), np.float32)
    names, probs = tuner.predict(x)
    assert probs.shape == (2, 3) and len(names) == 2


def test_source_model_fine_tunes_reuses_rows_and_rebuilds_from_scratch(pretrained,
                                                                       fake_fmnist):
    source = create_model("resnet_small", weights=pretrained)
    target = fashion_mnist_split([4, 8], per_class=3, root=fake_fmnist,
                                 config=source.config, augment=True)
    ft = FineTuner(source, classes=target.classes, reuse_classifier="auto", freeze=2)
    assert list(ft.reuse_report.matched) == ["Coat"]
    np.testing.assert_array_equal(ft.model.fc.weight.data[0], source.fc.weight.data[2])
    ft.fit(target, 1, batch_size=3, num_workers=0, verbose=False)
    scratch = FineTuner(source, classes=target.classes, from_scratch=True)
    assert scratch.model.layers == source.layers == (1, 1, 1)


def test_new_head_when_num_classes_differs(pretrained):
    model = create_model("resnet_small", num_classes=7, weights=pretrained, rng=0)
    assert model.num_classes == 7
    assert model.config.class_names == ("T-shirt/top", "Trouser", "Coat")


def test_deeper_small_resnet_round_trips(fake_fmnist, tmp_path):
    out = tmp_path / "deep.safetensors"
    assert main(["pretrain", "--root", str(fake_fmnist), "--classes", "5,6", "--epochs", "1",
                 "--per-class", "2", "--layers", "2,1,1", "--workers", "0",
                 "--out", str(out)]) == 0
    assert create_model("resnet_small", weights=out).layers == (2, 1, 1)


def test_weight_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weitiao pretrain"):
        create_model("resnet_small", weights=tmp_path / "missing.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_state_dict({"fc.bias": np.zeros(2, np.float32)}, plain)
    with pytest.raises(ValueError, match="no weitiao metadata"):
        create_model("resnet_small", weights=plain)
    other = tmp_path / "other.safetensors"
    save_state_dict({"fc.bias": np.zeros(2, np.float32)}, other,
                    metadata={"weitiao": json.dumps({"arch": "resnet18"})})
    with pytest.raises(ValueError, match="holds a 'resnet18' model"):
        create_model("resnet_small", weights=other)


def test_parse_classes():
    assert parse_classes("5, Shirt ,bag") == [5, 6, 8]
    with pytest.raises(ValueError, match="outside 0..9"):
        parse_classes("10")
    with pytest.raises(ValueError, match="not a Fashion-MNIST class"):
        parse_classes("hotdog")
    with pytest.raises(ValueError, match="distinct"):
        parse_classes("1,1")


def test_shift_flip_is_seeded_and_keeps_content():
    img = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    t = ShiftFlip(pad=2, fill=(-1.0, -2.0))
    a, b = t(img, np.random.default_rng(7)), t(img, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == img.shape and a.dtype == np.float32
    outs = [t(img, np.random.default_rng(s)) for s in range(50)]
    # every output is the image shifted by at most 2 pixels (and maybe mirrored), the
    # uncovered border filled with each channel's fill value
    for out in outs:
        for c, fill in enumerate((-1.0, -2.0)):
            kept = out[c][out[c] != fill]
            assert set(kept.tolist()) <= set(img[c].ravel().tolist())
            assert kept.size >= 3 * 3
    assert any(not np.array_equal(o, img) for o in outs)


def test_pretrain_rejects_unknown_dataset():
    with pytest.raises(SystemExit):
        main(["pretrain", "--dataset", "cifar10"])
