"""The teaching notebooks in notebooks/ are committed clean and follow the size switch CI
relies on. Running them is a separate CI step (nbmake executes each one top to bottom):

    WEITIAO_NB_SMALL=1 python -m pytest -q --nbmake notebooks/
"""
import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def code_cells(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def test_the_four_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01_fine_tuning.ipynb", "02_freezing_layers.ipynb",
        "03_reusing_classifier_weights.ipynb", "04_under_the_hood.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    # Outputs are made by running a notebook, not stored: they would go stale and bloat diffs.
    for cell in code_cells(path):
        assert cell["outputs"] == [] and cell["execution_count"] is None, \
            f"{path.name}: clear the outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_reads_the_small_switch(path):
    first = "".join(code_cells(path)[0]["source"])
    assert 'os.environ.get("WEITIAO_NB_SMALL") == "1"' in first, \
        f"{path.name}: its first code cell should set SMALL from WEITIAO_NB_SMALL"
