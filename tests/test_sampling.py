"""Samplers and commit schedules, on random scores: the rules of spec section 4."""

from __future__ import annotations

import pytest
import torch

from pdiff.sampling import SCHEDULES, SCORES, adjusted_probs, sample, scheduled_steps


def run_schedule(name, lengths, steps_ratio=1.0, tau=0.0, seed=0):
    """Drive a schedule with random scores; return per-step commit counts (steps, S)."""
    g = torch.Generator().manual_seed(seed)
    L = max(lengths)
    masked = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    steps = scheduled_steps(L, steps_ratio)
    carry = torch.zeros(len(lengths), dtype=torch.long)
    counts, step = [], 0
    while masked.any():
        conf = torch.rand(masked.shape, generator=g)
        commit, carry = SCHEDULES[name](masked, conf, conf, step, steps, tau, carry)
        assert not (commit & ~masked).any()
        counts.append(commit.sum(1).tolist())
        masked &= ~commit
        step += 1
        assert step < 10 * L
    return counts, steps


@pytest.mark.parametrize("lengths", [[5, 9, 3], [12], [1, 40]])
def test_reference_at_ratio_one_commits_one_each_step(lengths):
    """Reference schedule, steps_ratio 1: one commit per unfinished span per step."""
    counts, steps = run_schedule("reference", lengths)
    assert len(counts) == steps == max(lengths)
    for i, row in enumerate(counts):
        assert row == [1 if i < n else 0 for n in lengths]


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_reference_finishes_in_its_steps(ratio):
    """Below ratio 1 the reference schedule still finishes exactly on its last step."""
    counts, steps = run_schedule("reference", [20, 33], steps_ratio=ratio)
    assert len(counts) == steps and [sum(c) for c in zip(*counts)] == [20, 33]


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.9, 1.0])
def test_paper_threshold_never_finishes_earlier(tau):
    """The paper's threshold rule takes at least its scheduled steps; tau only adds steps."""
    counts, steps = run_schedule("paper", [16, 30, 7], steps_ratio=0.5, tau=tau)
    assert len(counts) >= steps
    if tau == 0.0:
        assert len(counts) == steps


def test_paper_threshold_high_tau_adds_steps():
    """With tau 1 only the best slot commits, so a span of m takes m steps."""
    counts, _ = run_schedule("paper", [16], steps_ratio=0.25, tau=1.0)
    assert len(counts) == 16


def test_adaptive_threshold_zero_is_one_step():
    """The adaptive rule at threshold 0 finishes every span in one step."""
    counts, _ = run_schedule("adaptive", [16, 30, 7], tau=0.0)
    assert counts == [[16, 30, 7]]


def test_adaptive_is_capped_by_steps():
    """At tau 1 the adaptive rule still ends by its step cap."""
    counts, steps = run_schedule("adaptive", [16, 30], steps_ratio=0.2, tau=1.0)
    assert len(counts) == steps == 6


def test_top_p_keeps_the_smallest_set_reaching_p():
    """top-p 0.5 over probabilities (0.4, 0.3, 0.2, 0.1) keeps the first two."""
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    probs = adjusted_probs(logits, 1.0, 0.5, 0)
    assert (probs[0] > 0).tolist() == [True, True, False, False]


@pytest.mark.parametrize("scale", [0.5, 3.0, 12.0])  # wide nuclei (the full sort) to narrow ones
def test_top_p_nucleus_is_the_one_a_full_sort_gives(scale):
    """The top-k shortcut drops exactly what sorting the whole vocabulary and cutting at p does."""
    torch.manual_seed(0)
    logits = torch.randn(64, 300) * scale
    logits[:, :5] += scale * 2  # some rows with a few dominant tokens
    kept = adjusted_probs(logits, 1.0, 0.9, 0) > 0
    probs = logits.softmax(-1)
    for row, keep in zip(probs, kept):
        ranked = row.sort(descending=True)
        n = int((ranked.values.cumsum(0) < 0.9).sum()) + 1  # smallest prefix with mass >= p
        assert set(keep.nonzero().flatten().tolist()) == set(ranked.indices[:n].tolist())


def test_top_k_and_greedy():
    """top-k 1 leaves one token; temperature 0 returns the argmax."""
    logits = torch.randn(5, 11)
    assert ((adjusted_probs(logits, 1.0, 1.0, 1) > 0).sum(-1) == 1).all()
    tokens, _ = sample(logits, 0.0, 1.0, 0, None)
    assert torch.equal(tokens, logits.argmax(-1))


def test_scores_order_sure_over_unsure():
    """Every score ranks a peaked distribution above a flat one."""
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    tokens = torch.tensor([0, 0])
    for name, fn in SCORES.items():
        s = fn(probs, tokens)
        assert s[0] > s[1], name


def test_nan_logits_give_a_distribution():
    """NaN logits never produce NaN probabilities."""
    probs = adjusted_probs(torch.full((2, 5), float("nan")), 0.7, 0.9, 0)
    assert torch.isfinite(probs).all() and torch.allclose(probs.sum(-1), torch.ones(2))
