"""A corpus of hostile and broken checkpoint files for ``weitiao.io.load_state_dict``.

``build(directory)`` writes every file and returns the cases. Each pickle payload, if it ran,
would create ``directory/EXECUTED-<case>`` (the marker the tests look for) or start a
process. Together with tests/test_io_pth.py and tests/test_io_formats.py, which already
cover os.system/eval/Popen reduces, protocol 4, truncation, storage CRCs, simple path
traversal and npz object arrays, the corpus adds: other code-running opcodes (INST, OBJ,
NEWOBJ, NEWOBJ_EX, STACK_GLOBAL, EXT codes), nested and chained globals, numpy's pickles,
misuse of the admitted torch globals, zip structure attacks (encryption, unknown
compression, local/central mismatch, overlapping members, directory offsets, zip bombs),
storages larger than memory, integers too large to print, expanded views, safetensors
header attacks and npz header injection.

Run as a script to write the files to a folder: ``python tests/hostile/corpus.py OUTDIR``.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field

import numpy as np

try:
    from io_fixtures import torchfiles as tf
except ImportError:  # run as a script from tests/hostile
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from io_fixtures import torchfiles as tf

# Allocation allowed while loading a file: a few times its size plus a fixed amount for the
# reader itself (zipfile, the pickle machinery, NumPy); claims beyond that must be refused
# before anything is allocated for them.
FIXED_ALLOWANCE = 4 << 20
SIZE_FACTOR = 4


@dataclass
class Case:
    """One hostile file and what loading it must produce."""

    name: str
    path: str
    what: str                 # what the file tries
    match: str                # regex the error message must match (besides the file name)
    xfail: str | None = None  # a known bug: why it fails today
    # the reader's limit on repeated (expanded) tensor elements, lowered for this case so
    # the test is cheap; the bug it shows does not depend on the value
    max_expanded_bytes: int | None = None
    extension: tuple | None = None  # (module, name, code) registered in copyreg while loading
    allowance: int = field(default=0)

    def budget(self) -> int:
        """Bytes the loader may allocate for this file."""
        return SIZE_FACTOR * os.path.getsize(self.path) + FIXED_ALLOWANCE + self.allowance


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _good_pickle() -> bytes:
    return tf.dumps({"w": tf.tensor(tf.storage("FloatStorage", "0", 2), 0, (2,), (1,))})


def _zip_bytes(pickled: bytes, storages: dict[str, bytes], **kwargs) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", b"little")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", b"3\n")
        for name, data in kwargs.get("extra", {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def _central_entries(data: bytes):
    """(offset of each central directory record, its member name)."""
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        nlen = struct.unpack("<H", data[pos + 28:pos + 30])[0]
        yield pos, data[pos + 46:pos + 46 + nlen].decode()
        pos = data.find(b"PK\x01\x02", pos + 4)


def _local_offset(data: bytes, member: str) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.getinfo(member).header_offset


def _patch_member(data: bytes, member: str, local=None, central=None) -> bytes:
    """Apply local(bytearray, offset) / central(bytearray, offset) to one member's headers."""
    b = bytearray(data)
    if local:
        local(b, _local_offset(data, member))
    if central:
        for pos, name in _central_entries(data):
            if name == member:
                central(b, pos)
    return bytes(b)


def _npy(header: str, data: bytes = b"", version=(1, 0)) -> bytes:
    h = header.encode("latin1")
    h += b" " * (64 - (10 + len(h) + 1) % 64) + b"\n"
    if version == (1, 0):
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data
    return b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(h)) + h + data


