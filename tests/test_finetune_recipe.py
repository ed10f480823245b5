"""The fine-tuning recipe's knobs: augmentation presets and their evaluation pipelines,
class weights, the balanced sampler, held-out validation fractions, warmup + cosine,
early stopping with the best epoch restored, and test-time augmentation."""
import numpy as np
import pytest
from conftest import small_resnet18

from weitiao.data import ArrayDataset, DataLoader, class_balanced_weights
from weitiao.data.transforms import CenterCrop
from weitiao.finetune import FineTuner
from weitiao.optim import SGD, WarmupCosineLR


@pytest.fixture(scope="module")
def source():
    return small_resnet18(16)


def imbalanced(n=24, size=16, seed=0):
    """Preprocessed inputs, 3 of 4 samples in class 0; class 1 has a brighter channel."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4 == 3).astype(np.int64)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    x[y == 1, 0] += 1.5
    return ArrayDataset(x, y, classes=["a", "b"])


def uint8_images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 255, (n, 40, 48, 3), dtype=np.uint8), np.arange(n) % 2,
                        classes=["a", "b"])


def test_augment_preset_picks_the_matching_evaluation(source):
    whole = FineTuner(source, classes=["a", "b"], augment="light")
    assert not any(isinstance(t, CenterCrop) for t in whole.preprocess().transforms)
    cropped = FineTuner(source, classes=["a", "b"], augment="standard")
    assert any(isinstance(t, CenterCrop) for t in cropped.preprocess().transforms)
    forced = FineTuner(source, classes=["a", "b"], augment="light", eval_crop=True)
    assert forced.eval_crop is True
    with pytest.raises(ValueError, match="augment must be one of .*got 'heavy'"):
        FineTuner(source, classes=["a", "b"], augment="heavy")


def test_augmented_training_runs_on_images_and_save_load_keeps_the_evaluation(source, tmp_path):
    tuner = FineTuner(source, classes=["a", "b"], augment="dihedral")
    tuner.fit(uint8_images(), epochs=1, batch_size=8, verbose=False)
    tuner.save(tmp_path / "m.safetensors")
    back = FineTuner.load(tmp_path / "m.safetensors")
    assert back.augment == "dihedral" and back.eval_crop is False
    img = uint8_images().images[0]
    np.testing.assert_allclose(back.predict(img)[1], tuner.predict(img)[1], atol=1e-6)


def test_balanced_class_weight_is_scikit_learns_and_dicts_name_classes(source):
    tuner = FineTuner(source, classes=["a", "b", "c"], class_weight="balanced")
    # sklearn.utils.class_weight.compute_class_weight("balanced"): n / (k * count)
    np.testing.assert_allclose(tuner.class_weights([0, 0, 0, 1, 1, 2]), [6 / 9, 6 / 6, 6 / 3])
    named = FineTuner(source, classes=["a", "b", "c"], class_weight={"b": 3.0, 2: 0.5})
    np.testing.assert_allclose(named.class_weights(None), [1.0, 3.0, 0.5])
    with pytest.raises(ValueError, match="'z' is neither a class name nor an index"):
        FineTuner(source, classes=["a", "b"], class_weight={"z": 2}).class_weights(None)
    with pytest.raises(ValueError, match="class_weight must be None, 'balanced' or a dict"):
        FineTuner(source, classes=["a", "b"], class_weight="inverse")


def test_weighted_loss_is_used_in_fit(source):
    tuner = FineTuner(source, classes=["a", "b"], class_weight="balanced")
    tuner.fit(imbalanced(), epochs=1, batch_size=8, verbose=False)
    np.testing.assert_allclose(tuner.loss_fn.weight, [24 / 36, 24 / 12], rtol=1e-6)


def test_balanced_sampler_is_seeded_and_balances_classes():
    ds = imbalanced(n=400)
    w = class_balanced_weights(ds.targets)
    a = DataLoader(ds, batch_size=50, seed=3, sample_weights=w)
    b = DataLoader(ds, batch_size=50, seed=3, sample_weights=w)
    np.testing.assert_array_equal(a.order(2), b.order(2))
    assert not np.array_equal(a.order(1), a.order(2))
    drawn = np.concatenate([a.order(e) for e in range(20)])
    share = np.mean(ds.targets[drawn] == 1)
    assert 0.47 < share < 0.53  # 25 % of the data, half of the draws
    with pytest.raises(ValueError, match=r"shape \(400,\), got \(3,\)"):
        DataLoader(ds, sample_weights=[1, 2, 3])
    with pytest.raises(ValueError, match="non-negative and not all zero"):
        DataLoader(ds, sample_weights=np.zeros(400))


def test_fit_with_the_balanced_sampler_trains(source):
    tuner = FineTuner(source, classes=["a", "b"])
    tuner.fit(imbalanced(), epochs=1, batch_size=8, sampler="balanced", verbose=False)
    with pytest.raises(ValueError, match="sampler must be None or 'balanced'"):
        tuner.fit(imbalanced(), epochs=1, sampler="uniform", verbose=False)


def test_val_fraction_is_stratified_seeded_and_disjoint(source):
    tuner = FineTuner(source, classes=["a", "b"], seed=4)
    ds = imbalanced()
    train, val = tuner._hold_out(ds, 0.25)
    again, val2 = FineTuner(source, classes=["a", "b"], seed=4)._hold_out(ds, 0.25)
    assert list(val.indices) == list(val2.indices)
    assert not set(train.indices) & set(val.indices)
    counts = np.bincount(val.targets, minlength=2)  # 18 and 6 samples, a quarter each
    assert abs(counts[0] - 4.5) <= 1 and abs(counts[1] - 1.5) <= 1
    history = tuner.fit(ds, epochs=1, batch_size=8, val=0.25, verbose=False)
    assert history.val_accuracy[0] is not None
    with pytest.raises(ValueError, match=r"must be in \(0, 1\), got 1.5"):
        tuner.fit(ds, epochs=1, val=1.5, verbose=False)


def test_warmup_cosine_schedule_per_batch(source):
    opt = SGD([{"params": [], "lr": 0.2}])
    sched = WarmupCosineLR(opt, total_steps=20, warmup_steps=4)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(20):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == 0 and lrs[4] == pytest.approx(0.2) and lrs[20] == pytest.approx(0)
    assert all(a <= b for a, b in zip(lrs[:4], lrs[1:5]))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    tuner = FineTuner(source, classes=["a", "b"], lr=0.01)
    tuner.fit(imbalanced(), epochs=2, batch_size=8, scheduler="warmup_cosine", verbose=False)
    assert tuner.optimizer.param_groups[0]["lr"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        WarmupCosineLR(opt, total_steps=3, warmup_steps=3)


def test_restore_best_puts_back_the_best_validation_epoch(source):
    ds, val = imbalanced(seed=0), imbalanced(seed=1)
    tuner = FineTuner(source, classes=["a", "b"], lr=0.05)
    history = tuner.fit(ds, epochs=4, batch_size=8, val=val, restore_best=True, verbose=False)
    best = history.best_epoch
    scores = [(a, -l) for a, l in zip(history.val_accuracy, history.val_loss)]
    assert best == 1 + max(range(4), key=lambda i: scores[i])
    ev = tuner.evaluate(val)
    assert ev.accuracy == history.val_accuracy[best - 1]
    assert ev.loss == pytest.approx(history.val_loss[best - 1], rel=1e-4)


def test_early_stopping_stops_after_patience(source, monkeypatch):
    tuner = FineTuner(source, classes=["a", "b"])
    accuracies = iter([0.5, 0.6, 0.55, 0.55, 0.9, 0.9])
    real = tuner.evaluate

    def fake(data, **kw):
        ev = real(data, **kw)
        ev.accuracy = next(accuracies)
        return ev

    monkeypatch.setattr(tuner, "evaluate", fake)
    history = tuner.fit(imbalanced(), epochs=6, batch_size=8, val=imbalanced(seed=1),
                        early_stopping=2, verbose=False)
    assert len(history) == 4 and history.best_epoch == 2
    with pytest.raises(ValueError, match="need val"):
        tuner.fit(imbalanced(), epochs=1, early_stopping=2, verbose=False)
    with pytest.raises(ValueError, match="number of epochs >= 1, got 0"):
        tuner.fit(imbalanced(), epochs=1, val=0.2, early_stopping=0, verbose=False)


def test_tta_averages_the_probabilities_of_the_views(source):
    tuner = FineTuner(source, classes=["a", "b"])
    x = imbalanced(n=8).images
    _, plain = tuner.predict(x)
    _, flipped = tuner.predict(np.ascontiguousarray(x[..., ::-1]))
    _, tta = tuner.predict(x, tta="flip")
    np.testing.assert_allclose(tta, (plain + flipped) / 2, atol=1e-6)
    ev = tuner.evaluate(imbalanced(n=8), tta="dihedral")
    assert ev.probabilities.shape == (8, 2)
    np.testing.assert_allclose(ev.probabilities.sum(axis=1), 1, atol=1e-9)
    with pytest.raises(ValueError, match="tta must be None, 'flip' or 'dihedral'"):
        tuner.evaluate(imbalanced(n=8), tta="turns")


def test_head_epochs_are_a_linear_probe_then_everything_trains(source):
    ds, val = imbalanced(seed=0), imbalanced(seed=1)
    probe = FineTuner(source, classes=["a", "b"], freeze="backbone", seed=2)
    probe.fit(ds, epochs=2, batch_size=8, val=val, scheduler=None, verbose=False)  # LP: constant
    lpft = FineTuner(source, classes=["a", "b"], freeze=["conv1"], seed=2)
    before = {k: v.copy() for k, v in lpft.model.state_dict().items()}
    history = lpft.fit(ds, epochs=1, batch_size=8, val=val, head_epochs=2, verbose=False)
    assert [e.stage for e in history.epochs] == ["head", "head", "all"]
    assert history.val_loss[:2] == probe.history.val_loss  # the same probe, bit for bit
    after = lpft.model.state_dict()
    np.testing.assert_array_equal(after["conv1.weight"], before["conv1.weight"])  # still frozen
    assert not np.array_equal(after["layer4.1.conv2.weight"], before["layer4.1.conv2.weight"])
    assert not lpft.model.conv1.weight.requires_grad and lpft.model.layer1[0].conv1.weight.requires_grad
    with pytest.raises(ValueError, match="head_epochs must be an int >= 0, got -1"):
        lpft.fit(ds, epochs=1, head_epochs=-1, verbose=False)


def test_the_seed_fixes_dropout_and_drop_connect_whatever_the_source_generator():
    import copy

    from weitiao.models import efficientnet_lite0

    src = efficientnet_lite0(num_classes=3, rng=None)  # an unseeded generator, as weights= get
    src.config = src.config.resized(32)
    other = copy.deepcopy(src).reseed(123)
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    data = ArrayDataset(x, np.arange(8) % 2, classes=["a", "b"])
    states = []
    for source in (src, other, src):
        tuner = FineTuner(source, classes=["a", "b"], seed=5)
        tuner.fit(data, epochs=1, batch_size=4, verbose=False)
        states.append(tuner.model.state_dict())
    for k in states[0]:
        np.testing.assert_array_equal(states[0][k], states[1][k], err_msg=k)
        np.testing.assert_array_equal(states[0][k], states[2][k], err_msg=k)


def test_soft_targets_train_each_label_towards_its_row(source):
    from weitiao.nn import CrossEntropyLoss

    table = np.array([[0.8, 0.2], [0.3, 0.7]])
    tuner = FineTuner(source, classes=["a", "b"], soft_targets=table)
    logits = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    labels = np.array([0, 1, 1, 0])
    grads = []
    tuner._step(logits, labels, grads.append)
    expected = CrossEntropyLoss()
    expected(logits, table[labels].astype(np.float32))
    np.testing.assert_allclose(grads[0], expected.backward(), rtol=1e-6)
    tuner.fit(imbalanced(), epochs=1, batch_size=8, verbose=False)
    with pytest.raises(ValueError, match=r"must be \(2, 2\) for 2 classes, got shape \(3, 3\)"):
        FineTuner(source, classes=["a", "b"], soft_targets=np.eye(3))
    with pytest.raises(ValueError, match="probability distribution"):
        FineTuner(source, classes=["a", "b"], soft_targets=[[0.5, 0.6], [0, 1]])


def test_ema_validates_with_and_ends_with_the_averaged_weights(source):
    from weitiao.finetune.ema import WeightEMA

    tuner = FineTuner(source, classes=["a", "b"], lr=0.05)
    history = tuner.fit(imbalanced(), epochs=2, batch_size=8, val=imbalanced(seed=1),
                        ema=0.9, verbose=False)
    assert tuner._ema is None
    ev = tuner.evaluate(imbalanced(seed=1))
    assert ev.loss == pytest.approx(history.val_loss[-1], rel=1e-4)  # the EMA weights stayed
    plain = FineTuner(source, classes=["a", "b"], lr=0.05)
    plain.fit(imbalanced(), epochs=2, batch_size=8, verbose=False)
    assert not np.array_equal(plain.model.fc.weight.data, tuner.model.fc.weight.data)
    # the average by hand: d_t = min(decay, (1 + t) / (10 + t))
    from weitiao import nn

    layer = nn.Linear(3, 2, rng=0)
    w0 = layer.weight.data.copy()
    ema = WeightEMA(layer, 0.2)
    layer.weight.data[...] = w1 = w0 + 1.0
    ema.update()
    layer.weight.data[...] = w2 = w0 - 2.0
    ema.update()
    d1, d2 = np.float32(2 / 11), np.float32(0.2)  # min(0.2, 2/11), min(0.2, 3/12)
    expected = d2 * (d1 * w0 + (1 - d1) * w1) + (1 - d2) * w2
    np.testing.assert_allclose(ema.shadow[0], expected, rtol=1e-6)
    with ema.applied():
        np.testing.assert_allclose(layer.weight.data, expected, rtol=1e-6)
    np.testing.assert_array_equal(layer.weight.data, w2)
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        WeightEMA(layer, 1.0)


def test_gradual_unfreezing_opens_one_stage_per_epoch(source, monkeypatch):
    tuner = FineTuner(source, classes=["a", "b"], freeze="stem")
    seen = []
    real = tuner._run_batches

    def spy(*args, **kwargs):
        seen.append({name: next(tuner.model.get_submodule(paths[0]).parameters()).requires_grad
                     for name, paths in tuner.model.stages})
        return real(*args, **kwargs)

    monkeypatch.setattr(tuner, "_run_batches", spy)
    tuner.fit(imbalanced(), epochs=3, batch_size=8, unfreeze="gradual", verbose=False)
    assert [sum(s.values()) for s in seen] == [0, 1, 2]
    assert seen[1]["layer4"] and not seen[1]["layer3"]
    assert not tuner.model.conv1.weight.requires_grad  # the user's freeze holds after fit
    assert tuner.model.layer1[0].conv1.weight.requires_grad
    with pytest.raises(ValueError, match="unfreeze must be None or 'gradual'"):
        tuner.fit(imbalanced(), epochs=1, unfreeze="all", verbose=False)


class _Unlabelled:
    """A dataset that yields samples but does not list its labels up front."""

    classes = ["a", "b"]

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


@pytest.mark.parametrize("fit_kwargs, what", [
    (dict(val=0.25), r"fit\(val=fraction\)"),
    (dict(sampler="balanced"), r"fit\(sampler='balanced'"),
])
def test_what_needs_labels_up_front_says_so(source, fit_kwargs, what):
    tuner = FineTuner(source, classes=["a", "b"])
    with pytest.raises(ValueError, match=what + ".*needs every sample's label up front"):
        tuner.fit(_Unlabelled(imbalanced()), epochs=1, verbose=False, **fit_kwargs)


@pytest.mark.parametrize("epochs", ["2", 2.0, True])
def test_fit_epochs_must_be_an_int(source, epochs):
    tuner = FineTuner(source, classes=["a", "b"])
    with pytest.raises(TypeError, match="fit: epochs must be an int, got"):
        tuner.fit(imbalanced(), epochs=epochs, verbose=False)
    assert len(tuner.history) == 0


def test_the_default_body_lr_is_the_source_familys_measured_one():
    from weitiao.models import efficientnet_lite0, mobilenet_v2
    from weitiao.models.mobilenet import MOBILENET_V2_CONFIG

    def group_lrs(tuner):
        return {g["name"]: g["lr"] for g in tuner.optimizer.param_groups}

    mobile = mobilenet_v2(num_classes=3, rng=0)
    tuner = FineTuner(mobile, num_classes=3)
    assert tuner.lr == MOBILENET_V2_CONFIG.finetune_lr < 1e-2
    assert group_lrs(tuner)["head"] == pytest.approx(10 * tuner.lr)
    assert FineTuner(mobile, num_classes=3, lr=5e-2).lr == 5e-2
    assert FineTuner(mobile, num_classes=3, from_scratch=True).lr == 1e-2
    assert FineTuner(efficientnet_lite0(num_classes=3, rng=0), num_classes=3).lr == 1e-2
    # a resized copy keeps the rate, and so does a checkpoint's config
    resized = FineTuner(mobile, num_classes=3, image_size=64)
    assert resized.model.config.finetune_lr == MOBILENET_V2_CONFIG.finetune_lr
    from weitiao.models.config import ModelConfig

    saved = ModelConfig.from_dict(resized.model.config.to_dict())
    assert saved.finetune_lr == MOBILENET_V2_CONFIG.finetune_lr
    older = {k: v for k, v in saved.to_dict().items() if k != "finetune_lr"}
    assert ModelConfig.from_dict(older).finetune_lr == 1e-2
