"""FineTuner: the four d2l steps, freezing, learning-rate groups, classifier-row reuse,
feature caching, save/load, and the errors users meet first."""
import os

import numpy as np
import pytest
from PIL import Image

from weitiao.data import ArrayDataset, ImageFolder
from weitiao.finetune import FineTuner, batches
from weitiao.finetune.freezing import frozen_paths
from weitiao.models import (efficientnet_lite0, efficientnet_lite1, efficientnet_lite2,
                            mobilenet_v2, resnet18)
from weitiao.models.config import ModelConfig


def _small_config(model, size=32):
    model.config = model.config.resized(size)
    return model


@pytest.fixture(scope="module")
def source():
    """A 'pretrained' ResNet-18: random weights with ImageNet's class names."""
    return _small_config(resnet18(rng=1))


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """Two easy classes of 40x40 photos: reddish and bluish noise."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for name, colour in (("blue", (30, 30, 200)), ("red", (200, 30, 30))):
        os.makedirs(root / name)
        for i in range(16):
            img = rng.integers(0, 60, (40, 40, 3)) + np.array(colour)
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return ImageFolder(root)


def _arrays(n=24, size=32, seed=0):
    """Preprocessed float inputs: class 1 has a brighter first channel."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1, 0] += 1.5
    return ArrayDataset(x, y, classes=["a", "b"])


def test_source_model_is_never_changed(source):
    before = {k: v.copy() for k, v in source.state_dict().items()}
    tuner = FineTuner(source, classes=["a", "b"])
    tuner.fit(_arrays(), epochs=1, batch_size=8, verbose=False)
    for k, v in source.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert source.fc.out_features == 1000


def test_body_copied_head_replaced_xavier(source):
    tuner = FineTuner(source, num_classes=5, seed=3)
    model = tuner.model
    for name, value in source.state_dict().items():
        if not name.startswith("fc."):
            np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)
    assert model.fc.weight.shape == (5, 512)
    bound = np.sqrt(6.0 / (512 + 5))
    assert np.abs(model.fc.weight.data).max() <= bound
    assert np.abs(model.fc.weight.data).max() > 0.8 * bound  # spread over the Xavier range


def test_head_gets_ten_times_the_body_lr(source):
    tuner = FineTuner(source, num_classes=2, lr=0.002)
    groups = {g["name"]: g for g in tuner.optimizer.param_groups}
    assert groups["body"]["lr"] == pytest.approx(0.002)
    assert groups["head"]["lr"] == pytest.approx(0.02)
    head_ids = {id(p) for p in tuner.model.fc.parameters()}
    assert {id(p) for p in groups["head"]["params"]} == head_ids
    assert not head_ids & {id(p) for p in groups["body"]["params"]}


def test_lr_groups_really_step_at_their_rates(source):
    """One SGD step without momentum or decay moves each parameter by lr * grad."""
    tuner = FineTuner(source, num_classes=2, lr=0.01, momentum=0.0, weight_decay=0.0,
                      freeze=None)
    data = _arrays(8)
    before = {n: p.data.copy() for n, p in tuner.model.named_parameters()}
    x, y = data.images, data.targets
    tuner._step(tuner.model(x), y, tuner.model.backward)
    for name, p in tuner.model.named_parameters():
        lr = 0.1 if name.startswith("fc.") else 0.01
        np.testing.assert_allclose(before[name] - p.data, lr * p.grad, rtol=1e-4, atol=1e-7,
                                   err_msg=name)


def test_scratch_defaults(source):
    tuner = FineTuner(source, num_classes=2, from_scratch=True)
    groups = {g["name"]: g["lr"] for g in tuner.optimizer.param_groups}
    assert groups == {"body": pytest.approx(0.01), "head": pytest.approx(0.01)}
    assert not np.array_equal(tuner.model.conv1.weight.data, source.conv1.weight.data)


