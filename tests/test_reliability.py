"""After a failure the state is as documented (docs/reliability.md): a failed training step
leaves the model exactly as before the batch, bad arguments are refused before anything
changes, and the messages say what went wrong."""
import os

import numpy as np
import pytest
from conftest import small_resnet18

from weitiao.data import ArrayDataset
from weitiao.finetune import FineTuner
from weitiao.models import resnet18


@pytest.fixture(scope="module")
def source():
    return small_resnet18(32)


def _arrays(n=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    return x, np.arange(n) % 2


def _copy(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def _record_steps(ft) -> list:
    """The model's state before training and after every optimizer step from now on."""
    states = [_copy(ft.model)]
    step = ft.optimizer.step

    def step_and_record():
        step()
        states.append(_copy(ft.model))

    ft.optimizer.step = step_and_record
    return states


def _assert_same(model, before):
    state = model.state_dict()
    assert state.keys() == before.keys()
    for k, v in state.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_nan_image_leaves_the_model_bit_identical_and_names_the_images(source):
    x, y = _arrays()
    x[5, 1, 3, 4] = np.nan
    x[6, 0, 0, 0] = np.inf
    ft = FineTuner(source, classes=["a", "b"])
    before = _copy(ft.model)
    with pytest.raises(ValueError, match=r"non-finite input: images \[5, 6\] of this batch "
                                         r"\(of 8\) hold NaN or Inf.*left as it was"):
        ft.fit(ArrayDataset(x, y, classes=["a", "b"]), epochs=1, batch_size=8,
               shuffle=False, num_workers=0, verbose=False)
    _assert_same(ft.model, before)
    assert len(ft.history) == 0
    clean = _arrays(seed=1)
    assert np.isfinite(ft.evaluate(clean, num_workers=0).loss)


def test_diverging_lr_leaves_the_model_as_after_the_last_good_step(source):
    x, y = _arrays()
    x[y == 1] += 3.0
    ft = FineTuner(source, classes=["a", "b"], lr=1e4, momentum=0.0, weight_decay=0.0,
                   freeze=None)
    states = _record_steps(ft)
    with pytest.raises(FloatingPointError, match=r"training diverged: the loss became "
                                                 r"(nan|inf) at learning rates body 10000, "
                                                 r"head 100000.*left as "
                                                 r"it was.*try a lower learning rate"):
        ft.fit((x, y), epochs=20, batch_size=8, scheduler=None, num_workers=0,
               verbose=False)
    assert len(states) > 1  # some steps succeeded before the one that failed
    _assert_same(ft.model, states[-1])
    running = [v for k, v in ft.model.state_dict().items() if "running_" in k]
    assert all(np.isfinite(v).all() for v in running)


def test_empty_batches_give_empty_results(source):
    model = resnet18(rng=0).eval()
    assert model(np.zeros((0, 3, 32, 32), np.float32)).shape == (0, 1000)
    ft = FineTuner(source, classes=["a", "b"])
    names, probs = ft.predict(np.zeros((0, 3, 32, 32), np.float32))
    assert names == [] and probs.shape == (0, 2) and probs.dtype == np.float32


@pytest.mark.parametrize("lr", [np.inf, np.nan])
def test_non_finite_lr_refused_when_the_optimizer_is_built(source, lr):
    from weitiao.optim import SGD

    params = list(source.fc.parameters())
    with pytest.raises(ValueError, match=r"SGD: group 0: lr must be (finite|>= 0), got"):
        SGD(params, lr=lr)
    with pytest.raises(ValueError, match=r"SGD: group 0: lr must be (finite|>= 0), got"):
        FineTuner(source, classes=["a", "b"], lr=lr)


def test_fewer_than_two_classes_refused(source):
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 2 \(a classifier "
                                         r"with one class always predicts it"):
        FineTuner(source, num_classes=1)
    with pytest.raises(ValueError, match=r"at least two classes .*got \['cat'\]"):
        FineTuner(source, classes=["cat"])


def _png(path):
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(path)


def test_image_folder_skips_a_symlink_cycle_with_a_warning(tmp_path):
    from weitiao.data import ImageFolder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _png(tmp_path / name / "1.png")
    os.symlink("..", tmp_path / "a" / "loop")
    with pytest.warns(UserWarning, match=r"skipped .*a/loop: it leads back to .* \(a symlink "
                                         r"cycle\)"):
        ds = ImageFolder(tmp_path)
    assert [os.path.relpath(p, tmp_path) for p, _ in ds.samples] == ["a/1.png", "b/1.png"]
    assert ds.targets == [0, 1]


def test_image_folder_walks_a_folder_linked_twice_once(tmp_path):
    from weitiao.data import ImageFolder

    root = tmp_path / "root"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        _png(root / name / "1.png")
    (tmp_path / "shared").mkdir()
    _png(tmp_path / "shared" / "2.png")
    os.symlink(tmp_path / "shared", root / "a" / "one")
    os.symlink(tmp_path / "shared", root / "a" / "two")
    with pytest.warns(UserWarning, match=r"skipped .*a/two: it leads back to .*shared \(a "
                                         r"folder already walked\)"):
        ds = ImageFolder(root)
    assert [os.path.relpath(p, root) for p, _ in ds.samples] == \
        ["a/1.png", "a/one/2.png", "b/1.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_image_folder_never_opens_a_named_pipe(tmp_path):
    from weitiao.data import ImageFolder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _png(tmp_path / name / "1.png")
    os.mkfifo(tmp_path / "a" / "x.png")
    with pytest.warns(UserWarning, match=r"skipped 1 entry\(ies\) that are not regular files, "
                                         r"without opening them: .*a/x.png"):
        ds = ImageFolder(tmp_path, on_error="skip")
    assert len(ds) == 2 and ds.skipped == [str(tmp_path / "a" / "x.png")]
    with pytest.raises(ValueError, match=r"a/x.png is not a regular file \(a named pipe, "
                                         r"socket or device\).*on_error='skip'"):
        ImageFolder(tmp_path)


def test_damaged_fine_tuner_metadata_is_a_checkpoint_error(source, tmp_path):
    import json

    from weitiao.io import CheckpointError, load_safetensors, save_state_dict

    good = tmp_path / "good.safetensors"
    FineTuner(source, classes=["a", "b"]).save(good)
    state, meta = load_safetensors(good)
    info = json.loads(meta["weitiao"])
    del info["classes"]
    cases = {"{not json": r"field 'weitiao' is not valid JSON",
             json.dumps(info): r"field 'classes' is missing or not a list",
             json.dumps({**info, "classes": ["a", "b"], "config": {}}): r"field 'config' is "
                                                                       r"damaged"}
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.safetensors"
        save_state_dict(state, path, metadata={"weitiao": text})
        with pytest.raises(CheckpointError, match=rf"FineTuner.load: '{path}': the "
                                                  rf"metadata {message}"):
            FineTuner.load(path)


def test_load_state_dict_given_a_path_points_to_the_reader(source):
    model = resnet18(rng=0)
    before = _copy(model)
    with pytest.raises(TypeError, match=r"ResNet.load_state_dict: expected a state dict "
                                        r"\(name -> array\), got the path 'x.safetensors'.*"
                                        r"weitiao.io.load_state_dict\(path\)"):
        model.load_state_dict("x.safetensors")
    _assert_same(model, before)


def test_fit_checks_the_checkpoint_folder_before_the_first_epoch(source, tmp_path):
    x, y = _arrays()
    tuner = FineTuner(source, num_classes=2, seed=0)
    before = _copy(tuner.model)
    target = tmp_path / "missing" / "run.safetensors"
    with pytest.raises(FileNotFoundError, match=rf"cannot write {target}: the folder "
                                                rf"{target.parent} does not exist"):
        tuner.fit((x, y), 1, batch_size=8, checkpoint=target, verbose=False)
    assert len(tuner.history) == 0
    _assert_same(tuner.model, before)


def test_a_failed_save_names_the_target_not_the_temporary_file(source, tmp_path,
                                                              monkeypatch):
    import tempfile

    from weitiao.io import atomic_write

    target = tmp_path / "gone" / "model.safetensors"
    with pytest.raises(FileNotFoundError, match=rf"^cannot write {target}: the folder"):
        FineTuner(source, num_classes=2).save(target)

    def refuse(prefix, suffix, dir):  # what a read-only folder does (even to root on NFS)
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "x" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match=r"cannot write .*/m.bin: Permission denied") \
            as info:
        with atomic_write(tmp_path / "m.bin"):
            pass
    assert ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_loading_a_file_never_fetches_weights(source, tmp_path, monkeypatch):
    """A FineTuner file whose metadata asks for pretrained weights is refused, and loading
    a good one opens no socket."""
    import json
    import socket

    from weitiao.io import CheckpointError, load_safetensors, save_state_dict

    def refuse(*args, **kwargs):
        raise AssertionError("FineTuner.load touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    good = tmp_path / "good.safetensors"
    FineTuner(source, classes=["a", "b"]).save(good)
    assert FineTuner.load(good).classes == ["a", "b"]
    state, meta = load_safetensors(good)
    info = json.loads(meta["weitiao"])
    for extra in ({"weights": "DEFAULT"}, {"num_classes": 5}, ["dropout"]):
        bad = tmp_path / "asks.safetensors"
        save_state_dict(state, bad, metadata={"weitiao": json.dumps({**info,
                                                                     "arch_kwargs": extra})})
        with pytest.raises(CheckpointError, match=r"field 'arch_kwargs' must be an object of "
                                                  r"architecture options, without 'weights'"):
            FineTuner.load(bad)
    save_state_dict(state, bad, metadata={"weitiao": json.dumps({**info, "arch": "vgg19"})})
    with pytest.raises(CheckpointError, match=r"field 'arch' names an unknown architecture "
                                              r"'vgg19'"):
        FineTuner.load(bad)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_a_file_dataset_never_opens_a_named_pipe(tmp_path):
    from weitiao.data import FileDataset
    from weitiao.data.image_files import ImageReadError, verify_image

    os.mkfifo(tmp_path / "x.png")
    ds = FileDataset([(str(tmp_path / "x.png"), 0)], ["a"])
    with pytest.raises(ImageReadError, match=r"x.png: OSError: not a regular file \(a named "
                                             r"pipe"):
        ds[0]
    assert "not a regular file" in verify_image(str(tmp_path / "x.png"))


def test_a_nan_image_in_a_linear_probe_leaves_the_head_as_after_the_last_good_step(source):
    """On cached features too a NaN image is named, and the head is left as after the last
    good step."""
    x, y = _arrays()
    x[11, 0, 5, 5] = np.nan
    ft = FineTuner(source, classes=["a", "b"], freeze="backbone", seed=0)
    states = _record_steps(ft)
    with pytest.raises(ValueError, match=r"non-finite input: images \[\d+\] of this batch"):
        ft.fit((x, y), epochs=1, batch_size=4, scheduler=None, num_workers=0, verbose=False)
    _assert_same(ft.model, states[-1])


def test_check_writable_names_a_folder_and_an_unwritable_folder(tmp_path, monkeypatch):
    from weitiao.io import check_writable

    with pytest.raises(IsADirectoryError, match=rf"cannot write {tmp_path}: it is a folder"):
        check_writable(tmp_path)
    assert check_writable(tmp_path / "m.safetensors") == str(tmp_path / "m.safetensors")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root ignores chmod
    with pytest.raises(PermissionError, match=rf"cannot write .*m.safetensors: the folder "
                                              rf"{tmp_path} is not writable"):
        check_writable(tmp_path / "m.safetensors")
