"""The running std (Welford's update) in float32 against float64: within the bound ``bench.reductions`` states."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from bench.reductions import Accumulator

U = 2.0 ** -24  # float32's unit roundoff
N, PIXELS, BATCH = 64, 49, 16


def welford(values: torch.Tensor, dtype: torch.dtype) -> Accumulator:
    """The ``std`` state of (checkpoints, examples, pixels) ``values``, fed batch by batch as the probe does."""
    state = Accumulator("std", values.shape[1], dtype)
    for checkpoint, value in enumerate(values):
        for start in range(0, len(value), BATCH):
            index = torch.arange(start, min(start + BATCH, len(value)))
            state.update(index, value[index], checkpoint)
    return state


def bound(values: torch.Tensor, exact: Accumulator) -> np.ndarray:
    """Per example, the stated bound on |score in float32 - score in float64|: each pixel's variance off by at most
    eps = (4k + 12) u M^2 (M its largest |value|), so its std by min(eps / std, sqrt(eps)) + u std, averaged."""
    k = len(values)
    eps = (4 * k + 12) * U * values.double().abs().amax(0) ** 2
    std = (exact.state["m2"] / k).sqrt().reshape(eps.shape)
    per_pixel = torch.minimum(eps / std, eps.sqrt()) + U * std
    return per_pixel.mean(1).numpy()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), checkpoints=st.integers(2, 10), scale=st.floats(1e-6, 1e2),
       steadiness=st.floats(1e-5, 1.0))
def test_float32_welford_scores_lie_within_the_stated_bound_of_float64(seed, checkpoints, scale, steadiness):
    """Gradient-like maps: each pixel a level plus a drift and noise over the checkpoints, down to nearly constant
    pixels (``steadiness`` small: a large mean against a small spread, the ill-conditioned case)."""
    generator = torch.Generator().manual_seed(seed)
    level = torch.randn(N, PIXELS, generator=generator) * scale
    spread = torch.rand(N, PIXELS, generator=generator) * steadiness * scale
    steps = torch.arange(checkpoints, dtype=torch.float32)[:, None, None]
    values = (level + spread * (0.3 * steps + torch.randn(checkpoints, N, PIXELS, generator=generator))).float()
    exact, half = welford(values, torch.float64), welford(values, torch.float32)
    difference = np.abs(half.result() - exact.result())
    assert (difference <= bound(values, exact)).all()


def test_float32_welford_keeps_the_ranking_of_realistic_scores():
    """Maps whose spread over 10 checkpoints is a tenth to twice their level, as VoG's gradients: the scores agree to
    a millionth and rank alike."""
    generator = torch.Generator().manual_seed(0)
    level = torch.randn(2000, PIXELS, generator=generator)
    spread = (0.1 + 1.9 * torch.rand(2000, PIXELS, generator=generator)) * level.abs()
    values = (level + spread * torch.randn(10, 2000, PIXELS, generator=generator)).float()
    exact, half = welford(values, torch.float64).result(), welford(values, torch.float32).result()
    assert np.max(np.abs(half - exact) / exact) < 1e-6
    assert spearmanr(exact, half).statistic > 0.99999


def test_consecutive_batches_updated_in_place_give_the_state_of_the_same_batches_gathered():
    """The probe's batches (runs of consecutive positions) take the in-place path; the same values given by shuffled
    positions take the gathered one: the states are bit-identical."""
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(4, N, PIXELS, generator=generator)
    shuffled = torch.randperm(N, generator=generator)
    for reduction in ("std", "sum", "count"):
        in_order, gathered = Accumulator(reduction, N), Accumulator(reduction, N)
        for checkpoint, value in enumerate(values):
            for start in range(0, N, BATCH):
                in_order.update(torch.arange(start, start + BATCH), value[start:start + BATCH], checkpoint)
                index = shuffled[start:start + BATCH]
                gathered.update(index, value[index], checkpoint)
        for name, state in in_order.state.items():
            assert torch.equal(state, gathered.state[name]), (reduction, name)
