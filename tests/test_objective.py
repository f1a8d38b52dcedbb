"""The hybrid objective (spec section 6): labels, gating and visibility on hand-made sequences."""

from __future__ import annotations

import random

import pytest
import torch

from pdiff.train import objective
from pdiff.train.loop import PRESETS_TRAIN, train
from pdiff.train.objective import IGNORE

ROUNDS = [[("intro", "Velora is old."), ("river", "It sits on the Osk.")], [("summary", "In short, Velora.")]]


@pytest.fixture()
def seq(engine):
    return objective.planned_sequence(engine.tok, "Describe Velora.", ROUNDS, random.Random(0),
                                      length_scale=4, max_pad=0)


def positions(seq, tag_id):
    return [i for i, t in enumerate(seq.ids) if t == tag_id]


def test_last_topic_end_predicts_the_terminator_after_the_blocks(engine, seq):
    """The last </topic> of a round is labelled with <sync/>, which sits after its blocks."""
    t = engine.tags
    sync = positions(seq, t.sync)[0]
    last_topic_end_round1 = max(i for i in positions(seq, t.topic_end) if i < sync)
    assert seq.ar_label[last_topic_end_round1] == t.sync
    assert any(seq.span_slot[last_topic_end_round1 + 1:sync])  # blocks in between
    assert seq.ar_label[max(positions(seq, t.topic_end))] == t.im_end


def test_sync_predicts_the_next_plan(engine, seq):
    """<sync/> carries the first token of the next plan as its label."""
    assert seq.ar_label[positions(seq, engine.tags.sync)[0]] == engine.tags.promise


def test_prompt_and_blocks_carry_no_ar_label(engine, seq):
    """Only the prompt's last token and the answer's AR tokens are AR-trained; blocks never are."""
    n_prompt = len(engine.tok.encode_prompt("Describe Velora."))
    labelled = [i for i, lab in enumerate(seq.ar_label) if lab != IGNORE]
    assert min(labelled) == n_prompt - 1
    blocks = [i for i, (lo, hi) in enumerate(zip(seq.lo, seq.hi)) if hi > 0]
    assert blocks and not set(blocks) & set(labelled)


def test_tags_are_never_span_slots(engine, seq):
    """<async> and </async> are never masked nor predicted; [PAD] fills spans to N x scale."""
    t = engine.tags
    for i in positions(seq, t.async_) + positions(seq, t.async_end):
        assert not seq.span_slot[i]
    for start, end in zip(positions(seq, t.async_), positions(seq, t.async_end)):
        assert (end - start - 1) % 4 == 0


def test_visibility_is_spec_section_3(engine, seq):
    """Sparse blocks see the prefix and themselves, not each other; <sync/> sees all of them."""
    batch = objective.collate([seq], engine.tags.mask, 0, torch.Generator().manual_seed(0))
    vis = batch.visibility[0, 0]
    a1, a2 = positions(seq, engine.tags.async_)[:2]
    sync = positions(seq, engine.tags.sync)[0]
    assert vis[a1 + 1, : a1].all() and vis[a1 + 1, a1:a2].all()  # prefix and own block
    assert not vis[a1 + 1, a2:sync].any()  # not the other block
    assert not vis[a1 - 1, a1]  # the plan does not see its round's blocks
    assert vis[sync, :sync + 1].all()


def test_diffusion_loss_is_gated_on_the_masked_target(engine, seq):
    """A diffusion label sits at p - 1 exactly when slot p is masked, with the original token and
    weight 1/t (the same t for the whole sequence); AR labels weigh 1."""
    for s in range(20):
        batch = objective.collate([seq], engine.tags.mask, 0, torch.Generator().manual_seed(s))
        ids, labels, w = batch.ids[0], batch.labels[0], batch.weights[0]
        masked = [p for p in range(len(ids)) if ids[p] == engine.tags.mask]
        diffusion = [q for q in range(len(ids)) if labels[q] != IGNORE and seq.ar_label[q] == IGNORE]
        assert diffusion == [p - 1 for p in masked]
        for p in masked:
            assert labels[p - 1] == seq.ids[p] and seq.span_slot[p]
        weights = {round(float(w[q]), 5) for q in diffusion}
        assert len(weights) <= 1 and all(x >= 1 for x in weights)
        assert all(float(w[q]) == 1.0 for q in range(len(ids)) if seq.ar_label[q] != IGNORE)


def test_pad_draws_change_with_the_rng(engine):
    """Each draw inserts a fresh 0..10 [PAD]s: over draws the promised lengths vary."""
    rng = random.Random(0)
    draw = lambda: objective.planned_sequence(engine.tok, "Describe.", ROUNDS, rng, 4)
    lengths = {len(draw().ids) for _ in range(20)}
    assert len(lengths) > 1


