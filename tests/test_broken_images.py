"""Broken images in an ImageFolder (tests/hostile/images.py): truncated JPEG and PNG, empty
files, text and random bytes under image names, a bad chunk checksum, headers declaring
65535 x 65535 pixels (PNG, JPEG, GIF, BMP), a header with no data, and a decompression bomb.

With ``on_error="raise"`` loading each one raises ImageReadError naming the file; with
``on_error="skip"`` each is left out and listed in ``dataset.skipped`` (at construction, or
when a DataLoader meets it), and the loader delivers exactly the good images. Neither hangs
nor allocates much: everything runs in a child process with a timeout, which measures its
peak resident size file by file.
"""
import json
import os
import subprocess
import sys

import pytest

from hostile import images

TIMEOUT = 120
PER_FILE_RSS = 128 << 20  # peak resident growth allowed while reading one small file

CHILD = r"""
import json, os, sys, time, warnings
from weitiao.data import (Compose, DataLoader, ImageFolder, ImageReadError, Resize,
                          ToArray)

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) * 1024

def reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return hwm()

root, mode = sys.argv[1], sys.argv[2]
out = {}
if mode == "raise":
    ds = ImageFolder(root)
    for i, (path, _) in enumerate(ds.samples):
        base = reset()
        began = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.load(i)
            result = {"ok": True}
        except Exception as e:
            result = {"ok": False, "type": type(e).__name__, "message": str(e)}
        result["seconds"] = time.perf_counter() - began
        result["rss"] = hwm() - base
        out[path] = result
else:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolder(root, on_error="skip", transform=Compose([Resize((16, 16)), ToArray()]))
    at_construction = list(ds.skipped)
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=True, seed=0)
    labels = []
    began = time.perf_counter()
    for x, y in loader:
        assert x.shape[1:] == (3, 16, 16), x.shape
        labels += y.tolist()
    out = {"kept": [p for p, _ in ds.samples], "skipped": ds.skipped,
           "at_construction": at_construction, "delivered": len(labels),
           "warnings": [str(w.message) for w in caught], "seconds": time.perf_counter() - began}
print(json.dumps(out))
"""


def run_child(*args):
    import weitiao

    package_dir = os.path.dirname(os.path.dirname(weitiao.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_dir,
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("images"))
    good, broken = images.build(root)
    return root, good, broken


def test_enough_broken_files(folder):
    _, good, broken = folder
    assert len(broken) >= 10 and len(good) >= 3


def test_raise_names_the_file_without_hanging_or_allocating(folder):
    root, good, broken = folder
    results = run_child(root, "raise")
    assert set(results) == set(good) | set(broken)
    for path in good:
        assert results[path]["ok"], (path, results[path])
    for path in broken:
        r = results[path]
        assert not r["ok"], f"{path} loaded"
        assert r["type"] == "ImageReadError" and path in r["message"], (path, r)
        assert r["seconds"] < 10, (path, r)
        assert r["rss"] < PER_FILE_RSS, (path, r)


def test_skip_leaves_out_and_counts_every_broken_file(folder):
    root, good, broken = folder
    r = run_child(root, "skip")
    assert sorted(r["skipped"]) == sorted(broken)
    assert r["delivered"] == len(good)
    # Files that fail the structural check never get an index; the truncated JPEG (which
    # passes it) is skipped when the loader meets it, without moving the other indices.
    assert set(r["at_construction"]) < set(broken)
    assert set(r["kept"]) == set(good) | (set(broken) - set(r["at_construction"]))
    assert any(f"skipped {len(r['at_construction'])} unreadable" in w for w in r["warnings"])


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    """A 90 KB PNG of 9500 x 9500 pixels: Pillow only warns between 89.5 M pixels and twice
    that; ImageFolder refuses it (before this check it decoded it: 430 MB)."""
    bomb = str(tmp_path / "bomb" / "bomb.png")
    images.bomb(bomb)
    images.build(str(tmp_path / "other"))
    for mode in ("raise", "skip"):
        r = run_child(str(tmp_path), mode)
        if mode == "raise":
            result = r[bomb]
            assert not result["ok"] and result["type"] == "ImageReadError", result
            assert bomb in result["message"] and "DecompressionBomb" in result["message"]
            assert result["rss"] < PER_FILE_RSS, result
        else:
            assert bomb in r["at_construction"]


def test_loading_in_threads_leaves_the_warning_filters_alone(folder):
    import threading
    import warnings

    root, good, _ = folder
    from weitiao.data.image_files import load_image

    before = list(warnings.filters)

    def work():
        for _ in range(1500):
            load_image(good[0])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = list(warnings.filters)
    warnings.filters[:] = before  # (do not leak it into the other tests)
    assert after == before, [f for f in after if f not in before]
