"""`import weitiao` alone reaches every subpackage by attribute (PEP 562), and imports none
of them, nor the heavy optional modules, until they are used. Each check runs in a fresh
interpreter, since this test process has imported everything already."""
import json
import os
import subprocess
import sys

import weitiao

HEAVY = ("matplotlib", "tqdm", "PIL", "safetensors", "torch", "IPython")


def fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON value, returned."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_weitiao_loads_no_subpackage_and_nothing_heavy():
    """What keeps `import weitiao` within its 0.3 s budget (docs/performance.md; a timing
    assertion would fail on a loaded machine, where the same import took 2 s): beyond NumPy
    and the OpenBLAS wheel, only the C core and the thread and cache controls load."""
    loaded = fresh("import json, sys, weitiao; print(json.dumps(sorted(sys.modules)))")
    ours = {m for m in loaded if m.startswith("weitiao.")}
    assert ours <= {"weitiao._C", "weitiao._threads", "weitiao._winograd", "weitiao.memory"}
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]


def test_every_subpackage_is_an_attribute_after_import_weitiao():
    out = fresh("""
import json, sys, weitiao
model = weitiao.models.resnet18(num_classes=2, rng=0)
names = [weitiao.data.ImageFolder.__name__, weitiao.finetune.FineTuner.__name__,
         weitiao.nn.Conv2d.__name__, weitiao.optim.SGD.__name__,
         weitiao.io.load_state_dict.__name__]
print(json.dumps({"classes": model.num_classes, "names": names,
                  "heavy": sorted(m for m in sys.modules
                                  if m.split(".")[0] in ("matplotlib", "tqdm", "torch"))}))
""")
    assert out == {"classes": 2, "names": ["ImageFolder", "FineTuner", "Conv2d", "SGD",
                                           "load_state_dict"], "heavy": []}


def test_the_lazy_names_are_every_subpackage_and_listed_by_dir():
    """A new subpackage must be added to weitiao._SUBPACKAGES to be reachable."""
    root = os.path.dirname(weitiao.__file__)
    on_disk = {d for d in os.listdir(root)
               if os.path.isfile(os.path.join(root, d, "__init__.py"))}
    assert on_disk == set(weitiao._SUBPACKAGES), "list the subpackage in weitiao._SUBPACKAGES"
    assert set(weitiao._SUBPACKAGES) <= set(dir(weitiao))
    assert {"set_num_threads", "array_cache", "__version__"} <= set(dir(weitiao))


def test_unknown_attributes_are_still_attribute_errors():
    out = fresh("""
import json, weitiao
try:
    weitiao.modles
except AttributeError as e:
    print(json.dumps([str(e), hasattr(weitiao, "models")]))
""")
    assert out == ["module 'weitiao' has no attribute 'modles'", True]
