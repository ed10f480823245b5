"""weitiao.io's PyTorch checkpoint reader: torch as the oracle for real files, hand-built
files (tests/io_fixtures) for everything torch would never write."""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import tracemalloc
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from io_fixtures import torchfiles as tf
from weitiao.io import CheckpointError, load_pth, load_state_dict

FORMATS = ["zip", "legacy"]


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def torch_save(torch, obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))


def as_numpy(torch, t):
    t = t.detach()
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def assert_same(torch, loaded, expected):
    assert list(loaded) == list(expected)
    for key, t in expected.items():
        ref = as_numpy(torch, t)
        got = loaded[key]
        assert isinstance(got, np.ndarray), key
        assert got.dtype == ref.dtype and got.shape == ref.shape, key
        np.testing.assert_array_equal(got, ref, err_msg=key)
        assert got.flags.c_contiguous and got.flags.writeable, key


# ---------------------------------------------------------------------------------------
# Files written by torch itself, in both layouts
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_torch_tensors_of_every_kind(torch, tmp_path, fmt):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    param = torch.nn.Parameter(torch.randn(3, 2))
    with_state = torch.nn.Parameter(torch.randn(2))
    with_state.tag = "kept by torch, dropped by us"  # torch writes _rebuild_parameter_with_state
    with_attr = torch.randn(2)
    with_attr.note = 1  # torch writes _rebuild_from_type_v2
    state = OrderedDict(
        f32=torch.randn(2, 3, 4, 5),
        f16=torch.randn(7).half(),
        f64=torch.randn(3).double(),
        bf16=torch.tensor([1.5, -2.25, 3e38]).bfloat16(),
        i32=torch.tensor([1, -2], dtype=torch.int32),
        u8=torch.tensor([0, 255], dtype=torch.uint8),
        u16=torch.tensor([1, 65535]).to(torch.uint16),  # written with _rebuild_tensor_v3
        flag=torch.tensor([True, False]),
        num_batches_tracked=torch.tensor(7),
        scalar=torch.tensor(2.5),
        base=base,
        transposed=base.t(),  # same storage, other strides
        window=base[1:3, 2:5],  # same storage, offset 8
        column=base[:, 4],
        expanded=torch.ones(3, 1).expand(3, 4),  # stride 0
        empty=torch.zeros(0, 3),
        param=param,
        with_state=with_state,
        with_attr=with_attr,
    )
    path = tmp_path / "mixed.pth"
    torch_save(torch, state, path, fmt)
    loaded = load_pth(path)
    assert_same(torch, loaded, state)
    assert loaded["num_batches_tracked"].shape == () and loaded["num_batches_tracked"].dtype == np.int64
    assert loaded["bf16"].dtype == np.float32  # NumPy has no bfloat16; widening is exact


@pytest.mark.parametrize("fmt", FORMATS)
def test_module_state_dict_with_batchnorm(torch, tmp_path, fmt):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5),
    )
    model(torch.randn(2, 3, 6, 6))  # training-mode forward: running stats and counter move
    path = tmp_path / "model.pth"
    torch_save(torch, model.state_dict(), path, fmt)
    loaded = load_state_dict(path)
    assert_same(torch, loaded, model.state_dict())
    assert loaded["1.num_batches_tracked"] == 1


def test_views_of_one_storage_come_back_independent(torch, tmp_path):
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    torch.save({"a": base, "b": base.t()}, tmp_path / "v.pth")
    loaded = load_pth(tmp_path / "v.pth")
    loaded["a"][0, 0] = 100.0
    assert loaded["b"][0, 0] == 0.0


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("wrapper", ["state_dict", "model", "model_state", "model_state_dict"])
def test_wrapped_checkpoints_unwrap(torch, tmp_path, fmt, wrapper):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    checkpoint = {"epoch": 3, wrapper: model.state_dict(), "optimizer": optimizer.state_dict(),
                  "best_acc": 0.875, "classes": ["hotdog", "not hotdog"]}
    path = tmp_path / "ckpt.pth"
    torch_save(torch, checkpoint, path, fmt)
    assert_same(torch, load_state_dict(path), model.state_dict())
    raw = load_pth(path)
    assert raw["epoch"] == 3 and raw["classes"] == ["hotdog", "not hotdog"]
    assert raw["optimizer"]["param_groups"][0]["lr"] == 0.1


@pytest.mark.parametrize("fmt", FORMATS)
def test_dataparallel_prefix_is_stripped(torch, tmp_path, fmt):
    model = torch.nn.Linear(3, 2)
    wrapped = torch.nn.DataParallel(model)  # on CPU it only wraps: keys gain "module."
    assert all(k.startswith("module.") for k in wrapped.state_dict())
    path = tmp_path / "dp.pth"
    torch_save(torch, {"state_dict": wrapped.state_dict()}, path, fmt)
    assert_same(torch, load_state_dict(path), model.state_dict())


