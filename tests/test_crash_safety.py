"""Never lose work: crashes and interruptions while saving and training.

(a) A process saving a 4 MB state dict over and over (safetensors and npz) is killed with
    SIGKILL at random moments, many times: the file always loads, holds one whole version
    (never a mix of two), and versions never go backwards.
(b) SIGINT (Ctrl-C) sent to a process running ``FineTuner.fit`` stops it at a batch boundary:
    fit returns a history whose last epoch is marked interrupted, the weights are finite,
    the model saves, and a further fit continues.
(c) ``fit(..., checkpoint=P, checkpoint_every=1, resume=True)`` killed with SIGKILL (twice)
    and rerun to completion ends with bit-identical weights and losses to an uninterrupted
    run with the same seed.
(d) Two threads training two separate models at once get bit-identical results to training
    them one after the other; and the kernels release the GIL (a thread inside a long
    convolution does not stall another running Python), which is what makes that concurrent.

``WEITIAO_CRASH_KILLS`` sets the number of kills in (a): 50 by default, more in the long run
(scripts/fuzz_long.sh); the last figures are in docs/reliability.md.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import weitiao
from weitiao.io import load_safetensors, load_state_dict, save_state_dict

KILLS = int(os.environ.get("WEITIAO_CRASH_KILLS", 50))


def child_env():
    package_dir = os.path.dirname(os.path.dirname(weitiao.__file__))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([package_dir,
                                                        os.environ.get("PYTHONPATH", "")]))


def gone(pid, timeout=30.0):
    """Wait until process ``pid`` (reaped by its parent) no longer exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.001)
    return False


# ---------------------------------------------------------------------------- (a) saving

def version_state(v: int) -> dict:
    """About 4 MB whose every element says which version it belongs to."""
    return {"version": np.array([v], np.int64),
            "a": np.full((512, 1024), v, np.float32),
            "b": np.full((1024, 512), -v, np.float32),
            "c": np.arange(4096, dtype=np.float32) + np.float32(v)}


def check_version_state(state: dict) -> int:
    v = int(state["version"][0])
    assert set(state) == {"version", "a", "b", "c"}
    assert (state["a"] == v).all() and (state["b"] == -v).all(), f"mixed versions around {v}"
    np.testing.assert_array_equal(state["c"], np.arange(4096, dtype=np.float32) + np.float32(v))
    return v


# A zygote: imports weitiao once, then forks one saver per request, so each kill costs a
# fork, not an interpreter start. Children are reaped automatically (SIGCHLD ignored).
ZYGOTE = r"""
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
import test_crash_safety as t
from weitiao.io import save_state_dict
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for line in sys.stdin:
    cmd = json.loads(line)
    pid = os.fork()
    if pid == 0:
        v = cmd["start"]
        while True:
            v += 1
            save_state_dict(t.version_state(v), cmd["path"])
    print(json.dumps({"pid": pid}), flush=True)
"""


@pytest.fixture
def zygote():
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, tests_dir], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=child_env())
    yield proc
    proc.stdin.close()
    proc.wait(timeout=30)


def temporaries(directory) -> set:
    return {f for f in os.listdir(directory) if f.endswith(".tmp")}


def test_sigkill_while_saving_never_loses_the_checkpoint(tmp_path, zygote):
    """Half the kills come at a random moment of the save loop, half while a temporary file
    is being written (the parent watches the folder and kills as soon as one appears, or a
    little later)."""
    rng = random.Random()
    paths = [str(tmp_path / "state.safetensors"), str(tmp_path / "state.npz")]
    started = time.perf_counter()
    for p in paths:
        save_state_dict(version_state(0), p)
    save_seconds = (time.perf_counter() - started) / 2
    last = {p: 0 for p in paths}
    mid_write = 0
    for kill in range(KILLS):
        path = paths[kill % 2]
        zygote.stdin.write(json.dumps({"path": path, "start": last[path]}) + "\n")
        zygote.stdin.flush()
        pid = json.loads(zygote.stdout.readline())["pid"]
        if kill % 4 < 2:
            time.sleep(rng.uniform(0, 4 * save_seconds))
        else:
            deadline = time.monotonic() + 10
            while not temporaries(tmp_path) and time.monotonic() < deadline:
                pass
            time.sleep(rng.uniform(0, save_seconds / 4))
        os.kill(pid, signal.SIGKILL)
        assert gone(pid), f"saver {pid} did not die"
        leftovers = temporaries(tmp_path)
        mid_write += bool(leftovers)
        state = load_state_dict(path)  # must load after every kill
        v = check_version_state(state)
        assert v >= last[path], f"kill {kill}: version went back from {last[path]} to {v}"
        last[path] = v
        for f in leftovers:  # what a user would find after a crash: stale temporary files
            os.unlink(tmp_path / f)
    assert min(last.values()) > 0, "no save ever completed: the kills came too early"
    print(f"\n{KILLS} kills, versions reached {last}, kills inside a write (a temporary file "
          f"was left): {mid_write}")
    assert mid_write >= KILLS // 4, (mid_write, KILLS)


