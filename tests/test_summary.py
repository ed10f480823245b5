"""model.summary(): totals against the known parameter counts, per-layer output shapes
against a hand-computed trace and PyTorch's, and the stage column and freeze lines against
freezing.py's own stage list (and against what FineTuner actually freezes)."""
import numpy as np
import pytest

from weitiao import nn
from weitiao.finetune import FineTuner
from weitiao.finetune.freezing import apply_freeze, freeze_cuts, frozen_paths
from weitiao.models import create_model, efficientnet_lite0, mobilenet_v2, resnet18, resnet50
from weitiao.nn.summary import ModelSummary


def under(name, paths):
    return any(name == p or name.startswith(p + ".") for p in paths)


@pytest.fixture(scope="module")
def r18_summary():
    return resnet18(rng=0).summary()


def test_resnet18_totals_are_torchvisions(r18_summary):
    s = r18_summary
    assert isinstance(s, ModelSummary)
    assert s.input_size == (1, 3, 224, 224)  # the model's own input size by default
    assert (s.total_params, s.trainable_params, s.frozen_params) == (11_689_512, 11_689_512, 0)
    assert s.param_bytes == 4 * 11_689_512
    assert sum(r.params for r in s.rows) == s.total_params
    text = str(s).splitlines()
    assert text[0] == "ResNet (resnet18), 1000 classes, input (1, 3, 224, 224)"
    assert "Total params: 11,689,512 (44.59 MiB as float32)" in text
    assert "Trainable params: 11,689,512" in text and "Frozen params: 0" in text


@pytest.mark.parametrize("factory, total", [(resnet50, 25_557_032),
                                            (mobilenet_v2, 3_504_872),
                                            (efficientnet_lite0, 4_652_008)])
def test_other_totals(factory, total):
    assert factory(rng=0).summary(32).total_params == total


def test_resnet18_shapes_follow_the_arithmetic(r18_summary):
    shapes = {r.name: r.output_shape for r in r18_summary.rows}
    assert shapes["conv1"] == (1, 64, 112, 112)  # 7x7 stride 2, padding 3
    assert shapes["maxpool"] == (1, 64, 56, 56)
    for i, (c, side) in enumerate([(64, 56), (128, 28), (256, 14), (512, 7)], 1):
        assert shapes[f"layer{i}.0.conv1"] == (1, c, side, side)
        assert shapes[f"layer{i}.1.relu"] == (1, c, side, side)
    assert shapes["layer2.0.downsample.0"] == (1, 128, 28, 28)
    assert shapes["avgpool"] == (1, 512, 1, 1)
    assert shapes["flatten"] == (1, 512)
    assert shapes["fc"] == (1, 1000)


def test_shapes_and_counts_equal_pytorchs(torch):
    from torch_resnet import resnet18 as torch_resnet18

    ref = torch_resnet18()
    seen = {}
    for name, m in ref.named_modules():
        if not list(m.children()):
            m.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape))
    with torch.no_grad():
        ref.eval()(torch.zeros(2, 3, 96, 128))
    s = resnet18(rng=0).summary((2, 3, 96, 128))
    ours = {r.name: r for r in s.rows}
    assert set(seen) <= set(ours)  # torch's leaves; ours also list each block's first ReLU
    for name, shape in seen.items():
        assert ours[name].output_shape == tuple(shape), name
        assert ours[name].params == sum(p.numel() for p in
                                        ref.get_submodule(name).parameters()), name
    assert s.total_params == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0", "mobilenet_v2",
                                  "resnet_small"])
def test_stage_column_and_freeze_lines_are_freezings_own(arch):
    model = create_model(arch, num_classes=3, rng=0)
    s = model.summary(32)
    names = [r.name for r in s.rows]
    stages = model.stage_names()
    assert [c.values[:2] for c in s.cuts][:len(stages)] == list(enumerate(stages, 1))
    for k, cut in enumerate(s.cuts[:len(stages)], 1):
        paths = frozen_paths(model, k)
        frozen_rows = [i for i, n in enumerate(names) if under(n, paths)]
        assert cut.after == max(frozen_rows)
        assert frozen_paths(model, cut.values[1]) == paths  # the stage's name cuts there too
        # the stage column names stage k exactly on the rows freeze=k adds to freeze=k-1
        newly = {n for n in names if under(n, paths)} - \
            {n for n in names if under(n, frozen_paths(model, k - 1))}
        assert {r.name for r in s.rows if r.stage == stages[k - 1]} == newly
    half = (len(stages) + 1) // 2
    assert "bottom-half" in s.cuts[half - 1].values
    assert sum("bottom-half" in c.values for c in s.cuts) == 1
    assert sum("backbone" in c.values for c in s.cuts) == 1
    assert {r.name for r in s.rows if r.stage == "head"} == \
        {n for n in names if under(n, model.head_chain)}
    assert [c.values for c in s.cuts] == [v for v, _ in freeze_cuts(model)]