def test_prefix_kept_unless_every_key_has_it(torch, tmp_path):
    torch.save({"module.a": torch.ones(1), "b": torch.ones(1)}, tmp_path / "p.pth")
    assert list(load_state_dict(tmp_path / "p.pth")) == ["module.a", "b"]


def test_format_found_from_content_not_name(torch, tmp_path):
    state = {"w": torch.randn(2, 2)}
    torch.save(state, tmp_path / "zip.safetensors")
    torch.save(state, tmp_path / "legacy.npz", _use_new_zipfile_serialization=False)
    for name in ("zip.safetensors", "legacy.npz"):
        assert_same(torch, load_state_dict(tmp_path / name), state)


def test_dtype_values_become_numpy_dtypes(torch, tmp_path):
    torch.save({"w": torch.ones(1), "dtype": torch.float16}, tmp_path / "d.pth")
    assert load_pth(tmp_path / "d.pth")["dtype"] == np.float16


def test_whole_model_is_refused_with_advice(torch, tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pth")
    with pytest.raises(CheckpointError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict\(\)"):
        load_pth(tmp_path / "whole.pth")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated, still written
def test_torchscript_archive_is_refused(torch, tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "ts.pt")
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_pth(tmp_path / "ts.pt")


# ---------------------------------------------------------------------------------------
# Hand-built files: the reader without torch
# ---------------------------------------------------------------------------------------

DATA = np.arange(12, dtype=np.float32)


def simple_pickle(legacy=False, numel=12, key="0"):
    pid = tf.storage("FloatStorage", key, numel, legacy=legacy)
    return tf.dumps({"w": tf.tensor(pid, 0, (3, 4), (4, 1)),
                     "wt": tf.tensor(pid, 1, (2, 2), (1, 4)),
                     "epoch": 3})


def write_simple(path, fmt):
    if fmt == "zip":
        tf.write_zip(str(path), simple_pickle(), {"0": DATA.tobytes()})
    else:
        tf.write_legacy(str(path), simple_pickle(legacy=True), [("0", 12, DATA.tobytes())])


@pytest.mark.parametrize("fmt", FORMATS)
def test_hand_built_checkpoint(tmp_path, fmt):
    path = tmp_path / "hand.pth"
    write_simple(path, fmt)
    loaded = load_pth(path)
    np.testing.assert_array_equal(loaded["w"], DATA.reshape(3, 4))
    np.testing.assert_array_equal(loaded["wt"], [[1, 5], [2, 6]])
    assert loaded["epoch"] == 3


def test_big_endian_zip_is_byteswapped(tmp_path):
    path = tmp_path / "big.pth"
    tf.write_zip(str(path), simple_pickle(), {"0": DATA.astype(">f4").tobytes()}, byteorder=b"big")
    loaded = load_pth(path)
    assert loaded["w"].dtype == np.float32 and loaded["w"].dtype.isnative
    np.testing.assert_array_equal(loaded["w"], DATA.reshape(3, 4))


def test_zip_without_byteorder_record_is_little_endian(tmp_path):
    path = tmp_path / "old.pth"
    tf.write_zip(str(path), simple_pickle(), {"0": DATA.tobytes()}, byteorder=None, root="any_name")
    np.testing.assert_array_equal(load_pth(path)["w"], DATA.reshape(3, 4))


def test_legacy_storage_view(tmp_path):
    pid = tf.storage("FloatStorage", "0", 12, legacy=True, view=("view0", 4, 6))
    path = tmp_path / "view.pth"
    tf.write_legacy(str(path), tf.dumps({"v": tf.tensor(pid, 1, (2,), (1,))}),
                    [("0", 12, DATA.tobytes())])
    np.testing.assert_array_equal(load_pth(path)["v"], [5, 6])


# ---------------------------------------------------------------------------------------
# Malicious pickles: refused by name, and nothing runs
# ---------------------------------------------------------------------------------------

class Reduce:
    """An object that pickles as ``fn(*args)``, the classic pickle exploit."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads(marker):
    cmd = f"touch {marker}"
    return {
        "os.system": (pickle.dumps(Reduce(os.system, (cmd,)), protocol=2), r"(os|posix)\.system"),
        "eval": (pickle.dumps(Reduce(eval, (f"__import__('os').system({cmd!r})",)), protocol=2),
                 r"builtins\.eval"),
        "Popen": (pickle.dumps(Reduce(subprocess.Popen, (["touch", str(marker)],)), protocol=2),
                  r"subprocess\.Popen"),
        "nested": (pickle.dumps({"w": (1, [Reduce(os.system, (cmd,))])}, protocol=2),
                   r"(os|posix)\.system"),
        "protocol4": (pickle.dumps(Reduce(os.system, (cmd,)), protocol=4), r"(os|posix)\.system"),
        "lookalike": (tf.dumps(tf.Call(tf.Global("torch._utils", "os.system"), (cmd,))),
                      r"torch\._utils\.os\.system"),
    }


def test_payload_is_live_under_plain_pickle(tmp_path):
    # Shows the payloads below really run code when loaded the usual way.
    marker = tmp_path / "MARKER"
    pickle.loads(payloads(marker)["os.system"][0])
    assert marker.exists()


@pytest.mark.parametrize("container", ["zip", "legacy", "bare pickle"])
@pytest.mark.parametrize("name", ["os.system", "eval", "Popen", "nested", "protocol4", "lookalike"])
def test_malicious_pickle_is_refused(tmp_path, container, name):
    marker = tmp_path / "MARKER"
    payload, pattern = payloads(marker)[name]
    path = tmp_path / "evil.pth"
    if container == "zip":
        tf.write_zip(str(path), payload, {})
    elif container == "legacy":
        tf.write_legacy(str(path), payload, [])
    else:
        path.write_bytes(payload)
    for loader in (load_pth, load_state_dict):
        with pytest.raises(CheckpointError, match=rf"refusing to load global {pattern} from .*evil\.pth.*only tensor state dicts"):
            loader(path)
    assert not marker.exists()


@pytest.mark.parametrize("target", [tf.Global("torch", "FloatStorage"),
                                    tf.Global("torch._utils", "_rebuild_tensor_v2")])
def test_pickle_cannot_set_state_on_stand_ins(tmp_path, target):
    path = tmp_path / "build.pth"
    tf.write_zip(str(path), tf.dumps({"x": tf.Build(target, {"dtype": 1})}), {})
    with pytest.raises(CheckpointError, match="cannot be unpickled"):
        load_pth(path)


def test_module_persistent_id_is_refused(tmp_path):
    path = tmp_path / "module.pth"
    tf.write_legacy(str(path), tf.dumps({"m": tf.PersId(("module", "Net", "net.py", "src"))}), [])
    with pytest.raises(CheckpointError, match="nn.Module"):
        load_pth(path)


# ---------------------------------------------------------------------------------------
# Damaged and lying files: clear errors, no huge allocations
# ---------------------------------------------------------------------------------------

def data_offset(path, member):
    """Where a zip member's bytes start in the file (after its local header)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, fmt, keep):
    path = tmp_path / "cut.pth"
    write_simple(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"cut\.pth"):
        load_pth(path)


def test_truncated_torch_file(torch, tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(torch.nn.Linear(20, 10).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=r"cut\.pth"):
        load_state_dict(path)


def test_corrupted_storage_fails_crc(tmp_path):
    path = tmp_path / "crc.pth"
    write_simple(path, "zip")
    start = data_offset(path, "archive/data/0")
    data = bytearray(path.read_bytes())
    data[start + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"crc\.pth.*(CRC|corrupted)"):
        load_pth(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_storage_larger_than_file_allocates_nothing(tmp_path, fmt):
    path = tmp_path / "huge.pth"
    huge = 10**12  # 4 TB of float32
    if fmt == "zip":
        tf.write_zip(str(path), simple_pickle(numel=huge), {"0": DATA.tobytes()})
        pattern = r"declares 1000000000000 float32 elements .* holds 48 bytes"
    else:
        tf.write_legacy(str(path), simple_pickle(legacy=True, numel=huge), [("0", huge, DATA.tobytes())])
        pattern = r"declares 1000000000000 float32 elements .* only 48 bytes remain"
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=pattern):
            load_pth(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_legacy_count_header_must_match(tmp_path):
    path = tmp_path / "count.pth"
    tf.write_legacy(str(path), simple_pickle(legacy=True), [("0", 11, DATA.tobytes())])
    with pytest.raises(CheckpointError, match="data header says 11"):
        load_pth(path)


def test_legacy_key_list_must_match(tmp_path):
    path = tmp_path / "keys.pth"
    tf.write_legacy(str(path), simple_pickle(legacy=True), [("9", 12, DATA.tobytes())])
    with pytest.raises(CheckpointError, match="storage key list does not match"):
        load_pth(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_pickle_length_field_larger_than_file(tmp_path, fmt):
    # BINBYTES8 claiming 2**60 bytes: must not reach the C unpickler's allocation.
    payload = b"\x80\x04\x8e" + struct.pack("<Q", 2**60) + b"abc."
    path = tmp_path / "len.pth"
    if fmt == "zip":
        tf.write_zip(str(path), payload, {})
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"len\.pth' is corrupted or truncated.*bytes8"):
        load_pth(path)


@pytest.mark.parametrize("name", ["../../evil.txt", "/etc/evil", "archive/../../evil", "a\\..\\evil"])
def test_zip_member_escaping_the_archive_is_refused(tmp_path, name):
    path = tmp_path / "traversal.pth"
    tf.write_zip(str(path), simple_pickle(), {"0": DATA.tobytes()}, extra={name: b"x"})
    with pytest.raises(CheckpointError, match=r"traversal\.pth.*path traversal"):
        load_pth(path)


def test_storage_member_missing(tmp_path):
    path = tmp_path / "missing.pth"
    tf.write_zip(str(path), simple_pickle(key="7"), {"0": DATA.tobytes()})
    with pytest.raises(CheckpointError, match=r"storage '7' has no member 'archive/data/7'"):
        load_pth(path)


@pytest.mark.parametrize("key", ["../0", "a/b", "", ".."])
def test_bad_storage_key(tmp_path, key):
    path = tmp_path / "key.pth"
    tf.write_zip(str(path), simple_pickle(key=key), {"0": DATA.tobytes()})
    with pytest.raises(CheckpointError, match="invalid storage key"):
        load_pth(path)


@pytest.mark.parametrize("offset, size, stride", [(10, (3,), (1,)), (0, (4, 4), (4, 1)), (0, (2, 7), (1, 2))])
def test_tensor_reaching_past_its_storage(tmp_path, offset, size, stride):
    pid = tf.storage("FloatStorage", "0", 12)
    path = tmp_path / "oob.pth"
    tf.write_zip(str(path), tf.dumps({"w": tf.tensor(pid, offset, size, stride)}), {"0": DATA.tobytes()})
    with pytest.raises(CheckpointError, match="reaches past the end of its storage"):
        load_pth(path)


@pytest.mark.parametrize("offset, size, stride", [(-1, (2,), (1,)), (0, (2, -1), (1, 1)),
                                                  (0, (2,), (1, 1)), (0, "ab", (1,)), (0.5, (2,), (1,))])
def test_invalid_tensor_geometry(tmp_path, offset, size, stride):
    pid = tf.storage("FloatStorage", "0", 12)
    path = tmp_path / "geom.pth"
    tf.write_zip(str(path), tf.dumps({"w": tf.tensor(pid, offset, size, stride)}), {"0": DATA.tobytes()})
    with pytest.raises(CheckpointError, match="invalid tensor|differ in length"):
        load_pth(path)


def test_expanded_view_is_capped(tmp_path):
    pid = tf.storage("FloatStorage", "0", 12)
    path = tmp_path / "expand.pth"
    tf.write_zip(str(path), tf.dumps({"w": tf.tensor(pid, 0, (10**6, 10**6), (0, 0))}), {"0": DATA.tobytes()})
    with pytest.raises(CheckpointError, match="repeats its storage's elements"):
        load_pth(path)


def test_deep_nesting(tmp_path):
    depth = 100_000
    nested = b"](" * depth + b"]" + b"e" * depth
    path = tmp_path / "deep.pth"
    tf.write_zip(str(path), b"\x80\x02}(X\x01\x00\x00\x00a" + nested + b"u.", {})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_pth(path)


@pytest.mark.parametrize("content, pattern", [
    (b"hello world, not a checkpoint", "not a PyTorch checkpoint"),
    (b"\x80\x02K\x07.", "without torch's magic number"),
    (b"\x80\x02}q\x00.", "without torch's magic number"),
    (b"", "not a PyTorch checkpoint"),
])
def test_not_a_checkpoint(tmp_path, content, pattern):
    path = tmp_path / "other.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=pattern):
        load_pth(path)


def test_old_tar_format_is_explained(tmp_path):
    path = tmp_path / "tar.pth"
    path.write_bytes(b"\0" * 257 + b"ustar" + b"\0" * 250)
    with pytest.raises(CheckpointError, match="tar checkpoint format"):
        load_pth(path)


def test_zip_that_is_no_checkpoint(tmp_path):
    path = tmp_path / "docs.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="no <archive>/data.pkl"):
        load_pth(path)


def test_top_level_must_be_a_dict(tmp_path):
    path = tmp_path / "list.pth"
    tf.write_zip(str(path), tf.dumps([1, 2]), {})
    with pytest.raises(CheckpointError, match="holds a list, not a dict of tensors"):
        load_pth(path)


def test_state_dict_with_non_tensors_and_no_wrapper(tmp_path):
    path = tmp_path / "mixed.pth"
    write_simple(path, "zip")  # {"w": tensor, "wt": tensor, "epoch": 3}
    with pytest.raises(CheckpointError, match=r"holds no state dict: non-tensor values under 'epoch' \(int\)"):
        load_state_dict(path)


def test_missing_file_is_a_plain_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pth(tmp_path / "nope.pth")