# ---------------------------------------------------------------------------- training child

TRAIN = r"""
import json, os, sys
import numpy as np
import weitiao
from weitiao.data import ArrayDataset
from weitiao.finetune import FineTuner
from weitiao.io import save_state_dict
from weitiao.models import resnet18

weitiao.set_num_threads(1)

def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1, 0] += 1.0
    return ArrayDataset(x, y, classes=["a", "b"])

def tuner():
    source = resnet18(rng=1)
    source.config = source.config.resized(32)
    return FineTuner(source, classes=["a", "b"], seed=7)

mode, out = sys.argv[1], sys.argv[2]
if mode == "resume":
    ckpt, epochs = sys.argv[3], int(sys.argv[4])
    ft = tuner()
    print("fitting", flush=True)
    h = ft.fit(data(8), epochs=epochs, batch_size=4, checkpoint=ckpt, checkpoint_every=1,
               resume=True, verbose=False, scheduler="cosine")
    save_state_dict(ft.model.state_dict(), out)
    print(json.dumps({"loss": h.loss, "epochs": len(h)}))
elif mode == "interrupt":
    ft = tuner()
    ds = data(32)
    print("fitting", flush=True)
    h = ft.fit(ds, epochs=200, batch_size=4, verbose=False)
    state = ft.model.state_dict()
    finite = all(bool(np.isfinite(v).all()) for v in state.values() if v.dtype.kind == "f")
    ft.save(os.path.join(out, "interrupted.safetensors"))
    first = [dict(epoch=e.epoch, interrupted=e.interrupted, loss=e.loss) for e in h.epochs]
    h2 = ft.fit(ds, epochs=1, batch_size=4, verbose=False)
    ft.save(os.path.join(out, "continued.safetensors"))
    print(json.dumps({"first": first, "finite": finite,
                      "second": [dict(epoch=e.epoch, interrupted=e.interrupted)
                                 for e in h2.epochs]}))
"""