def _npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _safetensors(header, data: bytes = b"", length: int | None = None) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def build(directory: str) -> list[Case]:
    """Write the corpus into ``directory`` and return its cases."""
    os.makedirs(directory, exist_ok=True)
    cases: list[Case] = []

    def marker(name: str) -> str:
        return os.path.join(directory, f"EXECUTED-{name}")

    def add(name, ext, content, what, match, **kwargs):
        path = os.path.join(directory, name + ext)
        with open(path, "wb") as f:
            f.write(content)
        cases.append(Case(name, path, what, match, **kwargs))

    def touch(name):
        return f"touch {marker(name)}"

    refused = r"refusing to load global {}"
    G, C, B, P = tf.Global, tf.Call, tf.Build, tf.PersId
    good = _good_pickle()
    good_zip = _zip_bytes(good, {"0": b"\0" * 8})
    OD = C(G("collections", "OrderedDict"), ())

    # ---------------------------------------------------------------- code in pickles
    n = "exec"
    add(n, ".pth", _zip_bytes(tf.dumps(C(G("builtins", "exec"),
                                         (f"open({marker(n)!r}, 'w').close()",))), {}),
        "builtins.exec of Python source", refused.format(r"builtins\.exec"))
    n = "getattr_import_chain"
    add(n, ".pth", tf.legacy_bytes(tf.dumps(
        C(C(G("builtins", "getattr"), (C(G("builtins", "__import__"), ("os",)), "system")),
          (touch(n),))), []),
        "getattr(__import__('os'), 'system')(...) in a legacy file",
        refused.format(r"builtins\.getattr"))
    n = "posix_system_protocol0"
    add(n, ".pth", _zip_bytes(f"cposix\nsystem\n(S'{touch(n)}'\ntR.".encode(), {}),
        "posix.system through a protocol-0 GLOBAL", refused.format(r"posix\.system"))
    n = "stack_global_subprocess_run"
    add(n, ".pth", _zip_bytes(pickle.dumps(_Reduce(subprocess.run, (["touch", marker(n)],)),
                                           protocol=4), {}),
        "subprocess.run through STACK_GLOBAL (protocol 4)", refused.format(r"subprocess\.run"))
    n = "inst_opcode"
    add(n, ".pth", tf.legacy_bytes(f"(S'{touch(n)}'\nios\nsystem\n.".encode(), []),
        "os.system through the INST opcode, in a legacy file",
        refused.format(r"(os|posix)\.system"))
    n = "obj_opcode"
    add(n, ".pth", _zip_bytes(f"(cos\nsystem\nS'{touch(n)}'\no.".encode(), {}),
        "os.system through the OBJ opcode", refused.format(r"(os|posix)\.system"))
    n = "newobj_popen"
    add(n, ".pth", _zip_bytes(b"\x80\x02csubprocess\nPopen\n]q\x00(X\x05\x00\x00\x00touch"
                              + b"X" + struct.pack("<I", len(marker(n))) + marker(n).encode()
                              + b"e\x85\x81.", {}),
        "subprocess.Popen through NEWOBJ", refused.format(r"subprocess\.Popen"))
    n = "newobj_ex"
    add(n, ".pth", _zip_bytes(b"\x80\x04\x8c\x02os\x8c\x06system\x93)}\x92.", {}),
        "os.system through NEWOBJ_EX", refused.format(r"(os|posix)\.system"))
    n = "ext_code_unregistered"
    add(n, ".pth", _zip_bytes(b"\x80\x02\x82\x01.", {}),
        "an EXT1 extension code nobody registered", r"cannot be unpickled")
    n = "ext_code_registered"
    add(n, ".pth", _zip_bytes(b"\x80\x02\x82\xf0(X" + struct.pack("<I", len(touch(n)))
                              + touch(n).encode() + b"tR.", {}),
        "an EXT1 code registered (copyreg) for os.system", refused.format(r"(os|posix)\.system"),
        extension=("os", "system", 0xF0))
    n = "functools_partial"
    add(n, ".pth", _zip_bytes(tf.dumps(C(C(G("functools", "partial"), (G("os", "system"), touch(n))),
                                         ())), {}),
        "functools.partial(os.system, ...)() - nested globals",
        refused.format(r"functools\.partial"))
    n = "copyreg_reconstructor"
    add(n, ".pth", _zip_bytes(tf.dumps(C(G("copyreg", "_reconstructor"),
                                         (G("subprocess", "Popen"), G("builtins", "object"),
                                          None))), {}),
        "copyreg._reconstructor building a Popen", refused.format(r"copyreg\._reconstructor"))
    n = "numpy_array_pickle"
    add(n, ".pth", _zip_bytes(pickle.dumps({"w": np.arange(3, dtype=np.float32)}, protocol=2),
                              {}),
        "a NumPy array pickled into a torch file (torch.save of numpy data)",
        refused.format(r"numpy\."))
    n = "rebuild_tensor_with_a_string"
    add(n, ".pth", _zip_bytes(tf.dumps({"w": C(G("torch._utils", "_rebuild_tensor_v2"),
                                               (touch(n), 0, (1,), (1,), False, OD))}), {}),
        "an admitted torch global called with a command string for a storage",
        r"not a storage reference")
    n = "build_sets_class"
    add(n, ".pth", _zip_bytes(tf.dumps({"w": B(OD, (None, {"__class__": G("torch", "FloatStorage")}))}),
                              {}),
        "BUILD setting __class__ on an OrderedDict", r"cannot be unpickled")
    n = "rebuild_from_type_with_ordereddict"
    add(n, ".pth", _zip_bytes(tf.dumps({"w": C(G("torch._tensor", "_rebuild_from_type_v2"),
                                               (G("collections", "OrderedDict"),
                                                G("torch", "Tensor"), (), {}))}), {}),
        "_rebuild_from_type_v2 asked to call OrderedDict", r"unsupported tensor rebuild")
    n = "persistent_id_string"
    add(n, ".pth", _zip_bytes(tf.dumps({"w": P(touch(n))}), {}),
        "a persistent id that is a shell command", r"unexpected persistent id")
    n = "persistent_id_with_os_system"
    add(n, ".pth", tf.legacy_bytes(tf.dumps({"w": P(("storage", G("os", "system"), "0", "cpu", 1,
                                                     None))}), [("0", 1, b"\0" * 4)]),
        "os.system as a storage type, in a legacy file", refused.format(r"(os|posix)\.system"))
    n = "memo_get_unset"
    add(n, ".pth", _zip_bytes(b"\x80\x02h\x05.", {}), "a memo read of an unset slot",
        r"cannot be unpickled")

    # ---------------------------------------------------------------- sizes in pickles
    n = "storage_larger_than_memory"
    add(n, ".pth", _zip_bytes(tf.dumps({"w": tf.tensor(tf.storage("FloatStorage", "0", 2**62),
                                                       0, (2,), (1,))}), {"0": b"\0" * 8}),
        "a storage declaring 2^62 floats (16 EiB) over 8 bytes", r"declares")
    n = "legacy_count_larger_than_memory"
    add(n, ".pth", tf.legacy_bytes(tf.dumps({"w": tf.tensor(
        tf.storage("FloatStorage", "0", 2**62, legacy=True), 0, (2,), (1,))}),
        [("0", 2**62, b"\0" * 8)]),
        "a legacy storage of 2^62 floats over 8 bytes", r"declares|remain")
    n = "legacy_storage_view_past_end"
    add(n, ".pth", tf.legacy_bytes(tf.dumps({"w": tf.tensor(
        tf.storage("FloatStorage", "0", 2, legacy=True, view=("v", 1, 5)), 0, (1,), (1,))}),
        [("0", 2, b"\0" * 8)]),
        "a legacy storage view reaching past its storage", r"exceeds storage")
    n = "storage_count_too_long_to_print"
    add(n, ".pth", _zip_bytes(tf.dumps({"w": tf.tensor(tf.storage("FloatStorage", "0", 2**20000),
                                                       0, (2,), (1,))}), {"0": b"\0" * 8}),
        "a storage element count with 6,000 digits", r"element count|declares")
    n = "tensor_size_too_long_to_print"
    add(n, ".pth", _zip_bytes(tf.dumps({"w": tf.tensor(tf.storage("FloatStorage", "0", 2), 0,
                                                       (2**20000,), (1,))}), {"0": b"\0" * 8}),
        "a tensor size with 6,000 digits", r"tensor size|reaches past")
    n = "expanded_views_add_up"
    add(n, ".pth", _zip_bytes(tf.dumps({f"w{i}": tf.tensor(tf.storage("FloatStorage", "0", 1), 0,
                                                           (2**18,), (0,)) for i in range(16)}),
                              {"0": b"\0" * 4}),
        "16 zero-stride views of one float, each just under the expansion limit (here "
        "1 MiB; 256 MiB by default, so 16 GiB from a 2 KB file)", r"repeats|expand",
        max_expanded_bytes=1 << 20)
    n = "deflated_pickle_bomb"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (20 << 20))
        z.writestr("archive/version", b"3\n")
    add(n, ".pth", buf.getvalue(),
        "a deflated data.pkl of 20 MB in a 20 KB file (torch never compresses it)",
        r"cannot be read|compress|large")

    # ---------------------------------------------------------------- zip structure
    def flag_encrypted(b, pos, offset):
        b[pos + offset] |= 1

    add("zip_encrypted_member", ".pth", _patch_member(
        good_zip, "archive/data.pkl", lambda b, p: flag_encrypted(b, p, 6),
        lambda b, p: flag_encrypted(b, p, 8)),
        "data.pkl flagged as encrypted", r"encrypted")

    def method(value, offset):
        return lambda b, p: b.__setitem__(slice(p + offset, p + offset + 2),
                                          struct.pack("<H", value))

    add("zip_bzip2_member", ".pth", _patch_member(good_zip, "archive/data.pkl", method(12, 8),
                                                  method(12, 10)),
        "data.pkl compressed with bzip2 (method 12)", r"compression method 12")
    i = good_zip.find(b"archive/data.pkl")
    add("zip_local_name_differs", ".pth",
        good_zip[:i] + b"archivX" + good_zip[i + 7:],
        "a local header whose name differs from the central directory's", r"differ")
    b = bytearray(good_zip)
    for pos, name in _central_entries(good_zip):
        if name == "archive/data/0":
            b[pos + 42:pos + 46] = struct.pack("<I", _local_offset(good_zip, "archive/data.pkl"))
    add("zip_overlapping_members", ".pth", bytes(b),
        "two central entries pointing at the same local data (overlapping members)",
        r"differ|corrupted")
    e = good_zip.rfind(b"PK\x05\x06")
    add("zip_directory_size_past_end", ".pth",
        good_zip[:e + 12] + struct.pack("<I", 0xFFFFFF00) + good_zip[e + 16:],
        "an end record claiming a 4 GB central directory", r"corrupted|truncated")
    add("zip_directory_offset_past_end", ".pth",
        good_zip[:e + 16] + struct.pack("<I", 0x7FFFFFFF) + good_zip[e + 20:],
        "an end record pointing the central directory 2 GB past the end",
        r"corrupted|truncated")
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, 2**62, 1)
    add("zip64_locator_to_nowhere", ".pth", good_zip[:e] + locator + good_zip[e:],
        "a zip64 end-of-directory locator pointing 2^62 bytes away", r"corrupted|truncated")
    add("zip_truncated_in_directory", ".pth", good_zip[:good_zip.find(b"PK\x01\x02") + 20],
        "an archive cut inside its central directory", r"corrupted|truncated")
    add("zip_drive_letter_name", ".pth", _zip_bytes(good, {"0": b"\0" * 8},
                                                    extra={"C:evil.bat": b"echo"}),
        "a member named C:evil.bat", r"path traversal")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", good)
        z.writestr("archive/data/0", b"\0" * 8)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr("archive/data/0", b"\1" * 8)
    add("zip_duplicate_member", ".pth", buf.getvalue(), "the same member twice",
        r"appears twice")
    crc = _patch_member(good_zip, "archive/data.pkl", central=lambda b, p: b.__setitem__(
        slice(p + 16, p + 20), struct.pack("<I", 0xDEADBEEF)))
    add("zip_pickle_bad_crc", ".pth", crc, "a wrong CRC-32 for data.pkl", r"CRC|corrupted")

    def sizes(size, offset):
        return lambda b, p: b.__setitem__(slice(p + offset, p + offset + 4),
                                          struct.pack("<I", size))

    add("zip_stored_size_mismatch", ".pth", _patch_member(
        good_zip, "archive/data/0", sizes(1 << 30, 22), sizes(1 << 30, 24)),
        "a stored member declaring 1 GB uncompressed over 8 bytes", r"declares|corrupted")
    deflated = io.BytesIO()
    with zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", good)
        z.writestr("archive/data/0", b"\0" * 8)
    d = deflated.getvalue()
    add("zip_deflate_ratio_impossible", ".pth", _patch_member(
        d, "archive/data/0", sizes(1 << 31, 22), sizes(1 << 31, 24)),
        "a deflated member claiming 2 GB from a few bytes", r"claims|declares")

    # ---------------------------------------------------------------- safetensors
    f32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    for name, header, data, length, match, what in [
        ("st_header_length_2^64", {"w": f32_2}, b"\0" * 8, 2**64 - 1,
         r"not a weights file", "a header length of 2^64-1"),
        ("st_header_length_past_end", {"w": f32_2}, b"\0" * 8, 10**8,
         r"not a weights file", "a 100 MB header length in a 70-byte file"),
        ("st_offsets_reversed", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
         b"\0" * 8, None, r"invalid offset", "data_offsets end before they begin"),
        ("st_offsets_past_end", {"w": {"dtype": "F32", "shape": [2000],
                                       "data_offsets": [0, 8000]}}, b"\0" * 8, None,
         r"invalid|not fully covered", "a tensor reaching 8 KB past the end"),
        ("st_overlapping_tensors", {"a": f32_2, "b": f32_2}, b"\0" * 8, None,
         r"invalid offset", "two tensors sharing their bytes"),
        ("st_unknown_dtype", {"w": {"dtype": "X42", "shape": [2], "data_offsets": [0, 8]}},
         b"\0" * 8, None, r"X42", "an unknown dtype"),
        ("st_dtype_numpy_lacks", {"w": {"dtype": "F8_E4M3", "shape": [8],
                                        "data_offsets": [0, 8]}}, b"\0" * 8, None,
         r"float8|F8", "a float8 tensor, which NumPy cannot hold"),
        ("st_shape_overflows_u64", {"w": {"dtype": "F32", "shape": [2**32, 2**32, 2**32],
                                          "data_offsets": [0, 8]}}, b"\0" * 8, None,
         r"overflow", "a shape whose element count overflows 64 bits"),
        ("st_negative_dimension", {"w": {"dtype": "F32", "shape": [-1, 2],
                                         "data_offsets": [0, 8]}}, b"\0" * 8, None,
         r"invalid", "a negative dimension"),
        ("st_metadata_not_strings", {"__metadata__": {"a": {"b": 1}}, "w": f32_2}, b"\0" * 8,
         None, r"invalid", "metadata holding an object instead of a string"),
        ("st_header_not_utf8", b'{"\xff\xfe": {"dtype": "F32", "shape": [2], '
                               b'"data_offsets": [0, 8]}}', b"\0" * 8, None,
         r"UTF-8|utf-8", "a header that is not UTF-8"),
        ("st_duplicate_names", b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
                               b' "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
         b"\0" * 8, None, r"invalid|incomplete|duplicate", "the same tensor name twice"),
    ]:
        add(name, ".safetensors", _safetensors(header, data, length), what, match)

    # ---------------------------------------------------------------- npz
    n = "npz_header_code_injection"
    add(n, ".npz", _npz({"w.npy": _npy("{'descr': __import__('os').system('%s'), "
                                       "'fortran_order': False, 'shape': (1,), }" % touch(n),
                                       b"\0" * 4)}),
        "a .npy header whose descr is a call to os.system", r"malformed|corrupted")
    n = "npz_object_array_reduce"
    buf = io.BytesIO()
    np.save(buf, np.array([_Reduce(os.system, (touch(n),))], dtype=object), allow_pickle=True)
    add(n, ".npz", _npz({"w.npy": buf.getvalue()}),
        "an object array whose element pickles as os.system(...)", r"object")
    add("npz_structured_object_field", ".npz",
        _npz({"w.npy": _npy("{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (1,), }",
                            b"\0" * 8)}),
        "a structured dtype with an object field", r"object|structured")
    add("npz_format_version_3", ".npz",
        _npz({"w.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                            b"\0" * 4, (3, 0))}),
        ".npy format version 3", r"version")
    add("npz_header_length_4GB", ".npz",
        _npz({"w.npy": b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{"}),
        "a .npy header claiming 4 GB", r"header|corrupted")
    add("npz_shape_larger_than_memory", ".npz",
        _npz({"w.npy": _npy("{'descr': '<f4', 'fortran_order': False, "
                            f"'shape': ({2**40}, {2**40}), }}", b"\0" * 16)}),
        "a (2^40, 2^40) array over 16 bytes", r"declares")
    add("npz_negative_shape", ".npz",
        _npz({"w.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }",
                            b"\0" * 16)}),
        "a negative dimension", r"declares|shape")
    add("npz_void_dtype", ".npz",
        _npz({"w.npy": _npy("{'descr': '|V4', 'fortran_order': False, 'shape': (1,), }",
                            b"\0" * 4)}),
        "a raw void dtype", r"refused")
    add("npz_fortran_order_not_bool", ".npz",
        _npz({"w.npy": _npy("{'descr': '<f4', 'fortran_order': 'yes', 'shape': (1,), }",
                            b"\0" * 4)}),
        "fortran_order given as a string", r"fortran_order")
    add("npz_deeply_nested_shape", ".npz",
        _npz({"w.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                            + "(" * 200 + ")" * 200 + ", }", b"\0" * 4)}),
        "a shape nested 200 tuples deep", r"header|shape|corrupted")
    return cases


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "hostile-files"
    for case in build(out):
        print(f"{os.path.basename(case.path):45s} {os.path.getsize(case.path):>8} B  {case.what}")
