"""The hybrid training objective of Planned Diffusion (spec section 6), with pdiff's fixes.

One sequence holds the prompt, plan 1, its span blocks, `<sync/>`, plan 2, its blocks, and a
final `<|im_end|>`. AR positions (the prompt's last token onward, blocks skipped) predict the
next AR token with cross-entropy, weight 1: so the last `</topic>` of a round predicts the
terminator that sits after the blocks. Span slots are masked with probability t ~ U(eps, 1),
drawn once per sequence, and a masked slot p is predicted from the output at p - 1 (Dream's
shift), weighted 1/t. The loss is gated on the masked *target*, and `<async>`/`</async>` are
never masked nor predicted. The visibility is exactly spec section 3 (pdiff.layout's rule).
Two options give more signal per forward: several independent mask draws of the span blocks in
one sequence (`with_copies`: each copy sees the prefix and itself, at its blocks' positions),
and t stratified over the batch (`mask_levels`); with neither, the batch is the plain one.

This module turns examples into tensors and computes the loss; it knows nothing about the
training loop, optimisers or where the data comes from.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pdiff.layout import block_rule, causal_rule, visible
from pdiff.tokenizer import Tokenizer

IGNORE = -100
EPS = 1e-3


@dataclass(frozen=True)
class Sequence:
    """One training sequence before masking: ids, visibility rule, and who is trained how."""

    ids: list[int]
    pre: list[int]  # visibility: k < pre[q] or lo[q] <= k < hi[q] (pdiff.layout)
    lo: list[int]
    hi: list[int]
    ar_label: list[int]  # next AR token at AR positions, IGNORE elsewhere
    span_slot: list[bool]  # content slot of a span block: masked with probability t


class SequenceBuilder:
    """Appends tokens with their visibility (pdiff.layout's rule) and labels."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.pre: list[int] = []
        self.lo: list[int] = []
        self.hi: list[int] = []
        self.span_slot: list[bool] = []
        self.ar_positions: list[int] = []  # in AR-stream order, blocks skipped
        self.ar_trained: list[bool] = []  # False for the prompt, whose next token is given

    def causal(self, ids: list[int], trained: bool = True) -> None:
        start = len(self.ids)
        self._append(ids, causal_rule(start, len(ids)), [False] * len(ids))
        self.ar_positions += range(start, start + len(ids))
        self.ar_trained += [trained] * len(ids)

    def blocks(self, blocks: list[list[int]], dense: bool) -> None:
        """Blocks of one round; the first and last id of each block are its tags (never masked)."""
        rule = block_rule(len(self.ids), [len(b) for b in blocks], dense)
        self._append([t for b in blocks for t in b], rule,
                     [0 < i < len(b) - 1 for b in blocks for i in range(len(b))])

    def _append(self, ids: list[int], rule: tuple[list[int], list[int], list[int]],
                span_slot: list[bool]) -> None:
        pre, lo, hi = rule
        self.ids += ids
        self.pre += pre
        self.lo += lo
        self.hi += hi
        self.span_slot += span_slot

    def build(self) -> Sequence:
        labels = [IGNORE] * len(self.ids)
        stream = self.ar_positions
        for here, nxt, trained in zip(stream, stream[1:], self.ar_trained):
            if trained:
                labels[here] = self.ids[nxt]  # skips the blocks between them
        return Sequence(self.ids, self.pre, self.lo, self.hi, labels, self.span_slot)


def planned_sequence(tok: Tokenizer, prompt: str, rounds, rng: random.Random,
                     length_scale: int, dense: bool = False, max_pad: int = 10) -> Sequence:
    """prompt | plan | blocks | <sync/> | plan | blocks | <|im_end|>, with fresh [PAD] draws.

    `rounds` is a list of rounds of (topic, text). Each span gets 0..max_pad [PAD] drawn now,
    then is filled with [PAD] up to the promised N x length_scale: so N changes with the draw.
    """
    t = tok.tags
    seq = SequenceBuilder()
    prompt_ids = tok.encode_prompt(prompt)
    seq.causal(prompt_ids[:-1], trained=False)
    seq.causal(prompt_ids[-1:])  # the last prompt token predicts the first plan token
    for r, sections in enumerate(rounds):
        plan, blocks = [], []
        for topic, text in sections:
            body = tok.encode_plain(text)
            units = math.ceil((len(body) + rng.randint(0, max_pad)) / length_scale)
            units = max(units, 1)
            body += [t.pad] * (units * length_scale - len(body))
            plan += [t.promise, *tok.encode_plain(f"{topic} {units}"), t.topic_end]
            blocks.append([t.async_, *body, t.async_end])
        seq.causal(plan)
        seq.blocks(blocks, dense)
        seq.causal([t.sync if r + 1 < len(rounds) else t.im_end])
    return seq.build()


def ar_sequence(tok: Tokenizer, prompt: str, answer: str) -> Sequence:
    """The AR-only baseline: prompt | plain answer | <|im_end|>, causal, tags stripped."""
    seq = SequenceBuilder()
    prompt_ids = tok.encode_prompt(prompt)
    seq.causal(prompt_ids[:-1], trained=False)
    seq.causal(prompt_ids[-1:] + tok.encode_plain(answer) + [tok.tags.im_end])
    return seq.build()


@dataclass
class Batch:
    ids: torch.Tensor  # (B, T) with masks applied
    visibility: torch.Tensor  # (B, 1, T, T) bool
    labels: torch.Tensor  # (B, T): the target predicted from this position's output
    weights: torch.Tensor  # (B, T): 1 for AR targets, 1/t for masked span targets, 0 elsewhere
    denominator: float  # AR targets + span slots: fixed, whatever the mask draw
    positions: torch.Tensor  # (B, T) RoPE positions: a mask copy repeats its blocks' positions


def with_copies(s: Sequence, copies: int) -> tuple[Sequence, list[int], list[int]]:
    """`s` with copies - 1 more copies of every round's span blocks appended after its end, the
    RoPE position of each id, and which copy each id belongs to (0: the sequence itself).

    A copy sits at new indices but keeps its blocks' positions, the prefix they see (`pre`) and
    its own block ([lo, hi) shifted with it): so it sees the prefix and itself, no other copy
    sees it, and no AR token does (they all end before it)."""
    n = len(s.ids)
    positions, copy = list(range(n)), [0] * n
    if copies == 1:
        return s, positions, copy
    ids, pre, lo, hi = list(s.ids), list(s.pre), list(s.lo), list(s.hi)
    blocks = [q for q in range(n) if s.hi[q] > 0]  # span block tokens, rounds in order
    starts = dict.fromkeys(s.pre[q] for q in blocks)  # each round's first block position
    rounds = [[q for q in blocks if s.pre[q] == start] for start in starts]
    for c in range(1, copies):
        for members in rounds:
            shift = len(ids) - members[0]  # a round's blocks are contiguous
            for q in members:
                ids.append(s.ids[q])
                pre.append(s.pre[q])
                lo.append(s.lo[q] + shift)
                hi.append(s.hi[q] + shift)
                positions.append(q)
                copy.append(c)
    extra = len(ids) - n
    copied = Sequence(ids, pre, lo, hi, list(s.ar_label) + [IGNORE] * extra,
                      list(s.span_slot) + [s.span_slot[p] for p in positions[n:]])
    return copied, positions, copy


def mask_levels(n: int, generator: torch.Generator, stratified: bool) -> torch.Tensor:
    """n mask probabilities t in [EPS, 1): independent U(EPS, 1), or stratified (one draw in each
    of n equal slices of the interval, in random order: the batch covers every mask ratio)."""
    if not stratified:
        return EPS + (1 - EPS) * torch.rand(n, generator=generator)
    u = (torch.arange(n) + torch.rand(n, generator=generator)) / n
    return EPS + (1 - EPS) * u[torch.randperm(n, generator=generator)]


def collate(seqs: list[Sequence], mask_id: int, pad_id: int, generator: torch.Generator,
            copies: int = 1, stratified: bool = False) -> Batch:
    """Pad, draw t per block copy, mask span slots, and place labels on the predicting position.

    With `copies` > 1 every sequence carries that many independent mask draws of its span
    blocks (`with_copies`); each copy's diffusion targets weigh 1 / (t copies), so the loss
    is the same estimate as with one copy, from more draws per prefix. With `stratified` the
    batch's t are spread over (EPS, 1) (`mask_levels`). With one copy and no stratification the
    random draws are exactly those of one t and one mask per sequence, in order."""
    built = [with_copies(s, copies) for s in seqs]
    B, T = len(seqs), max(len(c.ids) for c, _, _ in built)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    pre = torch.arange(1, T + 1).repeat(B, 1)  # padding is causal and trains nothing
    lo = torch.zeros(B, T, dtype=torch.long)
    hi = torch.zeros(B, T, dtype=torch.long)
    positions = torch.arange(T).repeat(B, 1)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    weights = torch.zeros(B, T)
    levels = mask_levels(B * copies, generator, True) if stratified else None
    denominator = 0.0
    for b, ((s, pos, copy), original) in enumerate(zip(built, seqs)):
        n = len(s.ids)
        ids[b, :n] = torch.tensor(s.ids)
        pre[b, :n], lo[b, :n], hi[b, :n] = torch.tensor(s.pre), torch.tensor(s.lo), torch.tensor(s.hi)
        positions[b, :n] = torch.tensor(pos)
        ar = torch.tensor(s.ar_label)
        labels[b, :n] = ar
        weights[b, :n] = (ar != IGNORE).float()
        denominator += float((ar != IGNORE).sum()) + sum(original.span_slot)
        slot, copy = torch.tensor(s.span_slot), torch.tensor(copy)
        for c in range(copies):
            # Diffusion: t ~ U(eps, 1) once per copy; slot p masked with probability t.
            t = levels[b * copies + c] if stratified else mask_levels(1, generator, False)[0]
            masked = slot & (copy == c) & (torch.rand(n, generator=generator) < t)  # (n,)
            where = masked.nonzero().squeeze(-1)  # targets p, predicted from p - 1 (Dream shift)
            labels[b, where - 1] = ids[b, where]
            weights[b, where - 1] = 1.0 / (t * copies)
            ids[b, :n][masked] = mask_id
    k = torch.arange(T)[None, None, :]  # (1, 1, T)
    vis = visible(k, pre[..., None], lo[..., None], hi[..., None])  # (B, T, T)
    return Batch(ids, vis[:, None], labels, weights, max(1.0, denominator), positions)


def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Weighted cross-entropy over AR targets and masked span targets (an unbiased estimate
    of the per-token loss: E[masked / t] counts every slot once)."""
    ce = F.cross_entropy(logits.flatten(0, 1).float(), batch.labels.flatten(), ignore_index=IGNORE,
                         reduction="none").view_as(batch.weights)  # (B, T)
    return (ce * batch.weights).sum() / batch.denominator
