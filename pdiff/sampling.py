"""Samplers and per-span commit schedules: small pure functions over tensors.

- `sample`: temperature, top-k and top-p sampling of every row at once, returning the adjusted
  distribution that the confidence scores are computed on (spec section 4.3).
- `top_candidates`: the model's k most likely tokens per row, for the token inspector.
- `SCORES`: how sure the model is at each masked slot (entropy, confidence, margin).
- `SCHEDULES`: how many slots each span commits this step. Vectorised over spans: (S, L) tensors,
  no Python loop over spans. The engine drives them; they know nothing about tags or models.
"""

from __future__ import annotations

import torch

NEG_INF = float("-inf")


def adjusted_probs(logits: torch.Tensor, temperature: float, top_p: float, top_k: int) -> torch.Tensor:
    """Temperature-, top-k- and top-p-adjusted distribution. (N, V) -> (N, V).

    Non-finite logits (NaN, +inf) are made safe first: NaN counts as impossible, so a broken
    model gives a valid distribution rather than a crash downstream.
    """
    logits = torch.nan_to_num(logits.float(), nan=NEG_INF, posinf=torch.finfo(torch.float32).max)
    if temperature > 0:
        logits = logits / temperature
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, NEG_INF)
    if top_p < 1.0:
        logits = logits.masked_fill(outside_nucleus(logits, top_p), NEG_INF)
    all_banned = torch.isneginf(logits).all(-1, keepdim=True)  # rows with nothing left
    logits = torch.where(all_banned, torch.zeros_like(logits), logits)
    return logits.softmax(-1)


def outside_nucleus(logits: torch.Tensor, top_p: float, look: int = 128) -> torch.Tensor:
    """(N, V) bool: the tokens top-p drops (all but the smallest most-likely set reaching top_p).

    Each row's `look` most likely tokens are examined first (a top-k is several times cheaper
    than sorting the vocabulary); only rows whose nucleus is wider are sorted whole. Both give
    the same set. With the bundled model, 90% of denoise rows stop within the first 128.
    """
    def drop(ranked):  # (values, indices), descending -> (n, V) bool
        top, order = ranked
        out = torch.ones(len(top), logits.shape[-1], dtype=torch.bool, device=top.device)
        return out.scatter(-1, order, top.cumsum(-1) - top >= top_p)

    probs = logits.softmax(-1)  # (N, V)
    top = probs.topk(min(look, probs.shape[-1]), dim=-1)  # (N, k), descending
    out = drop(top)
    # Rows whose nucleus reaches past the first k: the one read of the device here.
    wide = (top.values.sum(-1) < top_p).nonzero().squeeze(-1)  # (W,)
    if len(wide):
        out[wide] = drop(probs[wide].sort(dim=-1, descending=True))
    return out


