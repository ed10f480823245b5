"""weitiao.io's safetensors and npz formats, format dispatch, atomic writes, and a fuzz
of every reader: damaged files give CheckpointError and nothing else."""
from __future__ import annotations

import json
import os
import stat
import struct
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from io_fixtures import torchfiles as tf
from weitiao.io import (
    CheckpointError,
    atomic_write,
    detect_format,
    load_npz,
    load_safetensors,
    load_state_dict,
    save_npz,
    save_safetensors,
    save_state_dict,
)


def sample_state():
    rng = np.random.default_rng(0)
    return {
        "conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn1.running_mean": rng.standard_normal(4).astype(np.float32),
        "bn1.num_batches_tracked": np.array(12, dtype=np.int64),
        "half": rng.standard_normal(5).astype(np.float16),
        "double": rng.standard_normal(2),
        "mask": np.array([True, False]),
        "bytes": np.arange(4, dtype=np.uint8),
        "empty": np.zeros((0, 3), np.float32),
    }


def assert_same(loaded, expected, ordered=True):
    # safetensors keeps no key order (its header is sorted); torch and npz files do.
    assert (list(loaded) if ordered else sorted(loaded)) == (list(expected) if ordered else sorted(expected))
    for key, ref in expected.items():
        got = loaded[key]
        assert got.dtype == ref.dtype and got.shape == ref.shape, key
        np.testing.assert_array_equal(got, ref, err_msg=key)
        assert got.flags.c_contiguous and got.flags.writeable, key


# ---------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------

def test_safetensors_round_trip_with_metadata(tmp_path):
    state = sample_state()
    meta = {"source": "resnet18", "classes": json.dumps(["hotdog", "not hotdog"])}
    save_safetensors(state, tmp_path / "w.safetensors", metadata=meta)
    tensors, loaded_meta = load_safetensors(tmp_path / "w.safetensors")
    assert_same(tensors, state, ordered=False)
    assert loaded_meta == meta


def test_safetensors_without_metadata(tmp_path):
    save_safetensors({"a": np.ones(2, np.float32)}, tmp_path / "w.safetensors")
    assert load_safetensors(tmp_path / "w.safetensors")[1] == {}


def test_safetensors_stores_views_and_big_endian_as_plain_arrays(tmp_path):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    state = {"t": base.T, "slice": base[:, 1:3], "big": base.astype(">f4")}
    save_safetensors(state, tmp_path / "v.safetensors")
    tensors, _ = load_safetensors(tmp_path / "v.safetensors")
    for key, ref in state.items():
        np.testing.assert_array_equal(tensors[key], ref)
    assert tensors["big"].dtype == np.float32


def test_safetensors_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError, match="json.dumps"):
        save_safetensors({"a": np.ones(1)}, tmp_path / "w.safetensors", metadata={"epoch": 3})


def test_weitiao_safetensors_load_in_torch(tmp_path):
    torch = pytest.importorskip("torch")
    storch = pytest.importorskip("safetensors.torch")
    state = sample_state()
    save_state_dict(state, tmp_path / "w.safetensors", metadata={"format": "pt"})
    loaded = storch.load_file(str(tmp_path / "w.safetensors"))
    assert sorted(loaded) == sorted(state)
    for key, ref in state.items():
        assert loaded[key].dtype == torch.from_numpy(ref).dtype, key
        np.testing.assert_array_equal(loaded[key].numpy(), ref, err_msg=key)
    model = torch.nn.Linear(3, 2)
    save_state_dict({k: v.detach().numpy() for k, v in model.state_dict().items()},
                    tmp_path / "linear.safetensors")
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(storch.load_file(str(tmp_path / "linear.safetensors")))
    torch.testing.assert_close(fresh.weight, model.weight, rtol=0, atol=0)


def test_torch_written_bfloat16_safetensors_widen_to_float32(tmp_path):
    torch = pytest.importorskip("torch")
    storch = pytest.importorskip("safetensors.torch")
    values = torch.tensor([[1.5, -2.25], [3e38, 2.0**-130]]).bfloat16()
    storch.save_file({"b": values, "f": torch.ones(2)}, str(tmp_path / "bf.safetensors"))
    tensors, _ = load_safetensors(tmp_path / "bf.safetensors")
    assert tensors["b"].dtype == np.float32
    np.testing.assert_array_equal(tensors["b"], values.float().numpy())


