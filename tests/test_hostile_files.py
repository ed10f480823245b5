"""Hostile and broken checkpoint files (tests/hostile/corpus.py) through
``weitiao.io.load_state_dict``: each gives a ValueError (CheckpointError) that names the file
and says what is wrong, runs nothing - no marker file appears, no audit event of a process,
a code execution or a file write is raised - and allocates no more than a few times the
file's size, however much the file claims.

Cases marked with ``xfail`` in the corpus are known bugs (see docs/reliability.md); their
tests fail with XPASS once the bug is fixed, so the marker gets removed.
"""
import copyreg
import json
import os
import re
import subprocess
import sys
import tracemalloc

import pytest

from hostile import corpus
from weitiao.io import load_state_dict
from weitiao.io import torch_pickle

# Audit events that loading a weights file must never raise. ("compile" is left out: NumPy
# parses .npy headers with ast.literal_eval, which compiles to an AST and runs nothing.)
FORBIDDEN_EVENTS = {
    "exec", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "subprocess.Popen", "os.startfile", "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function",
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.symlink", "os.link",
    "os.truncate", "shutil.rmtree", "shutil.copyfile", "shutil.move", "socket.connect",
    "socket.bind", "urllib.Request", "webbrowser.open", "pickle.find_class", "os.kill",
    "os.putenv", "os.unsetenv", "sys.settrace", "sys.setprofile", "code.__new__",
    "function.__new__", "marshal.loads", "builtins.input",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_recording: list = []  # [events] while a load runs, else empty


def _audit(event, args):
    if not _recording:
        return
    if event in FORBIDDEN_EVENTS:
        _recording[0].append((event, repr(args)[:200]))
    elif event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and flags & _WRITE_FLAGS):
            _recording[0].append((event, repr(args)[:200]))


sys.addaudithook(_audit)  # hooks cannot be removed; it does nothing outside a load


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("hostile"))
    warm_up(str(tmp_path_factory.mktemp("valid")))
    return {case.name: case for case in corpus.build(directory)}


def warm_up(directory):
    """Load a valid file of each format once, so the readers' lazy imports (which unmarshal
    code) happen before anything is watched."""
    import numpy as np

    from io_fixtures import torchfiles as tf
    from weitiao.io import save_npz, save_safetensors

    state = {"w": np.zeros(2, np.float32)}
    save_npz(state, os.path.join(directory, "w.npz"))
    save_safetensors(state, os.path.join(directory, "w.safetensors"))
    tf.write_zip(os.path.join(directory, "w.pth"), corpus._good_pickle(), {"0": b"\0" * 8})
    tf.write_legacy(os.path.join(directory, "l.pth"), tf.dumps({"x": 1}), [])
    for name in ("w.npz", "w.safetensors", "w.pth"):
        load_state_dict(os.path.join(directory, name))
    try:
        load_state_dict(os.path.join(directory, "l.pth"))
    except ValueError:
        pass


def names():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return [c.name for c in corpus.build(d)]


CASE_NAMES = names()


def test_the_corpus_is_large_enough():
    assert len(CASE_NAMES) >= 20 and len(set(CASE_NAMES)) == len(CASE_NAMES)