def test_freeze_by_stage_name_count_and_list(source):
    assert frozen_paths(source, "layer2") == ["conv1", "bn1", "layer1", "layer2"]
    assert frozen_paths(source, 2) == ["conv1", "bn1", "layer1"]
    assert frozen_paths(source, ["stem", "layer3.1"]) == ["conv1", "bn1", "layer3.1"]
    assert "fc" not in frozen_paths(source, "backbone")
    with pytest.raises(ValueError, match="not a stage of ResNet.*stem, layer1"):
        FineTuner(source, num_classes=2, freeze="layer9")
    with pytest.raises(ValueError, match="has 5 stages"):
        FineTuner(source, num_classes=2, freeze=7)


def test_frozen_layers_bit_identical_and_bn_stats_kept(source):
    tuner = FineTuner(source, num_classes=2, freeze="layer2", lr=0.05)
    frozen = {n: v.copy() for n, v in tuner.model.state_dict().items()
              if n.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")}
    trainable_before = tuner.model.layer3[0].conv1.weight.data.copy()
    bn_stats_before = tuner.model.layer4[0].bn1.running_mean.copy()
    tuner.fit(_arrays(), epochs=2, batch_size=8, verbose=False)
    for name, value in tuner.model.state_dict().items():
        if name in frozen:
            np.testing.assert_array_equal(value, frozen[name], err_msg=name)
    assert not np.array_equal(tuner.model.layer3[0].conv1.weight.data, trainable_before)
    assert not np.array_equal(tuner.model.layer4[0].bn1.running_mean, bn_stats_before)
    assert all(p.grad is None for p in tuner.model.layer1.parameters())


def test_train_bn_false_keeps_every_running_stat(source):
    tuner = FineTuner(source, num_classes=2, train_bn=False)
    stats = {n: v.copy() for n, v in tuner.model.state_dict().items() if "running" in n}
    tuner.fit(_arrays(), epochs=1, batch_size=8, verbose=False)
    for name, value in stats.items():
        np.testing.assert_array_equal(tuner.model.state_dict()[name], value, err_msg=name)


def test_layer_decay_orders_stage_learning_rates(source):
    tuner = FineTuner(source, num_classes=2, lr=0.01, layer_decay=0.5, freeze=None)
    lrs = {g["name"]: g["lr"] for g in tuner.optimizer.param_groups}
    assert lrs["layer4"] == pytest.approx(0.01)
    assert lrs["layer3"] == pytest.approx(0.005)
    assert lrs["stem"] == pytest.approx(0.01 * 0.5 ** 4)
    assert lrs["head"] == pytest.approx(0.1)


def test_reuse_rows_by_name_and_auto(source):
    classes = ["hotdog", "not hotdog", "Golden_Retriever"]
    tuner = FineTuner(source, classes=classes, reuse_classifier={"hotdog": "hotdog"})
    np.testing.assert_array_equal(tuner.model.fc.weight.data[0], source.fc.weight.data[934])
    assert tuner.model.fc.bias.data[0] == source.fc.bias.data[934]
    report = tuner.reuse_classifier("auto")
    assert report.matched["hotdog"][0] == 934
    assert report.matched["Golden_Retriever"][0] == 207
    assert report.unmatched == ["not hotdog"]
    np.testing.assert_array_equal(tuner.model.fc.weight.data[2], source.fc.weight.data[207])
    assert "hotdog" in str(report)


def test_reuse_rows_by_synonym(source):
    tuner = FineTuner(source, classes=["hot dog", "cat"], reuse_classifier="auto")
    assert tuner.reuse_report.matched["hot dog"][0] == 934


def test_reuse_errors(source):
    tuner = FineTuner(source, classes=["a", "b"])
    with pytest.raises(ValueError, match="'c' is not a target class"):
        tuner.reuse_classifier({"c": 1})
    with pytest.raises(ValueError, match="not a source class"):
        tuner.reuse_classifier({"a": "no such thing"})
    with pytest.raises(ValueError, match="outside 0..999"):
        tuner.reuse_classifier({"a": 1000})


def test_end_to_end_image_folder_beats_chance(source, colour_folder):
    """Fine-tune on a tiny generated ImageFolder, evaluate on held-out copies."""
    tuner = FineTuner(source, classes=colour_folder.classes, lr=0.01, seed=0)
    history = tuner.fit(colour_folder, epochs=4, batch_size=8, num_workers=2, verbose=False)
    assert len(history) == 4 and history.loss[-1] < history.loss[0]
    assert history.examples_per_sec[-1] > 0
    probe = FineTuner(source, classes=colour_folder.classes, freeze="backbone", lr=0.05)
    probe.fit(colour_folder, epochs=8, batch_size=8, verbose=False)
    result = probe.evaluate(colour_folder)
    assert result.accuracy >= 0.9
    assert result.confusion.sum() == len(colour_folder)
    assert set(result.per_class_accuracy) == {"blue", "red"}


def test_cached_and_uncached_head_training_agree(source):
    data = _arrays(20)
    runs = []
    for cache in (False, True):
        tuner = FineTuner(source, classes=data.classes, freeze="backbone", seed=4)
        tuner.fit(data, epochs=3, batch_size=8, cache_features=cache, verbose=False)
        runs.append(tuner)
    a, b = (t.model.fc for t in runs)
    # Same arithmetic in the same order; the backbone runs on the same inputs either way.
    np.testing.assert_allclose(a.weight.data, b.weight.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runs[0].history.loss, runs[1].history.loss, rtol=1e-5)


def test_cached_features_last_one_fit_call(source):
    """A second fit after the backbone changed computes its features again, not the first
    call's stale ones (nor those of an earlier data set that had the same id())."""
    tuner = FineTuner(source, classes=["a", "b"], freeze="backbone", seed=0)
    data = _arrays()
    tuner.fit(data, epochs=2, batch_size=8, verbose=False)
    tuner.model.conv1.weight.data *= 2.0
    tuner.fit(data, epochs=1, batch_size=8, verbose=False)
    loader = batches.loader(data, tuner.preprocess(train=True), 8, True, False, tuner.seed,
                            0, None)
    expected, _ = batches.compute_features(tuner.model, loader, 0, False)
    np.testing.assert_array_equal(tuner._cache[0][0], expected)


def test_cache_requires_frozen_backbone(source):
    tuner = FineTuner(source, classes=["a", "b"])
    with pytest.raises(ValueError, match="freeze='backbone'"):
        tuner.fit(_arrays(), epochs=1, cache_features=True, verbose=False)


def test_save_load_round_trip_predictions(source, colour_folder, tmp_path):
    tuner = FineTuner(source, classes=colour_folder.classes, freeze="backbone")
    tuner.fit(colour_folder, epochs=1, batch_size=8, verbose=False)
    path = tmp_path / "model.safetensors"
    tuner.save(path)
    again = FineTuner.load(path)
    files = [colour_folder.samples[0][0], colour_folder.samples[-1][0]]
    names, probs = tuner.predict(files)
    names2, probs2 = again.predict(files)
    assert names == names2 and again.classes == tuner.classes
    np.testing.assert_allclose(probs, probs2, rtol=1e-6)
    assert again.config.input_size == 32 and len(again.history) == 1


def test_predict_accepts_paths_pil_and_arrays(source, colour_folder):
    tuner = FineTuner(source, classes=colour_folder.classes)
    path = colour_folder.samples[0][0]
    pil = Image.open(path).convert("RGB")
    arr = np.asarray(pil)
    results = [tuner.predict(item)[1] for item in (path, pil, arr)]
    np.testing.assert_allclose(results[0], results[1])
    np.testing.assert_allclose(results[0], results[2])
    assert results[0].shape == (1, 2) and np.isclose(results[0].sum(), 1.0)
    with pytest.raises(ValueError, match="cannot read image .*missing.png"):
        tuner.predict("missing.png")


def test_fit_again_continues_history(source):
    tuner = FineTuner(source, classes=["a", "b"])
    tuner.fit(_arrays(), epochs=1, batch_size=8, verbose=False)
    tuner.fit(_arrays(), epochs=2, batch_size=8, verbose=False)
    assert [e.epoch for e in tuner.history.epochs] == [1, 2, 3]


def test_interrupt_stops_at_batch_boundary(source, monkeypatch):
    """A stop request (what the first Ctrl-C sets) ends fit after the current batch with a
    consistent model and an 'interrupted' epoch; fit can then go on."""
    from weitiao.finetune import interrupt

    class StopAfterOne(interrupt.StopOnInterrupt):
        @property
        def requested(self):
            return True

        @requested.setter
        def requested(self, value):
            pass

    monkeypatch.setattr("weitiao.finetune.tuner.StopOnInterrupt", StopAfterOne)
    tuner = FineTuner(source, classes=["a", "b"])
    history = tuner.fit(_arrays(24), epochs=3, batch_size=8, verbose=False)
    assert len(history) == 1 and history.epochs[0].interrupted
    assert history.examples_per_sec[0] > 0
    monkeypatch.undo()
    tuner.fit(_arrays(24), epochs=1, batch_size=8, verbose=False)
    assert len(tuner.history) == 2 and not tuner.history.epochs[1].interrupted


def test_bad_input_errors(source):
    with pytest.raises(ValueError, match="give num_classes or classes"):
        FineTuner(source)
    with pytest.raises(ValueError, match="num_classes=3 but 2 class names"):
        FineTuner(source, num_classes=3, classes=["a", "b"])
    with pytest.raises(TypeError, match="known output layer"):
        FineTuner(object(), num_classes=2)
    tuner = FineTuner(source, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="the dataset has 2 classes"):
        tuner.fit(_arrays(), epochs=1, verbose=False)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        tuner.fit(_arrays(), epochs=0, verbose=False)


def test_efficientnet_head_and_stages():
    model = _small_config(efficientnet_lite0(rng=0))
    tuner = FineTuner(model, classes=["a", "b"], freeze="stage3")
    assert tuner.model._fc.out_features == 2
    assert tuner.model._blocks[4].frozen and not tuner.model._blocks[5].frozen
    tuner.fit(_arrays(8), epochs=1, batch_size=4, verbose=False)


@pytest.mark.parametrize("factory", [efficientnet_lite1, efficientnet_lite2, mobilenet_v2])
def test_bigger_bodies_fine_tune_save_load_and_from_scratch(factory, tmp_path):
    """A fine-tuning step through FineTuner with "stage3" frozen, then save/load and a
    from-scratch twin, for each body beyond Lite0 (random weights, 32 px: the machinery,
    not the accuracy)."""
    source = _small_config(factory(rng=7))  # not FineTuner's seed 0: scratch must differ
    tuner = FineTuner(source, classes=["a", "b"], freeze="stage3", seed=1)
    model = tuner.model
    assert model.head.out_features == 2 and source.head.out_features == 1000
    frozen = {k: v.copy() for k, v in model.state_dict().items()
              if any(k.startswith(p + ".") for p in tuner.frozen)}
    top = [n for n, _ in model.named_parameters() if n.startswith(model.stages[-1][1][0] + ".")]
    before = {n: model.state_dict()[n].copy() for n in top + [f"{model.head_name}.weight"]}
    tuner.fit(_arrays(8), epochs=1, batch_size=4, verbose=False)
    for k, v in frozen.items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)
    for k, v in before.items():  # the top stage and the new head moved
        assert not np.array_equal(model.state_dict()[k], v), k

    path = tmp_path / "model.safetensors"
    tuner.save(path)
    again = FineTuner.load(path)
    assert (again.model.arch, again.model.arch_kwargs) == (source.arch, source.arch_kwargs)
    images = list(_arrays(4, seed=2).images)  # preprocessed (3, 32, 32) float32 arrays
    np.testing.assert_allclose(again.predict(images)[1], tuner.predict(images)[1], rtol=1e-6)

    scratch = FineTuner(source, classes=["a", "b"], from_scratch=True)
    assert type(scratch.model) is type(source)
    assert scratch.model.stage_names() == source.stage_names()
    assert scratch.model.config == source.config
    name = f"{source.stages[1][1][0]}."
    w = next(k for k in source.state_dict() if k.startswith(name) and k.endswith("weight"))
    assert not np.array_equal(scratch.model.state_dict()[w], source.state_dict()[w])