def start_training(*args):
    return subprocess.Popen([sys.executable, "-c", TRAIN, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def epochs_in(ckpt) -> int:
    """Epochs recorded in a training checkpoint (0 if there is none yet)."""
    if not os.path.exists(ckpt):
        return 0
    _, meta = load_safetensors(ckpt)
    return len(json.loads(meta["weitiao_training"])["tuner"]["history"]["epochs"])


# ---------------------------------------------------------------------------- (b) Ctrl-C

def test_sigint_during_fit_leaves_a_consistent_model_that_trains_on(tmp_path):
    from weitiao.finetune import FineTuner

    proc = start_training("interrupt", tmp_path)
    assert proc.stdout.readline().strip() == "fitting"
    time.sleep(2.0)  # into the first epochs (8 batches each)
    proc.send_signal(signal.SIGINT)
    result = finish(proc)
    first = result["first"]
    assert first and first[-1]["interrupted"], first
    assert not any(e["interrupted"] for e in first[:-1])
    assert np.isfinite(first[-1]["loss"]) and result["finite"]
    assert result["second"][-1] == {"epoch": len(first) + 1, "interrupted": False}
    saved = FineTuner.load(tmp_path / "interrupted.safetensors")
    later = FineTuner.load(tmp_path / "continued.safetensors")
    assert [e.interrupted for e in saved.history.epochs] == [e["interrupted"] for e in first]
    a, b = saved.model.state_dict(), later.model.state_dict()
    assert all(np.isfinite(v).all() for v in a.values() if v.dtype.kind == "f")
    assert any(not np.array_equal(a[k], b[k]) for k in a), "the second fit changed nothing"


# ---------------------------------------------------------------------------- (c) resume

EPOCHS = 4


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    rng = random.Random()
    reference = start_training("resume", tmp_path / "ref.npz", tmp_path / "ref.safetensors",
                               EPOCHS)
    ckpt = tmp_path / "run.safetensors"
    kills = []
    for _ in range(2):  # killed twice, each time some way into an epoch after a checkpoint
        before = epochs_in(ckpt)
        proc = start_training("resume", tmp_path / "unused.npz", ckpt, EPOCHS)
        deadline = time.monotonic() + 300
        while epochs_in(ckpt) <= before and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        if proc.poll() is None and epochs_in(ckpt) < EPOCHS:
            time.sleep(rng.uniform(0.0, 0.3))  # into the next epoch (or its save)
        if proc.poll() is not None:
            break  # it finished first; the final run below then only checks the result
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(epochs_in(ckpt))
    assert kills, "the run finished before it could be killed"
    resumed = finish(start_training("resume", tmp_path / "run.npz", ckpt, EPOCHS))
    want = finish(reference)
    assert resumed["epochs"] == want["epochs"] == EPOCHS
    assert resumed["loss"] == want["loss"], (resumed["loss"], want["loss"], kills)
    got, ref = load_state_dict(tmp_path / "run.npz"), load_state_dict(tmp_path / "ref.npz")
    assert got.keys() == ref.keys()
    for name in ref:
        assert got[name].tobytes() == ref[name].tobytes(), f"{name} differs (kills at {kills})"


# ---------------------------------------------------------------------------- (d) threads

def test_two_threads_training_two_models_match_sequential_runs():
    from weitiao.data import ArrayDataset
    from weitiao.finetune import FineTuner
    from weitiao.models import resnet18

    weitiao.set_num_threads(2)
    source = resnet18(rng=1)
    source.config = source.config.resized(32)

    def data(seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
        return ArrayDataset(x, np.arange(8) % 2, classes=["a", "b"])

    jobs = [(data(0), 3), (data(1), 4)]

    def tuners():
        return [FineTuner(source, classes=["a", "b"], seed=seed) for _, seed in jobs]

    def fit(tuner, ds):
        tuner.fit(ds, epochs=1, batch_size=4, verbose=False)

    sequential = tuners()
    for tuner, (ds, _) in zip(sequential, jobs):
        fit(tuner, ds)
    concurrent = tuners()
    errors = []

    def run(tuner, ds):
        try:
            fit(tuner, ds)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t, ds)) for t, (ds, _) in zip(concurrent, jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (a, b) in enumerate(zip(sequential, concurrent)):
        assert a.history.loss == b.history.loss, f"model {i}"
        for name, value in a.model.state_dict().items():
            assert value.tobytes() == b.model.state_dict()[name].tobytes(), f"model {i}: {name}"


def test_kernels_release_the_gil():
    # What (d) relies on: while one thread is inside a long kernel, another runs Python. If
    # the kernel kept the GIL, this thread would stall for a whole call.
    from weitiao import _C

    previous = weitiao.get_num_threads()
    weitiao.set_num_threads(1)
    try:
        w = np.ones((64, 64, 3, 3), np.float32)
        batch, call = 8, 0.0
        while call < 0.05 and batch <= 256:  # a call long enough to tell the cases apart
            batch *= 2
            x = np.ones((batch, 64, 56, 56), np.float32)
            began = time.perf_counter()
            _C.conv2d_forward(x, w, padding=1)
            call = time.perf_counter() - began
        worker = threading.Thread(target=lambda: [_C.conv2d_forward(x, w, padding=1)
                                                  for _ in range(3)])
        longest, last = 0.0, time.perf_counter()
        worker.start()
        while worker.is_alive():
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
    finally:
        weitiao.set_num_threads(previous)
    assert call > 0.02, call
    assert longest < call / 2, f"this thread stalled {longest:.3f} s during {call:.3f} s calls"