def test_missing_safetensors_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        save_safetensors({"a": np.ones(1)}, tmp_path / "w.safetensors")
    with pytest.raises(ImportError, match="pip install safetensors"):
        load_safetensors(tmp_path / "w.safetensors")


@pytest.mark.parametrize("mutate", ["truncate", "header"])
def test_damaged_safetensors(tmp_path, mutate):
    path = tmp_path / "bad.safetensors"
    save_safetensors(sample_state(), path)
    data = path.read_bytes()
    if mutate == "truncate":
        data = data[:-10]
    else:  # header length claims more than the file holds
        data = struct.pack("<Q", len(data)) + data[8:]
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        load_safetensors(path)


# ---------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------

def test_npz_round_trip_and_numpy_compatibility(tmp_path):
    state = sample_state()
    state["file"] = np.ones(1, np.float32)  # would clash with np.savez(file, **kwds)
    state["allow_pickle"] = np.zeros(1, np.float32)
    save_npz(state, tmp_path / "w.npz")
    assert_same(load_npz(tmp_path / "w.npz"), state)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        for key, ref in state.items():
            np.testing.assert_array_equal(z[key], ref)


def test_npz_written_by_numpy(tmp_path):
    rng = np.random.default_rng(1)
    plain = rng.standard_normal((3, 4)).astype(np.float32)
    fortran = np.asfortranarray(rng.standard_normal((3, 5)))
    big = rng.standard_normal(4).astype(">f4")
    np.savez_compressed(tmp_path / "np.npz", plain=plain, fortran=fortran, big=big)
    loaded = load_npz(tmp_path / "np.npz")
    np.testing.assert_array_equal(loaded["plain"], plain)
    np.testing.assert_array_equal(loaded["fortran"], fortran)
    assert loaded["fortran"].flags.c_contiguous
    np.testing.assert_array_equal(loaded["big"], big)
    assert loaded["big"].dtype.isnative


def test_npz_object_arrays_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", ok=np.ones(2), evil=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(CheckpointError, match=r"obj\.npz.*'evil'.*object"):
        load_npz(tmp_path / "obj.npz")
    with pytest.raises(CheckpointError, match=r"cannot save 'evil'.*object"):
        save_npz({"evil": np.array([None])}, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def npz_member_data_offset(path, name):
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    n, e = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + n + e


def test_npz_header_claiming_more_data_than_member(tmp_path):
    path = tmp_path / "lie.npz"
    save_npz({"w": np.zeros(4, np.float32)}, path)
    data = path.read_bytes()
    start = npz_member_data_offset(path, "w.npy")
    header_end = data.index(b"}", start)
    header = data[start:header_end].replace(b"(4,)", b"(9,)")
    path.write_bytes(data[:start] + header + data[header_end:])
    with pytest.raises(CheckpointError, match=r"lie\.npz is corrupted|lie\.npz' is corrupted"):
        load_npz(path)


def test_npz_crc_and_truncation(tmp_path):
    path = tmp_path / "crc.npz"
    save_npz({"w": np.arange(64, dtype=np.float32)}, path)
    data = bytearray(path.read_bytes())
    data[npz_member_data_offset(path, "w.npy") + 200] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"crc\.npz.*(CRC|corrupted)"):
        load_npz(path)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match=r"crc\.npz"):
        load_npz(path)


def test_npz_with_path_traversal_member(tmp_path):
    path = tmp_path / "trav.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("../w.npy", b"")
    with pytest.raises(CheckpointError, match="path traversal"):
        load_npz(path)


# ---------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("extension", [".safetensors", ".npz"])
def test_save_state_dict_by_extension_and_load_by_content(tmp_path, extension):
    state = {"module." + k: v for k, v in sample_state().items()}
    path = tmp_path / f"w{extension}"
    save_state_dict(state, path)
    assert detect_format(path) == extension[1:]
    renamed = tmp_path / "weights.bin"  # the name says nothing; the content decides
    os.replace(path, renamed)
    assert_same(load_state_dict(renamed), sample_state(), ordered=extension == ".npz")  # "module." stripped