def load_and_judge(case, monkeypatch) -> list[str]:
    """Load the file under watch; return everything that went wrong."""
    if case.max_expanded_bytes is not None:
        monkeypatch.setattr(torch_pickle, "MAX_EXPANDED_BYTES", case.max_expanded_bytes)
    if case.extension:
        copyreg.add_extension(*case.extension)
    events: list = []
    error = None
    tracemalloc.start()
    _recording.append(events)
    try:
        load_state_dict(case.path)
    except BaseException as e:  # noqa: BLE001 - judged below
        error = e
    finally:
        _recording.clear()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if case.extension:
            copyreg.remove_extension(*case.extension)
    problems = []
    if error is None:
        problems.append("it loaded without an error")
    elif not isinstance(error, ValueError):
        problems.append(f"it raised {type(error).__name__}, not a ValueError: {error}")
    else:
        message = str(error)
        if repr(case.path) not in message:
            problems.append(f"the message does not name the file: {message[:300]}")
        if not re.search(case.match, message, re.IGNORECASE):
            problems.append(f"the message does not say /{case.match}/: {message[:300]}")
    executed = [f for f in os.listdir(os.path.dirname(case.path)) if f.startswith("EXECUTED-")]
    if executed:
        problems.append(f"code ran: {executed}")
    if events:
        problems.append(f"forbidden audit events: {events}")
    if peak > case.budget():
        problems.append(f"it allocated {peak} bytes (peak) for a {os.path.getsize(case.path)}"
                        f"-byte file; the budget is {case.budget()}")
    return problems


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_file(cases, name, monkeypatch):
    case = cases[name]
    problems = load_and_judge(case, monkeypatch)
    if case.xfail:
        if problems:
            pytest.xfail(f"known bug: {case.xfail} -- {'; '.join(problems)}")
        pytest.fail(f"{name} now loads correctly: remove its xfail ({case.xfail})")
    assert not problems, f"{case.what}: " + "; ".join(problems)


# A child process: with plain pickle (np.load(allow_pickle=True) for .npz) the payloads run -
# the corpus is really hostile - and with weitiao nothing runs and resident memory stays small.
CHILD = r"""
import copyreg, io, json, os, pickle, sys, zipfile
import numpy as np
sys.path.insert(0, sys.argv[1])
from hostile import corpus

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) * 1024

mode, directory = sys.argv[2], sys.argv[3]
cases = corpus.build(directory)
copyreg.add_extension("os", "system", 0xF0)
if mode == "plain":
    for case in cases:
        try:
            with open(case.path, "rb") as f:
                head = f.read(8)
            if case.path.endswith(".npz"):
                with np.load(case.path, allow_pickle=True) as z:
                    [z[k] for k in z.files]
            elif head.startswith(b"PK"):
                with zipfile.ZipFile(case.path) as z:
                    pickle.loads(z.read("archive/data.pkl"))
            elif head.startswith(b"\x80"):
                with open(case.path, "rb") as f:
                    for _ in range(4):
                        pickle.load(f)
        except BaseException:
            pass
    print(json.dumps(sorted(f[len("EXECUTED-"):] for f in os.listdir(directory)
                            if f.startswith("EXECUTED-"))))
else:
    from weitiao.io import load_state_dict
    load_state_dict  # imported before measuring
    open("/proc/self/clear_refs", "w").write("5")
    base = hwm()
    worst = {}
    for case in cases:
        if case.xfail:
            continue
        try:
            load_state_dict(case.path)
        except ValueError:
            pass
        worst[case.name] = hwm() - base
    executed = [f for f in os.listdir(directory) if f.startswith("EXECUTED-")]
    print(json.dumps({"growth": max(worst.values()), "executed": executed,
                      "children": len(os.listdir(f"/proc/{os.getpid()}/task"))}))
"""

LIVE = {"exec", "getattr_import_chain", "posix_system_protocol0", "stack_global_subprocess_run",
        "inst_opcode", "obj_opcode", "ext_code_registered", "functools_partial",
        "npz_object_array_reduce"}


def run_child(mode, directory):
    import weitiao

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    package_dir = os.path.dirname(os.path.dirname(weitiao.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_dir, tests_dir,
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", CHILD, tests_dir, mode, directory], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_payloads_run_under_plain_pickle(tmp_path):
    # The corpus has teeth: loaded the usual way, these files run their commands.
    assert set(run_child("plain", str(tmp_path))) == LIVE


def test_whole_corpus_in_a_child_stays_small_and_runs_nothing(tmp_path):
    # Resident memory covers what tracemalloc cannot see (the Rust safetensors parser).
    result = run_child("weitiao", str(tmp_path))
    assert result["executed"] == []
    assert result["growth"] < 64 << 20, result