def test_model_config_resized():
    cfg = ModelConfig.imagenet().resized(112)
    assert (cfg.input_size, cfg.resize_size) == (112, 128)
    assert cfg.class_names[934] == "hotdog"


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    """Kill-and-restart, simulated: keep the checkpoint a 4-epoch run wrote after epoch 2,
    then a fresh tuner resumes from it and ends with the same weights as the uninterrupted
    run (dropout generators, momentum and the cosine schedule included)."""
    import shutil

    from weitiao.finetune import checkpoint as training_checkpoint

    source = _small_config(efficientnet_lite0(rng=5, dropout_rate=0.3))
    data = _arrays(16)
    kwargs = dict(batch_size=8, scheduler="cosine", verbose=False)
    ckpt, after_two = tmp_path / "run.safetensors", tmp_path / "after2.safetensors"
    real_save = training_checkpoint.save

    def save_and_keep_epoch_two(tuner, path, scheduler=None):
        real_save(tuner, path, scheduler)
        if len(tuner.history) == 2:
            shutil.copy(path, after_two)

    monkeypatch.setattr(training_checkpoint, "save", save_and_keep_epoch_two)
    full = FineTuner(source, classes=data.classes, seed=1)
    full.fit(data, epochs=4, checkpoint=ckpt, resume=True, **kwargs)
    monkeypatch.undo()
    assert ckpt.exists() and after_two.exists()

    resumed = FineTuner(source, classes=data.classes, seed=1)
    resumed.fit(data, epochs=4, checkpoint=after_two, resume=True, **kwargs)
    assert len(resumed.history) == 4
    for (name, a), b in zip(full.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(full.history.loss, resumed.history.loss)
    done = FineTuner(source, classes=data.classes, seed=1)
    assert len(done.fit(data, epochs=4, checkpoint=ckpt, resume=True, **kwargs)) == 4


def test_checkpoint_and_load_errors(source, tmp_path):
    tuner = FineTuner(source, classes=["a", "b"])
    with pytest.raises(ValueError, match=r"resume=True\) needs checkpoint=PATH"):
        tuner.fit(_arrays(), epochs=1, resume=True, verbose=False)
    with pytest.raises(ValueError, match="checkpoint must be a .safetensors path"):
        tuner.fit(_arrays(), epochs=1, checkpoint=tmp_path / "run.pth", verbose=False)
    with pytest.raises(ValueError, match="expected a .safetensors path"):
        tuner.save(tmp_path / "model.npz")
    from weitiao.io import save_state_dict

    save_state_dict(tuner.model.state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="no weitiao metadata"):
        FineTuner.load(tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a weitiao training checkpoint"):
        tuner.fit(_arrays(), epochs=1, checkpoint=tmp_path / "plain.safetensors",
                  resume=True, verbose=False)


def test_default_freeze_is_the_bottom_half_of_a_pretrained_copy(source):
    """freeze="auto": the lower half of the stages (ResNet-18's five: stem, layer1, layer2)
    for a pretrained copy, nothing from scratch, nothing with freeze=None; gradual
    unfreezing reaches every layer."""
    from weitiao.finetune.freezing import frozen_paths

    tuner = FineTuner(source, num_classes=2)
    assert tuner.frozen == frozen_paths(tuner.model, "layer2") == \
        frozen_paths(tuner.model, "bottom-half")
    trainable = {n.split(".")[0] for n, p in tuner.model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}
    assert FineTuner(source, num_classes=2, from_scratch=True).frozen == []
    assert FineTuner(source, num_classes=2, freeze=None).frozen == []
    gradual = FineTuner(source, num_classes=2)
    gradual._train_top_stages(len(gradual.model.stages))
    assert all(p.requires_grad for p in gradual.model.parameters())