def test_save_state_dict_refuses_unknown_extension_and_npz_metadata(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors or \.npz"):
        save_state_dict({"a": np.ones(1)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="no place for it"):
        save_state_dict({"a": np.ones(1)}, tmp_path / "w.npz", metadata={"k": "v"})


@pytest.mark.parametrize("content, pattern", [
    (b"\x93NUMPY\x01\x00", "single .npy array"),
    (b"garbage bytes here", "not a weights file"),
])
def test_unknown_content(tmp_path, content, pattern):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=pattern):
        load_state_dict(path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# ---------------------------------------------------------------------------------------
# atomic_write
# ---------------------------------------------------------------------------------------

def leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_replaces(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with atomic_write(path) as f:
        f.write(b"new")
        assert path.read_bytes() == b"old"  # nothing visible until the block ends
    assert path.read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert path.read_bytes() == b"old contents"
    assert leftovers(tmp_path) == []


def test_atomic_write_failure_creates_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.bin") as f:
            f.write(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    save_npz({"w": np.ones(3, np.float32)}, path)
    calls = []

    def write_then_fail(fp, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("No space left on device")
        return real_write(fp, array, **kwargs)

    real_write = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        save_npz({"a": np.zeros(5), "b": np.zeros(5)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_npz(path)["w"], np.ones(3, np.float32))
    assert leftovers(tmp_path) == []


def test_atomic_write_keeps_permissions_and_text_mode(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    with atomic_write(path, "w") as f:
        f.write("微调")
    assert path.read_text(encoding="utf-8") == "微调"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(path, "a"):
            pass


# ---------------------------------------------------------------------------------------
# Properties: round trips, and damaged files fail only with CheckpointError
# ---------------------------------------------------------------------------------------

DTYPES = ["float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=st.lists(st.lists(st.integers(0, 4), max_size=4), min_size=1, max_size=4),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_round_trip_property(tmp_path, shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    state = {f"layer{i}.weight": (rng.standard_normal(shape) * 10).astype(dtype)
             for i, shape in enumerate(shapes)}
    for name in ("p.safetensors", "p.npz"):
        save_state_dict(state, tmp_path / name)
        assert_same(load_state_dict(tmp_path / name), state, ordered=name.endswith(".npz"))


def test_safetensors_whose_header_length_starts_with_pickles_proto_byte(tmp_path):
    """Two int8 scalars give a 128-byte header: the file's first byte is 0x80, which a
    legacy PyTorch pickle also starts with (found by the property test above)."""
    state = {"layer0.weight": np.array(3, np.int8), "layer1.weight": np.array(-7, np.int8)}
    save_state_dict(state, tmp_path / "p.safetensors")
    raw = (tmp_path / "p.safetensors").read_bytes()
    assert raw[:1] == b"\x80" and detect_format(tmp_path / "p.safetensors") == "safetensors"
    assert_same(load_state_dict(tmp_path / "p.safetensors"), state)


@pytest.fixture(scope="module")
def fuzz_sources(tmp_path_factory):
    """One small valid file per format, as bytes, for the fuzz below to damage."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    data = np.arange(12, dtype=np.float32)
    pid = tf.storage("FloatStorage", "0", 12)
    tf.write_zip(str(tmp_path / "z.pth"), tf.dumps({"w": tf.tensor(pid, 0, (3, 4), (4, 1))}),
                 {"0": data.tobytes()})
    legacy_pid = tf.storage("FloatStorage", "0", 12, legacy=True)
    tf.write_legacy(str(tmp_path / "l.pth"), tf.dumps({"w": tf.tensor(legacy_pid, 0, (3, 4), (4, 1))}),
                    [("0", 12, data.tobytes())])
    save_npz({"w": data}, tmp_path / "n.npz")
    save_safetensors({"w": data}, tmp_path / "s.safetensors")
    return tmp_path, {name: (tmp_path / name).read_bytes()
                      for name in ("z.pth", "l.pth", "n.npz", "s.safetensors")}


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(["z.pth", "l.pth", "n.npz", "s.safetensors"]),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_damaged_files_raise_only_checkpoint_error(fuzz_sources, source, flips, cut):
    directory, originals = fuzz_sources
    data = bytearray(originals[source])
    for position, xor in flips:
        data[position % len(data)] ^= xor
    if cut is not None:
        data = data[: cut % len(data)]
    path = directory / "fuzzed.bin"
    path.write_bytes(bytes(data))
    try:
        state = load_state_dict(path)
    except CheckpointError:
        return
    # Some flips land in bytes nobody checks (a zip comment, a timestamp) and the
    # file still loads; it must then still be a dict of arrays.
    assert all(isinstance(v, np.ndarray) for v in state.values())
