"""One check shared by the whole-network training comparisons of the pretrained models
(EfficientNet-Lite, MobileNetV2) against their PyTorch references: after one training-mode
forward and backward on both sides, everything a fine-tuning step reads agrees. Tolerances
and their scale as in test_models_resnet.py. Test modules import this after
``pytest.importorskip("torch")``.
"""
import numpy as np

from conftest import RTOL
from test_models_resnet import assert_all_close_scaled, assert_close_scaled


def assert_training_step_matches(ours, ref, y, gx, ty, tgx, zero=(), tol=RTOL):
    """Logits ``y``/``ty``, input gradients ``gx``/``tgx``, every parameter gradient by name,
    the BatchNorm running statistics and batch counts of weitiao's ``ours`` and the torch
    ``ref``, each relative to the max of the reference tensor.

    ``zero`` names parameters whose gradient is exactly zero in exact arithmetic (a
    BatchNorm bias whose per-channel shift a later training-mode BatchNorm removes): both
    sides hold rounding noise there, compared against the largest real gradient instead.
    """
    assert_close_scaled(y, ty, tol)
    assert gx is not None and gx.shape == tgx.shape
    assert_close_scaled(gx, tgx, tol)
    grads = {n: p.grad for n, p in ours.named_parameters()}
    tgrads = {n: p.grad.numpy() for n, p in ref.named_parameters()}
    biggest = max(np.abs(g).max() for g in tgrads.values())
    for n in zero:
        assert np.abs(grads[n]).max() <= 1e-6 * biggest, n
        assert np.abs(tgrads[n]).max() <= 1e-6 * biggest, n
    assert_all_close_scaled({n: g for n, g in grads.items() if n not in zero},
                            {n: g for n, g in tgrads.items() if n not in zero}, tol,
                            "parameter gradients")

    ours_state = ours.state_dict()
    ref_state = {k: v.numpy() for k, v in ref.state_dict().items()}
    variances = [k for k in ref_state if k.endswith("running_var")]
    assert_all_close_scaled({k: ours_state[k] for k in variances},
                            {k: ref_state[k] for k in variances}, tol, "running variances")
    # A batch mean is summed from activations of the channel's spread, so its rounding error
    # scales with the standard deviation as much as with the mean: compare running means on
    # max(|mean|, std) of their layer. (A channel whose batch mean is zero but for rounding,
    # as behind MobileNetV2's projections whose trained BatchNorm bias is ~1e-7, would
    # otherwise be compared with its own noise.)
    bad = {}
    for k in (k for k in ref_state if k.endswith("running_mean")):
        std = np.sqrt(ref_state[k.replace("running_mean", "running_var")].astype(np.float64))
        scale = max(np.abs(ref_state[k]).max(), std.max())
        err = np.abs(ours_state[k].astype(np.float64) - ref_state[k]).max() / scale
        if not err <= tol:
            bad[k] = f"{err:.2e}"
    assert not bad, f"running means over {tol:g} of max(|mean|, std): {bad}"
    for k in ref_state:
        if k.endswith("num_batches_tracked"):
            assert int(ours_state[k]) == int(ref_state[k]), k
