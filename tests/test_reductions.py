"""The running states of ``bench.reductions``: the std (Welford's update) in float32 against float64, within the bound
the module states; the probe's two update paths alike; and every reduction's merge, over any partition of the
checkpoints and of the examples, against the state of the whole."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from bench.api import REDUCTIONS
from bench.reductions import Accumulator, merged

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


EXACT = {"count", "any", "last", "transitions"}  # merges with no arithmetic on floats


def values_for(reduction: str, checkpoints: int, n: int, generator: torch.Generator) -> torch.Tensor | None:
    """(checkpoints, n, ...) values of the kind the reduction reads: booleans, rows of several elements, or floats."""
    if reduction == "count":
        return None
    if reduction in ("any", "transitions"):
        return torch.rand(checkpoints, n, generator=generator) < 0.5
    shape = (checkpoints, n, 3) if reduction in ("std", "last") else (checkpoints, n)
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * 10 + 3


def fed(reduction: str, values: torch.Tensor | None, checkpoints: range, rows: range, dtype: torch.dtype) -> Accumulator:
    """The state of examples ``rows`` (numbered from 0 in the state) at ``checkpoints``, fed in batches of 5."""
    state = Accumulator(reduction, len(rows), dtype)
    for checkpoint in checkpoints:
        for start in range(0, len(rows), 5):
            index = torch.arange(start, min(start + 5, len(rows)))
            value = None if values is None else values[checkpoint, rows.start + index]
            state.update(index, value, checkpoint)
    return state


def ranges(total: int, cuts: list[int]) -> list[range]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < total}), total]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=60, deadline=None)
@given(reduction=st.sampled_from(sorted(REDUCTIONS)), checkpoints=st.integers(1, 7), n=st.integers(1, 23),
       checkpoint_cuts=st.lists(st.integers(1, 6), max_size=4), example_cuts=st.lists(st.integers(1, 22), max_size=4),
       dtype=st.sampled_from([torch.float64, torch.float32]), seed=st.integers(0, 2**31 - 1))
def test_merging_the_states_of_any_partition_gives_the_state_of_the_whole(reduction, checkpoints, n, checkpoint_cuts,
                                                                         example_cuts, dtype, seed):
    """Every reduction: the examples cut into consecutive ranges and the checkpoints into consecutive ranges, each
    piece's state computed alone and merged over the checkpoints in order, equals the whole's state of those
    examples, and their reduced values put end to end the whole's: bit for bit for counts, ``any``, ``last`` and
    ``transitions``; sums and moments to float tolerance (their additions come in another order)."""
    values = values_for(reduction, checkpoints, n, torch.Generator().manual_seed(seed))
    whole = fed(reduction, values, range(checkpoints), range(n), dtype)
    tolerance = {torch.float64: 1e-12, torch.float32: 1e-5}[dtype]
    results = []
    for rows in ranges(n, example_cuts):
        states = [fed(reduction, values, span, rows, dtype) for span in ranges(checkpoints, checkpoint_cuts)]
        state = states[0]
        for later in states[1:]:
            state = merged(state, later)
        assert state.seen == whole.seen and state.state.keys() == whole.state.keys()
        for name, expected in whole.state.items():
            if reduction in EXACT:
                assert torch.equal(state.state[name], expected[rows.start:rows.stop]), name
            else:
                torch.testing.assert_close(state.state[name], expected[rows.start:rows.stop], rtol=tolerance,
                                           atol=tolerance * 100)
        results.append(state.result())
    np.testing.assert_allclose(np.concatenate(results), whole.result(), rtol=0 if reduction in EXACT else tolerance,
                               atol=0 if reduction in EXACT else tolerance * 100)


def test_the_reduced_values_of_ranges_of_examples_put_end_to_end_are_the_wholes_bit_for_bit():
    """Over examples alone there is no arithmetic to reorder: sums and moments included, exact."""
    for reduction in REDUCTIONS:
        values = values_for(reduction, 4, 12, torch.Generator().manual_seed(1))
        whole = fed(reduction, values, range(4), range(12), torch.float64)
        parts = [fed(reduction, values, range(4), rows, torch.float64).result() for rows in ranges(12, [5, 9])]
        assert np.array_equal(np.concatenate(parts), whole.result()), reduction


def test_a_forgetting_event_across_the_cut_is_counted_once():
    """Hand-computed: learned, learned | forgotten, learned, forgotten, learned: two events, one of them at the cut."""
    events = torch.tensor([True, True, False, True, False, True])[:, None]
    earlier, later = fed("transitions", events, range(2), range(1), torch.float64), \
        fed("transitions", events, range(2, 6), range(1), torch.float64)
    assert merged(earlier, later).result().tolist() == [2]


def test_merges_refuse_states_out_of_order_or_of_another_kind():
    values = values_for("sum", 4, 6, torch.Generator().manual_seed(2))
    first, second = fed("sum", values, range(2), range(6), torch.float64), fed("sum", values, range(2, 4), range(6),
                                                                              torch.float64)
    with pytest.raises(ValueError, match="must end before"):
        merged(second, first)
    with pytest.raises(ValueError, match="cannot merge a sum state"):
        merged(first, fed("mean", values, range(2, 4), range(6), torch.float64))
