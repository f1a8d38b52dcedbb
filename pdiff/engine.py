"""The planned-diffusion loop, written once, top to bottom: 1) plan, 2) scaffold, 3) denoise, 4) sync.

`Engine.generate(prompt, config)` is a generator of typed events (pdiff.events). It dispatches on
the mode to one of three loops: `_planned`, the method, round after round; `_autoregressive`, the
baseline that decodes causally with no tags; and `_diffusion`, the baseline that fills one canvas
of masks after the prompt. The engine knows nothing about displays: the CLI, the app, the
benchmark and the tests all read the same stream.

Caching (spec section 5) is exact: the prompt and plan are cached causally; a denoise step
recomputes only the blocks that still changed (all blocks of the round when dense), writes them
after the cached prefix without committing, and the forward that re-inserts `<sync/>` refreshes
the finished blocks with it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import torch

from pdiff import sampling
from pdiff.config import DECODING_KNOBS, ConfigError, GenerationConfig, upgrade_schedule
from pdiff.events import (
    TOP_CANDIDATES,
    Candidate,
    DenoiseStep,
    Event,
    Finished,
    Notice,
    PlanItem,
    PlanToken,
    RoundEnd,
    SpansOpened,
    Started,
    TextToken,
)
from pdiff.layout import Layout
from pdiff.model import DreamModel
from pdiff.plan import (
    ParsedItem,
    PlanError,
    PlanRound,
    check_user_plan,
    fit_budget,
    parse_plan_ids,
)
from pdiff.state import Fill, Proposal, Round, Run, StepRead
from pdiff.tokenizer import Tokenizer


class PromptError(ValueError):
    """The prompt cannot be used; the message says what to change."""


class Engine:
    """A loaded model and tokenizer, ready to generate."""

    def __init__(self, model: DreamModel, tokenizer: Tokenizer, name: str = "model",
                 length_scale: int = 10, decoding: dict | None = None) -> None:
        self.model = model.eval()
        self.length_scale = length_scale  # the unit this checkpoint was trained with
        # The checkpoint's default schedule knobs (its measured best point), under any given knob;
        # a checkpoint written before `schedule` was a knob spells it threshold None/threshold_rule.
        self.decoding = upgrade_schedule(decoding or {})
        unknown = sorted(set(self.decoding) - set(DECODING_KNOBS))
        if unknown:
            raise ConfigError(f"the checkpoint's decoding defaults name unknown knobs: {', '.join(unknown)}")
        GenerationConfig(**self.decoding)  # validated now, not at the first request
        self.tok = tokenizer
        self.tags = tokenizer.tags
        self.name = name
        self.device = model.lm_head.weight.device
        self.threads = None  # a pdiff.threads.ThreadPolicy (CPU); None leaves torch's default
        self.graphs = None  # a pdiff.graphs.Graphs: static-shape forwards (captured on CUDA)
        t = self.tags
        span_bans = [t.mask, t.async_, t.async_end, t.promise, t.topic_end, t.sync]
        # Index tensors on the model's device: banning then copies nothing from the host.
        on_device = lambda ids: torch.tensor(ids, dtype=torch.long, device=self.device)
        self._plan_bans = on_device(list(t.banned_in_plan()))
        self._span_bans = on_device(span_bans)
        self._ar_bans = on_device(span_bans + [t.pad])

    @property
    def context(self) -> int:
        return self.model.config.max_position_embeddings

    @property
    def net(self):
        """What runs the forwards and owns their cache: the static graphs, else the model."""
        return self.graphs or self.model

    # --- public API ---------------------------------------------------------------------------

    def generate(self, prompt: str, config: GenerationConfig) -> Iterator[Event]:
        """Stream one run's events; the last one is always Finished."""
        run = self._start(prompt, config)  # validates before the first event
        try:
            yield Started(config.mode, tuple(run.layout.tokens()), run.prompt_len)
            if run.budget_end < run.prompt_len + config.max_new_tokens:
                yield Notice("context", (
                    f"the model's context of {self.context} tokens leaves room for "
                    f"{run.room} new tokens, fewer than max_new_tokens={config.max_new_tokens}"))
            run.clock("plan")
            loop = {"planned": self._planned, "autoregressive": self._autoregressive,
                    "diffusion": self._diffusion}[config.mode]
            for event in loop(run):
                phase = run.phase
                run.clock(None)  # paused while the consumer holds the event: not engine time
                yield event
                run.clock(phase)
            run.clock(None)
            yield run.finished()
        finally:
            run.cache = None  # released when the run ends or the consumer closes the stream

    def config(self, **knobs) -> GenerationConfig:
        """A GenerationConfig of `knobs` with this checkpoint's length_scale; the schedule knobs
        left out are the reference schedule's."""
        return GenerationConfig(**{"length_scale": self.length_scale, **knobs})

    def default_config(self, **knobs) -> GenerationConfig:
        """As `config`, but the schedule knobs left out are this checkpoint's default schedule
        (`decoding`, its measured best point; the reference schedule where it has none)."""
        return self.config(**{**self.decoding, **knobs})

    def generate_text(self, prompt: str, config: GenerationConfig) -> Finished:
        """Non-streaming: run the stream to its end and return the Finished event."""
        return deque(self.generate(prompt, config), maxlen=1)[0]  # keeps only the last event

    # --- set-up -------------------------------------------------------------------------------

    def _start(self, prompt: str, config: GenerationConfig) -> Run:
        if not isinstance(config, GenerationConfig):
            raise ConfigError("config must be a GenerationConfig")
        if not isinstance(prompt, str) or not prompt.strip():
            raise PromptError("the prompt is empty; type an instruction")
        forced = check_user_plan(config.plan, config.max_span_units)
        ids = self.tok.encode_prompt(prompt, config.chat_template)
        if len(ids) >= self.context:
            raise PromptError(
                f"the prompt is {len(ids)} tokens; this model reads at most {self.context - 1}. "
                "Shorten the prompt"
            )
        capacity = min(len(ids) + config.max_new_tokens, self.context)
        layout = Layout(capacity, self.device)
        layout.append_causal(ids)
        generator = torch.Generator(device=self.device).manual_seed(config.seed)
        cache = self.net.new_cache(capacity) if config.use_cache else None
        return Run(config, layout, cache, generator, len(ids), capacity, list(forced))

    # --- the three loops ----------------------------------------------------------------------

    def _planned(self, run: Run) -> Iterator[Event]:
        """Planned diffusion: rounds of plan, scaffold, denoise and sync, until a plan ends."""
        for index in range(run.config.max_rounds):
            run.counts["rounds"] += 1
            # 1) plan: autoregressive, or the user's plan for this round verbatim
            items, terminator = yield from self._plan(run, index)
            if not items:
                yield from self._no_plan(run, index, terminator)
                return
            # 2) scaffold: one <async> masks </async> block per item, within the budget
            rd = yield from self._scaffold(run, index, items, terminator)
            if rd is None:
                return
            # 3) denoise every span of the round in parallel
            yield from self._denoise(run, rd)
            # 4) sync: plan again after <sync/>, or stop
            if not (yield from self._sync(run, rd)):
                return

    def _autoregressive(self, run: Run) -> Iterator[Event]:
        """The AR baseline: text tokens after the prompt, no tags."""
        yield from self._write_ar(run, self._ingest(run, []), self._ar_bans)

    def _diffusion(self, run: Run) -> Iterator[Event]:
        """Plain-diffusion baseline: one canvas of masks after the prompt, no plan."""
        cfg, lay, tags = run.config, run.layout, self.tags
        p = lay.length
        if run.cache is not None and p > 1:
            # Cache the prompt but its last token, whose output predicts the first slot: it is
            # recomputed with the canvas, so every step has its prediction at hand.
            run.counts["prefill_forwards"] += 1
            self._forward(run, torch.arange(p - 1, device=self.device), 0, commit=True)
        n = run.room
        lay.append_blocks([[tags.mask] * n], dense=False)
        item = PlanItem("answer", 0, n)
        run.plan.append((item,))
        run.counts.update(spans=1, rounds=1)
        slots = torch.arange(p, p + n, device=self.device)[None, :]  # (1, N)
        steps = sampling.scheduled_steps(n, cfg.steps_ratio)
        yield SpansOpened(0, (item,), "end", steps)
        start = p - 1 if run.cache is not None else 0
        yield from self._fill(run, Round(0, (item,), "end", [(p - 1, p + n)], slots, steps, start))
        ids = lay.tokens(p)
        ends = [i for i, t in enumerate(ids) if t in self.tok.eos_ids]  # Dream pads with eos
        text = self.tok.decode([t for t in ids[: ends[0] if ends else n] if t != tags.pad]).strip()
        run.pieces.append(text)
        yield RoundEnd(0, (text,))

    # 1) plan ---------------------------------------------------------------------------------

    def _plan(self, run: Run, index: int):
        """The round's items and how its plan ended. After a sync, the plan's first forward
        re-inserts `<sync/>` and, with a cache, refreshes the finished blocks with it."""
        resume = [self.tags.sync] if index else []
        if run.forced:
            return (yield from self._force_plan(run, index, run.forced.pop(0), resume))
        return (yield from self._sample_plan(run, index, resume))

    def _sample_plan(self, run: Run, rnd: int, resume: list[int]):
        """Decode plan tokens until <sync/> or <|im_end|>, with tags banned and a cap."""
        cfg, tags = run.config, self.tags
        ids: list[int] = []
        logits = self._ingest(run, resume)
        terminator = "end"
        while True:
            tok, _ = self._sample_one(run, logits, self._plan_bans)
            run.counts["plan_tokens"] += 1
            yield PlanToken(rnd, tok, self.tok.piece(tok), False)
            if tok == tags.sync or tok in self.tok.eos_ids:
                terminator = "sync" if tok == tags.sync else "end"
                break
            if len(ids) >= cfg.max_plan_tokens or run.room < 4:
                # A runaway plan: this token is dropped like a terminator, and the round is last.
                cap = "max_plan_tokens" if len(ids) >= cfg.max_plan_tokens else "max_new_tokens"
                yield Notice("runaway_plan", (
                    f"the plan of round {rnd + 1} ran to {cap} without ending; "
                    "its complete items are used and this is the last round"))
                terminator = "runaway"
                break
            ids.append(tok)
            logits = self._ingest(run, [tok])
        run.last_logits = logits
        items, problems = parse_plan_ids(ids, tags, self.tok.decode, cfg.max_span_units)
        for problem in problems:
            yield Notice("malformed_item", problem)
        if not items:
            tags_ = self.tags.all()  # what it wrote is text; stray tags are not
            run.pieces.append(self.tok.decode([i for i in ids if i not in tags_]).strip())
        return items, terminator

    def _force_plan(self, run: Run, rnd: int, plan: PlanRound, resume: list[int]):
        """Use a user's plan round verbatim. Topics are encoded as plain text, never as tags."""
        tags, ids = self.tags, []
        for topic, units in plan.items:
            ids += [tags.promise, *self.tok.encode_plain(f"{topic} {units}"), tags.topic_end]
        if run.room < len(resume) + len(ids) + 3:
            raise PlanError(
                f"the plan needs more tokens than max_new_tokens={run.config.max_new_tokens} allows")
        for tok in ids + [tags.sync if plan.terminator == "sync" else tags.im_end]:
            yield PlanToken(rnd, tok, self.tok.piece(tok), True)
        self._append_known(run, resume + ids)
        return [ParsedItem(topic, units) for topic, units in plan.items], plan.terminator

    def _no_plan(self, run: Run, rnd: int, terminator: str):
        """A round without a usable item: say so, and write the rest of the answer as text."""
        yield Notice("no_plan", (
            f"round {rnd + 1} has no usable plan item; the rest of the answer was "
            "written autoregressively"))
        if terminator != "end":
            # Resample the dropped terminator's slot as text: one forward, one token.
            run.counts["plan_tokens"] -= 1
            yield from self._write_ar(run, run.last_logits, self._ar_bans)

    # 2) scaffold -----------------------------------------------------------------------------

    def _scaffold(self, run: Run, rnd: int, items, terminator: str):
        """Fit the items to the budget, append their blocks of masks, and open the spans.

        Returns the Round, or None when no span fits."""
        items, problem = fit_budget(items, run.config.length_scale, run.room, run.config.max_new_tokens)
        if problem:
            yield Notice("budget", problem)
        if not items:
            return None
        cfg, tags = run.config, self.tags
        blocks = [[tags.async_] + [tags.mask] * it.length + [tags.async_end] for it in items]
        ranges = run.layout.append_blocks(blocks, dense=cfg.attention == "dense")
        run.plan.append(tuple(items))
        run.counts["spans"] += len(items)
        longest = max(it.length for it in items)
        # (S, L) positions, built on the device: a host tensor copied over synchronises on CUDA
        slots = torch.full((len(items), longest), -1, dtype=torch.long, device=self.device)
        for s, (a, b) in enumerate(ranges):
            slots[s, : b - a - 2] = torch.arange(a + 1, b - 1, device=self.device)
        steps = sampling.scheduled_steps(longest, cfg.steps_ratio)
        yield SpansOpened(rnd, tuple(items), terminator, steps)
        start = ranges[0][0] if run.cache is not None else 0
        return Round(rnd, tuple(items), terminator, ranges, slots, steps, start)

    # 3) denoise ------------------------------------------------------------------------------

    def _denoise(self, run: Run, rd: Round):
        """Fill every span of the round, then report the spans' clean texts."""
        yield from self._fill(run, rd)
        pad = self.tags.pad
        texts = [self.tok.decode([t for t in run.layout.tokens(a + 1, b - 1) if t != pad]).strip()
                 for a, b in rd.ranges]
        run.pieces += texts
        yield RoundEnd(rd.index, tuple(texts))

    def _fill(self, run: Run, rd: Round):
        """Commit every masked slot (S, L) step by step, per the configured schedule.

        The blocks at `rd.ranges` are recomputed after the cached [0, rd.start). A step reads the
        device once, in 4), for the snapshot its event is built from. That snapshot also tells the
        host how many slots each span still has masked, so nothing else in a step waits on it.
        """
        cfg = run.config
        run.clock("denoise")
        rule = sampling.SCHEDULES[cfg.schedule]
        fill = Fill.of(rd, run.layout.length)
        read = None
        step = 0
        while any(fill.left):
            # 1) propose a token at every masked slot, with its score and confidence
            proposal = self._propose(run, rd, fill)
            # 2) the schedule's rule: which of them commit this step
            commit, fill.carry = rule(fill.masked, proposal.scores, proposal.conf, step, rd.steps,
                                      cfg.threshold, fill.carry)  # (S, L) bool
            # 3) commit them into the sequence
            fill.commit(run.layout, proposal, commit)
            run.counts["denoise_steps"] += 1
            # 4) read the step: the device's one copy to the host, and the step's event
            read = fill.read(run.layout, commit, proposal)
            yield self._step_event(rd.index, step, fill.lengths, read)
            step += 1
        run.clock("plan")
        if read is not None:
            run.confidences += [c for row, n in zip(read.confidence, fill.lengths) for c in row[:n]]

    def _propose(self, run: Run, rd: Round, fill: Fill) -> Proposal:
        """One forward over the blocks that can still change, and a sampled token at every
        masked slot with its unmasking score, confidence and top candidates, placed (S, L)."""
        cfg, lay, dev = run.config, run.layout, self.device
        if run.cache is None:
            seg = torch.arange(lay.length, device=dev)
        elif cfg.attention == "dense":  # every block sees every other: recompute them all
            seg = torch.cat(fill.blocks)
        else:  # sparse: only the blocks that still have masks changed since last step
            seg = torch.cat([block for block, n in zip(fill.blocks, fill.left) if n])
        logits = self._forward(run, seg, rd.start)  # (T, V)
        # Dream's shift: the prediction for slot position p is the output at p - 1.
        fill.row_of[seg] = torch.arange(len(seg), device=dev)
        where = fill.masked_slots()  # (N,) x 2
        banned = sampling.ban(logits[fill.row_of[fill.slots[where] - 1]], self._span_bans)  # (N, V)
        tokens, probs = sampling.sample(banned, cfg.temperature, cfg.top_p, cfg.top_k, run.generator)
        top_probs, top_ids = sampling.top_candidates(banned, TOP_CANDIDATES)  # (N, K) each
        return Proposal.place(where, fill.slots.shape, tokens, sampling.SCORES[cfg.unmask](probs, tokens),
                              sampling.score_confidence(probs, tokens), top_ids, top_probs)

    def _step_event(self, rnd: int, step: int, lengths: tuple[int, ...], read: StepRead) -> DenoiseStep:
        """Plain-data view of every span, from a step's read of the device."""
        mask = self.tags.mask
        tokens, token_ids, committed, confidence, candidates = [], [], [], [], []
        for s, n in enumerate(lengths):
            row = read.ids[s][:n]
            token_ids.append(tuple(row))
            tokens.append(tuple(None if t == mask else self.tok.piece(t) for t in row))
            committed.append(tuple(i for i in range(n) if read.committed[s][i]))
            confidence.append(tuple(None if c != c else round(c, 4) for c in read.confidence[s][:n]))
            candidates.append(tuple(self._candidates(read, s, i) for i in committed[-1]))
        return DenoiseStep(rnd, step, tuple(tokens), tuple(token_ids), tuple(committed),
                           tuple(confidence), tuple(candidates))

    def _candidates(self, read: StepRead, s: int, i: int) -> tuple[Candidate, ...]:
        """Slot i of span s: its candidates, most likely first; impossible (banned) ones left out."""
        pairs = [(ids[s][i], probs[s][i]) for ids, probs in zip(read.top_ids, read.top_probs)]
        return tuple(Candidate(t, self.tok.piece(t), round(p, 4)) for t, p in pairs if p > 0)

    # 4) sync ---------------------------------------------------------------------------------

    def _sync(self, run: Run, rd: Round):
        """Whether planning resumes after the round's <sync/>; a notice says why it stops early."""
        cfg = run.config
        if rd.terminator != "sync":
            return False
        if rd.index + 1 == cfg.max_rounds:
            yield Notice("max_rounds", (
                f"the plan asked for more rounds than max_rounds={cfg.max_rounds}; stopped"))
            return False
        if run.room < 4:
            yield Notice("budget", (
                f"max_new_tokens={cfg.max_new_tokens} is used up; stopped after round "
                f"{rd.index + 1}"))
            return False
        run.clock("plan")
        return True

    # autoregressive text ---------------------------------------------------------------------

    def _write_ar(self, run: Run, logits: torch.Tensor, bans: torch.Tensor):
        """Decode text tokens until end of turn or the budget; the AR baseline and fallback."""
        ids: list[int] = []
        while run.room > 0:
            tok, prob = self._sample_one(run, logits, bans)
            run.counts["plan_tokens"] += 1
            if tok in self.tok.eos_ids:
                break
            run.confidences.append(prob)
            ids.append(tok)
            yield TextToken(tok, self.tok.piece(tok))
            if run.room == 1:  # the last token of the budget: nothing will read it
                run.layout.append_causal([tok])
                break
            logits = self._ingest(run, [tok])
        run.pieces.append(self.tok.decode(ids).strip())

    # --- model calls --------------------------------------------------------------------------

    def _ingest(self, run: Run, ids: list[int]) -> torch.Tensor:
        """Append AR tokens and return the logits of the last one, (V,).

        With a cache, everything not cached yet goes through the model and is committed: at a
        sync that is the round's finished blocks plus `<sync/>`, the refresh of spec section 5.
        Without one, the whole sequence is recomputed.
        """
        run.layout.append_causal(ids)
        start = run.cache.length if run.cache is not None else 0
        seg = torch.arange(start, run.layout.length, device=self.device)
        return self._forward(run, seg, start, commit=run.cache is not None)[-1]

    def _append_known(self, run: Run, ids: list[int]) -> None:
        """Append tokens nobody samples from: one prefill forward with a cache, none without."""
        if run.cache is None:
            run.layout.append_causal(ids)
        else:
            run.counts["prefill_forwards"] += 1
            self._ingest(run, ids)

    def _forward(self, run: Run, seg: torch.Tensor, start: int, commit: bool = False):
        """Logits (T, V) for sequence positions `seg`, placed after the cached [0, start)."""
        lay = run.layout
        run.counts["forwards"] += 1  # per run: concurrent runs share the model, not the count
        keys = torch.cat([torch.arange(start, device=self.device), seg])
        vis = lay.visibility(seg, keys)  # (T, start + T)
        if self.threads is not None:
            self.threads.apply(len(seg))  # several threads only for a wide forward
        with torch.inference_mode():
            logits = self.net(lay.ids[seg][None], seg, vis, run.cache, start, commit)
        return logits[0]

    def _sample_one(self, run: Run, logits: torch.Tensor, bans: torch.Tensor) -> tuple[int, float]:
        """One token and its probability under the adjusted distribution."""
        cfg = run.config
        tok, probs = sampling.sample(sampling.ban(logits[None], bans), cfg.temperature, cfg.top_p,
                                     cfg.top_k, run.generator)
        return int(tok[0]), float(probs[0, tok[0]])