def test_ar_baseline_sequence_has_no_tags(engine):
    """The AR-only baseline trains on the plain answer, with no control tag but the final <|im_end|>."""
    seq = objective.ar_sequence(engine.tok, "Describe.", "Velora is old. It sits on the Osk.")
    answer = [t for t, lab in zip(seq.ids, seq.ar_label) if lab != IGNORE]
    assert not set(answer[1:]) & (engine.tags.all() - {engine.tags.im_end})
    assert seq.ar_label[-2] == engine.tags.im_end


@pytest.mark.parametrize("kind", ["pd", "ar"])
def test_smoke_training_reduces_the_loss(tmp_path, kind):
    """The smoke preset trains in seconds, lowers the loss and writes a loadable checkpoint."""
    import dataclasses

    from pdiff.loader import load_engine

    record = train(dataclasses.replace(PRESETS_TRAIN["smoke"], kind=kind), tmp_path, progress=False)
    assert record["loss_last"] < record["loss_first"] - 0.3
    assert load_engine(tmp_path).length_scale == PRESETS_TRAIN["smoke"].length_scale


def test_training_from_a_checkpoint_starts_from_its_weights_and_tokenizer(tmp_path):
    """`--init`: the weights and tokenizer are the checkpoint's (lr 0 leaves them unchanged),
    the record names where it started, and periodic saves write a loadable checkpoint."""
    import dataclasses

    from safetensors.torch import load_file

    smoke = PRESETS_TRAIN["smoke"]
    train(dataclasses.replace(smoke, kind="ar", steps=3), tmp_path / "ar", progress=False)
    record = train(dataclasses.replace(smoke, kind="pd", steps=4, lr=0.0), tmp_path / "pd",
                   progress=False, init=tmp_path / "ar", save_every=2)
    before = load_file(tmp_path / "ar" / "model.safetensors")
    after = load_file(tmp_path / "pd" / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    tokenizers = [(tmp_path / kind / "tokenizer.json").read_text() for kind in ("ar", "pd")]
    assert tokenizers[0] == tokenizers[1]
    assert record["init"]["folder"] == "ar" and record["init"]["kind"] == "ar"
    assert record["steps_done"] == 4 and record["kind"] == "pd"


def _plain_collate(seqs, mask_id, pad_id, generator):
    """The objective with one mask draw per sequence, written out plainly: the reference that
    `collate` with one copy and no stratification must equal exactly."""
    B, T = len(seqs), max(len(s.ids) for s in seqs)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    weights = torch.zeros(B, T)
    for b, s in enumerate(seqs):
        n = len(s.ids)
        ids[b, :n] = torch.tensor(s.ids)
        ar = torch.tensor(s.ar_label)
        labels[b, :n], weights[b, :n] = ar, (ar != IGNORE).float()
        t = objective.EPS + (1 - objective.EPS) * torch.rand((), generator=generator)
        masked = torch.tensor(s.span_slot) & (torch.rand(n, generator=generator) < t)
        where = masked.nonzero().squeeze(-1)
        labels[b, where - 1] = ids[b, where]
        weights[b, where - 1] = 1.0 / t
        ids[b, :n][masked] = mask_id
    return ids, labels, weights


def _two_sequences(engine):
    rng = random.Random(3)
    return [objective.planned_sequence(engine.tok, p, ROUNDS, rng, length_scale=4, max_pad=2)
            for p in ("Describe Velora.", "Write about the city Osk, please.")]


@pytest.mark.parametrize("seed", range(5))
def test_one_copy_is_exactly_the_plain_objective(engine, seed):
    """With one mask copy and no stratification, collate gives the plain objective's batch, draw
    for draw: the same ids, labels and weights, and positions 0..T-1 in every row."""
    seqs = _two_sequences(engine)
    batch = objective.collate(seqs, engine.tags.mask, 0, torch.Generator().manual_seed(seed))
    ids, labels, weights = _plain_collate(seqs, engine.tags.mask, 0, torch.Generator().manual_seed(seed))
    assert torch.equal(batch.ids, ids) and torch.equal(batch.labels, labels)
    assert torch.allclose(batch.weights, weights)
    assert torch.equal(batch.positions, torch.arange(ids.shape[1]).expand_as(ids))


def test_no_copy_sees_another(engine, seq):
    """With 3 mask copies, an added copy's tokens see the prefix of their round (the sequence
    itself, as one copy would) and their own block, never another added copy; no token of the
    sequence sees an added copy; each copy repeats its blocks' ids and positions."""
    batch = objective.collate([seq], engine.tags.mask, 0, torch.Generator().manual_seed(0), copies=3)
    copied, positions, copy = objective.with_copies(seq, 3)
    vis, n = batch.visibility[0, 0], len(seq.ids)
    copy = torch.tensor(copy)
    blocks = torch.tensor([h > 0 for h in copied.hi])
    assert (copy == 1).sum() == (copy == 2).sum() == sum(h > 0 for h in seq.hi) > 0
    for a, b in ((1, 2), (2, 1)):
        assert not vis[(copy == a) & blocks][:, (copy == b) & blocks].any()
    assert not vis[:n, n:len(copy)].any()
    for q in range(n, len(copy)):
        p = positions[q]
        assert copied.ids[q] == seq.ids[p] and batch.positions[0, q] == p
        assert vis[q, :seq.pre[p]].all() and vis[q, :n].sum() == seq.pre[p]  # the same prefix
        own = vis[q, n:len(copy)].nonzero().squeeze(-1) + n  # and exactly its own block's copy
        assert [positions[k] for k in own] == list(range(seq.lo[p], seq.hi[p]))


def test_a_copy_is_predicted_as_if_it_stood_in_place(engine, seq):
    """The logits at a copy of round 1's blocks equal the logits at the blocks of a one-copy
    sequence that holds that copy's masked ids in place: same positions, same view."""
    model = engine.model.eval()
    batch = objective.collate([seq], engine.tags.mask, 0, torch.Generator().manual_seed(1), copies=2)
    copied, positions, copy = objective.with_copies(seq, 2)
    first_round = [q for q in range(len(seq.ids)) if seq.hi[q] > 0 and seq.pre[q] == min(
        seq.pre[p] for p in range(len(seq.ids)) if seq.hi[p] > 0)]
    copy_of = {positions[q]: q for q in range(len(seq.ids), len(copy))}
    alone = batch.ids[:, :len(seq.ids)].clone()
    for p in first_round:
        alone[0, p] = batch.ids[0, copy_of[p]]
    single = objective.collate([seq], engine.tags.mask, 0, torch.Generator().manual_seed(1))
    with torch.no_grad():
        both = model(batch.ids, batch.positions, batch.visibility)
        ref = model(alone, torch.arange(len(seq.ids)), single.visibility)
    for p in first_round:
        assert torch.allclose(both[0, copy_of[p]], ref[0, p], atol=1e-4)


def test_copies_weigh_their_targets_by_one_over_t_copies(engine, seq):
    """Each copy's masked slots are labelled with the slot's own token, from the position before
    it in that copy, at weight 1 / (t copies); the denominator is that of one copy."""
    for s in range(5):
        one = objective.collate([seq], engine.tags.mask, 0, torch.Generator().manual_seed(s))
        batch = objective.collate([seq], engine.tags.mask, 0, torch.Generator().manual_seed(s), copies=2)
        copied, _, copy = objective.with_copies(seq, 2)
        assert batch.denominator == one.denominator
        for c in (0, 1):
            masked = [p for p in range(len(copy)) if copy[p] == c and batch.ids[0, p] == engine.tags.mask]
            assert all(batch.labels[0, p - 1] == copied.ids[p] for p in masked)
            ws = {round(float(batch.weights[0, p - 1]), 4) for p in masked}
            assert len(ws) <= 1 and all(w >= 0.5 for w in ws)


def test_stratified_levels_fall_one_in_each_slice():
    """Stratified t: n levels in (EPS, 1), exactly one in each n-th of the interval."""
    for n in (1, 4, 16):
        t = objective.mask_levels(n, torch.Generator().manual_seed(n), stratified=True)
        u = (t - objective.EPS) / (1 - objective.EPS)
        assert sorted((u * n).floor().long().tolist()) == list(range(n))


def test_stratified_batch_masks_at_spread_ratios(engine):
    """A stratified batch of 16 copies of one sequence masks from nearly none to nearly all slots."""
    one = objective.planned_sequence(engine.tok, "Describe Velora.", ROUNDS, random.Random(0), 4, max_pad=0)
    seqs = [one] * 16
    batch = objective.collate(seqs, engine.tags.mask, 0, torch.Generator().manual_seed(0), stratified=True)
    slots = sum(seqs[0].span_slot)
    ratios = sorted(float((batch.ids[b] == engine.tags.mask).sum()) / slots for b in range(16))
    assert ratios[0] < 0.25 and ratios[-1] > 0.75