def sample(
    logits: torch.Tensor,  # (N, V)
    temperature: float,
    top_p: float,
    top_k: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row. Returns (tokens (N,), adjusted probs (N, V)).

    Temperature 0 is greedy: the argmax of the (top-p filtered) distribution.
    """
    probs = adjusted_probs(logits, temperature, top_p, top_k)
    if temperature == 0:
        return probs.argmax(-1), probs
    # torch.multinomial's own one-sample draw, argmax(p / q) with q ~ Exp(1): the same tokens
    # from the same generator state, without its validity checks, which read the device twice
    # per call (adjusted_probs already gives finite rows that sum to 1). On the generator's device.
    p = probs.to(generator.device) if generator else probs
    drawn = (p / torch.empty_like(p).exponential_(1, generator=generator)).argmax(-1)  # (N,)
    return drawn.to(probs.device), probs


def top_candidates(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most likely tokens of the model's own distribution (temperature 1, no top-p or
    top-k), for the token inspector. (N, V) -> (probs (N, k), ids (N, k)), descending.

    The same NaN-safe softmax as `adjusted_probs`; no randomness, so sampling is untouched."""
    probs = adjusted_probs(logits, 0.0, 1.0, 0)  # (N, V)
    top = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return top.values, top.indices


def ban(logits: torch.Tensor, ids: torch.Tensor | list[int]) -> torch.Tensor:
    """A copy of `logits` (..., V) in which the tokens `ids` can never be drawn. index_fill takes
    the value as a kernel argument; on one H200 the indexed assignment it replaces
    (`logits[..., ids] = NEG_INF`) was a synchronising CUDA operation in every denoise step."""
    return logits.index_fill(-1, torch.as_tensor(ids, dtype=torch.long, device=logits.device), NEG_INF)


def score_entropy(probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Negative entropy of the distribution (the released default, pd_entropy)."""
    return (probs * torch.log(probs.clamp_min(1e-30))).sum(-1)


def score_confidence(probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Probability of the sampled token."""
    return probs.gather(-1, tokens[..., None]).squeeze(-1)


def score_margin(probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 probability."""
    top2 = probs.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


SCORES = {"entropy": score_entropy, "confidence": score_confidence, "margin": score_margin}


def scheduled_steps(longest_span: int, steps_ratio: float) -> int:
    """steps = int(max span length x steps_ratio), at least 1 (spec section 4.3)."""
    return max(1, int(longest_span * steps_ratio))


def _top_ranked(scores: torch.Tensor, masked: torch.Tensor, quota: torch.Tensor) -> torch.Tensor:
    """Per row, the `quota` best-scored masked slots. (S, L), (S, L), (S,) -> (S, L) bool."""
    ranked = scores.masked_fill(~masked, NEG_INF)
    order = ranked.argsort(dim=1, descending=True, stable=True)
    rank = order.argsort(dim=1)  # rank of each slot within its span, 0 = best
    return (rank < quota[:, None]) & masked


def commit_reference(masked, scores, conf, step, steps, tau, carry):
    """Reference pd_entropy schedule: t = linspace(1, 1e-3, steps+1); commit
    min(m, max(1, floor(m (1 - t[i+1]/t[i])))) per span, and all that remain on the last step."""
    m = masked.sum(1)  # (S,)
    if step >= steps - 1:
        quota = m
    else:
        t_now = 1 - step * (1 - 1e-3) / steps
        t_next = 1 - (step + 1) * (1 - 1e-3) / steps
        quota = torch.clamp(torch.floor(m * (1 - t_next / t_now)).long(), min=1)
        quota = torch.minimum(quota, m)
    return _top_ranked(scores, masked, quota), carry


def commit_paper(masked, scores, conf, step, steps, tau, carry):
    """Reference pd_confidence_threshold: quota max(1, m // (steps - i)) plus last step's rejects;
    the best slot always commits, the others only if their confidence >= tau. Rejects carry over,
    and a reject on the last step adds a step, so tau only ever adds steps."""
    m = masked.sum(1)
    quota = torch.minimum(torch.clamp(m // max(1, steps - step), min=1) + carry, m)
    chosen = _top_ranked(scores, masked, quota)
    best = _top_ranked(scores, masked, torch.ones_like(quota))
    commit = chosen & ((conf >= tau) | best)
    return commit, quota - commit.sum(1)


def commit_adaptive(masked, scores, conf, step, steps, tau, carry):
    """Fast-dLLM rule: commit every slot with confidence >= tau, at least the best one per
    unfinished span; steps_ratio caps the steps, so the last one commits all that remain."""
    if step >= steps - 1:
        return masked.clone(), carry
    best = _top_ranked(scores, masked, torch.ones_like(carry))
    return masked & ((conf >= tau) | best), carry


# name -> rule; every rule maps (masked, scores, conf, step, steps, tau, carry) -> (commit, carry)
SCHEDULES = {"reference": commit_reference, "paper": commit_paper, "adaptive": commit_adaptive}