@pytest.mark.parametrize("freeze", [1, 2, "layer3", "bottom-half", "backbone"])
def test_the_frozen_rows_are_those_above_the_freeze_line(freeze):
    """What FineTuner really freezes (the trainable column) ends at the line the summary
    drew for that freeze value."""
    model = resnet18(num_classes=3, rng=0)
    line = next(c for c in model.summary(32).cuts if freeze in c.values)
    tuner = FineTuner(model, classes=["a", "b", "c"], freeze=freeze)
    s = tuner.model.summary(32)
    for i, row in enumerate(s.rows):
        if row.params:
            assert (row.trainable_params == 0) == (i <= line.after), row.name
    assert s.frozen_params == sum(p.size for p in tuner.model.parameters()
                                  if not p.requires_grad) > 0


def test_freeze_lines_in_the_text(r18_summary):
    lines = str(r18_summary).splitlines()
    rule = [i for i, line in enumerate(lines) if line.startswith("-- freeze=")]
    assert len(rule) == 5
    assert lines[rule[0]].startswith("-- freeze=1 / 'stem' freezes the rows above --")
    assert lines[rule[0] - 1].split()[0] == "bn1" and lines[rule[0] + 1].split()[0] == "relu"
    assert lines[rule[2]].startswith("-- freeze=3 / 'layer2' / 'bottom-half' (FineTuner's "
                                     "default) freezes the rows above")
    assert lines[rule[4]].startswith("-- freeze=5 / 'layer4' / 'backbone' freezes")
    assert lines[rule[4] + 1].split()[0] == "avgpool"
    assert lines[-1].startswith("freeze=None (or 0) trains every layer")


def test_a_frozen_model_shows_frozen_rows_and_totals():
    model = resnet18(num_classes=3, rng=0)
    apply_freeze(model, "bottom-half")
    s = model.summary(32)
    rows = {r.name: r for r in s.rows}
    assert rows["layer2.1.conv2"].trainable_params == 0
    assert rows["layer3.0.conv1"].trainable_params == rows["layer3.0.conv1"].params
    text = str(s)
    assert "layer2.1.conv2" in text and "frozen" in text.split("layer2.1.conv2")[1][:80]
    assert s.frozen_params == 9_408 + 128 + 147_968 + 525_568
    assert f"Frozen params: {s.frozen_params:,}" in text


def test_input_sizes():
    model = resnet18(num_classes=3, rng=0)
    assert model.summary(40).input_size == (1, 3, 40, 40)
    assert model.summary((3, 40, 48)).input_size == (1, 3, 40, 48)
    assert model.summary((4, 3, 40, 48)).rows[0].output_shape == (4, 64, 20, 24)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 2))
    s = net.summary((2, 3, 8, 8))
    assert [(r.name, r.output_shape, r.params) for r in s.rows] == [
        ("0", (2, 8, 6, 6), 224), ("1", (2, 8, 6, 6), 0), ("2", (2, 288), 0),
        ("3", (2, 2), 578)]
    assert s.cuts == [] and "stage" not in str(s).splitlines()[2]
    assert "Total params: 802 (3.13 KiB as float32)" in str(s)
    with pytest.raises(TypeError, match=r"Sequential.summary: give input_size, e.g. "
                                        r"\(1, 3, 224, 224\)"):
        net.summary()
    with pytest.raises(TypeError, match="an int input_size needs a model that knows"):
        net.summary(8)
    with pytest.raises(ValueError, match="input_size must be an int or a"):
        model.summary((3, 40))


def test_summary_does_not_train_or_keep_anything():
    model = resnet18(num_classes=3, rng=0)
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    model.summary(32)
    assert model.training
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert all(m.__dict__.get("_saved") is None for m in model.modules())
