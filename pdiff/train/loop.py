"""`python -m pdiff train`: train a planned-diffusion model (or its AR baseline).

The data is made here (pdiff.notes.data, notes to text), the tokenizer is trained on it with every
control tag as one token, and the objective is pdiff.train.objective's hybrid loss. The result is a
Hugging Face checkpoint folder that pdiff.loader reads. Training starts from random weights,
or, with `--init`, from an earlier checkpoint (its weights and tokenizer): the paper's models
start from an AR model too (Dream from Qwen2.5). Seeded and reproducible; runs on CPU, and on
CUDA when there is one.

Stopping and resuming: every save also writes `trainer_state.pt` (optimizer, step, losses, the
data order and every random state), and `--resume` continues from it where the run stopped, so
a resumed run takes the same steps as an uninterrupted one.

Data parallel: under `accelerate launch` every process builds the same global batch (same seeds,
same masks) and trains on its share of the rows; the loss of a step is the sum of the shares
over the global denominator, so N processes follow the loss curve of one process with the same
global batch. This module is the loop only: no sampling, no evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pdiff.loader import load_model, save_checkpoint
from pdiff.model import PRESETS, DreamModel
from pdiff.notes.data import STYLES, TASKS, make_split
from pdiff.tokenizer import Tokenizer, build_tokenizer
from pdiff.train import objective


@dataclass(frozen=True)
class TrainConfig:
    kind: str = "pd"  # pd: the hybrid objective; ar: the AR-only baseline
    shape: str = "small"  # a pdiff.model preset
    vocab_size: int = 1024  # BPE vocabulary trained on the data
    examples: int = 20_000  # training examples generated (sequences are re-drawn each epoch)
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.05
    length_scale: int = 4  # tokens per plan length unit for this small model
    max_pad: int = 2  # a span is planned for its text plus 0..max_pad [PAD], rounded up to a unit
    attention: str = "sparse"
    seed: int = 0
    style: str = "canonical"  # the answers' style (pdiff.notes.data.STYLES)
    task: str = "v6"  # the training split's variety (pdiff.notes.data.TASKS)
    mask_copies: int = 1  # independent mask draws of the span blocks per sequence (objective.collate)
    stratified: bool = False  # spread the batch's mask ratios t over (0, 1) (objective.mask_levels)

    def __post_init__(self) -> None:
        if self.kind not in ("pd", "ar"):
            raise ValueError(f"kind must be pd or ar; got {self.kind!r}")
        if self.shape not in PRESETS:
            raise ValueError(f"shape must be one of {', '.join(PRESETS)}; got {self.shape!r}")
        if self.mask_copies < 1:
            raise ValueError(f"mask_copies must be at least 1; got {self.mask_copies}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}; got {self.style!r}")


PRESETS_TRAIN = {
    "smoke": TrainConfig(shape="tiny", vocab_size=512, examples=200, steps=30, batch_size=8, warmup=5),
    "small": TrainConfig(),
}


def corpus(examples) -> list[str]:
    """Texts the tokenizer is trained on: prompts, answers and topics."""
    texts = []
    for ex in examples:
        texts.append(ex.prompt)
        texts += [f"{s.topic} {s.text}" for rnd in ex.rounds for s in rnd]
    return texts


def make_sequence(cfg: TrainConfig, tok: Tokenizer, ex, rng: random.Random) -> objective.Sequence:
    if cfg.kind == "ar":
        return objective.ar_sequence(tok, ex.prompt, ex.answer)
    rounds = [[(s.topic, s.text) for s in rnd] for rnd in ex.rounds]
    return objective.planned_sequence(tok, ex.prompt, rounds, rng, cfg.length_scale,
                                      dense=cfg.attention == "dense", max_pad=cfg.max_pad)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def initial_model(cfg: TrainConfig, examples, init: Path | None, device: str):
    """(model, HF tokenizer, init record): fresh weights and a BPE tokenizer trained on the data,
    or an earlier checkpoint's weights and tokenizer."""
    if init is not None:
        hf_tok = Tokenizer.load(init).hf
        meta = json.loads((init / "config.json").read_text()).get("pdiff") or {}
        return load_model(init).train().to(device), hf_tok, {"folder": init.name, **meta}
    hf_tok = build_tokenizer(corpus(examples), cfg.vocab_size)
    shape = dataclasses.replace(PRESETS[cfg.shape], vocab_size=len(hf_tok))
    model = DreamModel(shape).to(device)
    for module in model.modules():  # GPT-style small init
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(module.weight, std=0.02)
    return model, hf_tok, None


STATE_FILE = "trainer_state.pt"


@dataclass
class Progress:
    """Everything a resumed run needs beyond the weights. `save` writes it to trainer_state.pt
    beside them (with what the caller adds: the optimizer's state, the settings), and `load`
    reads it back; the fields are the file's keys."""

    step: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    order: list[int] = dataclasses.field(default_factory=list)
    seconds: float = 0.0  # training time of earlier sessions of this run
    sessions: list[dict] = dataclasses.field(default_factory=list)  # where each session started
    rng: random.Random = dataclasses.field(default_factory=random.Random)  # data order, [PAD] draws
    generator: torch.Generator = dataclasses.field(default_factory=torch.Generator)  # the masks
    init_record: dict | None = None  # the record of the checkpoint the run started from
    started: float = 0.0  # when this session started (time.time()); not saved

    @classmethod
    def seeded(cls, seed: int) -> Progress:
        return cls(rng=random.Random(seed), generator=torch.Generator().manual_seed(seed))

    def elapsed(self) -> float:
        """Training time of the whole run so far, sessions before this one included."""
        return round(self.seconds + time.time() - self.started, 1)

    def save(self, path: Path, seconds: float, **extra) -> None:
        """Write the progress, its training time `seconds` and `extra` to `path` (atomically:
        never half a state on disk)."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "started"}
        state.update(seconds=seconds, rng=self.rng.getstate(), generator=self.generator.get_state())
        torch.save({**extra, **state}, path.with_name(path.name + ".tmp"))
        path.with_name(path.name + ".tmp").replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[Progress, dict]:
        """The progress saved at `path`, and the whole file (for what `save` was given besides)."""
        saved = torch.load(path, weights_only=False)
        plain = {f.name for f in dataclasses.fields(cls)} - {"rng", "generator", "started"}
        progress = cls(**{name: saved[name] for name in plain if name in saved})
        progress.rng.setstate(saved["rng"])
        progress.generator.set_state(saved["generator"])
        if not progress.sessions:  # a state saved before sessions were recorded
            progress.sessions = [{"from_step": 0, "steps": saved["train_config"]["steps"]}]
        return progress, saved


def _optimizer(cfg: TrainConfig, model) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def _step_loss(model, batch: objective.Batch, rows: slice, device: str) -> torch.Tensor:
    """This process's share of the step's loss: its rows, over the global denominator."""
    ids, vis = batch.ids[rows].to(device), batch.visibility[rows].to(device)
    positions = batch.positions[rows].to(device)
    logits = model(ids, positions, vis)  # (b, T, V)
    share = objective.Batch(ids, vis, batch.labels[rows].to(device), batch.weights[rows].to(device),
                            batch.denominator, positions)
    return objective.loss(logits, share)


def _begin(cfg: TrainConfig, examples, out: Path, init: Path | None, resume: bool, device: str):
    """(model, HF tokenizer, config, progress, saved trainer state or None) for a fresh run, a
    run from `init`, or the run saved in `out` when resuming; the random states are seeded or
    restored here."""
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    state, saved = Progress.seeded(cfg.seed), None
    if resume and (out / STATE_FILE).exists():
        state, saved = Progress.load(out / STATE_FILE)
        model, hf_tok, _ = initial_model(cfg, examples, out, device)
    else:
        model, hf_tok, state.init_record = initial_model(cfg, examples, init, device)
    if state.init_record:  # the shape and vocabulary are the checkpoint's
        cfg = dataclasses.replace(cfg, vocab_size=len(hf_tok), shape=state.init_record.get(
            "train_config", {}).get("shape", cfg.shape))
    # A field added to TrainConfig since the run started counts at its default.
    if saved and {**dataclasses.asdict(TrainConfig()), **saved["train_config"], "steps": cfg.steps} != \
            dataclasses.asdict(cfg):
        raise SystemExit(f"--resume: {out} was trained with other settings: {saved['train_config']}"
                         " (only --steps may change: the schedule then decays to the new end)")
    return model, hf_tok, cfg, state, saved


@dataclass
class TimeBudget:
    """Sizes a fresh run to end `seconds` after it `started`: at the end of the warm-up, the
    step time since step 2 (the first steps pay for start-up) sets the run's steps. The learning
    rate of the warm-up does not depend on the steps, so the schedule still decays to its end."""

    seconds: float
    started: float
    timed_from: float = 0.0

    def check(self, cfg: TrainConfig, state: Progress) -> TimeBudget:
        if state.step or cfg.warmup < 4:
            raise SystemExit("--seconds sizes a fresh run from its warm-up: it needs --warmup 4 or more"
                             " and cannot resume a started run (resume it with --steps)")
        return self

    def fit(self, cfg: TrainConfig, state: Progress, acc) -> TrainConfig:
        """`cfg`, with its steps set once the warm-up ends (processes agree on the slowest)."""
        if state.step == 2:
            self.timed_from = time.time()
        if state.step != cfg.warmup:
            return cfg
        per_step = torch.tensor((time.time() - self.timed_from) / (state.step - 2), device=acc.device)
        left = self.seconds - (time.time() - self.started)
        steps = cfg.warmup + max(1, int(left / acc.reduce(per_step, "max").item()))
        state.sessions[-1].update(steps=steps, seconds=self.seconds)
        return dataclasses.replace(cfg, steps=steps)


def train(cfg: TrainConfig, out: Path, device: str = "cpu", progress: bool = True,  # noqa: PLR0913 (the CLI's options)
          init: Path | None = None, save_every: int = 0, resume: bool = False,
          stop_after: int | None = None, seconds: float | None = None) -> dict:
    """Train and save a checkpoint to `out` (also every `save_every` steps, with the trainer
    state, so a stopped run keeps its progress and `resume` continues it); returns the run's
    record (also in config.json). `stop_after` ends this session after that many steps in all
    (a test stands in for a killed run with it). `seconds` sizes a fresh run (TimeBudget)."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=device == "cpu")
    device = str(acc.device)
    started = time.time()
    examples = make_split("train", cfg.examples, seed=cfg.seed, style=cfg.style, task=cfg.task)
    model, hf_tok, cfg, state, saved = _begin(cfg, examples, out, init, resume, device)
    state.started = started
    tok = Tokenizer(hf_tok)
    opt = _optimizer(cfg, model)
    if saved:
        opt.load_state_dict(saved["optimizer"])
    model, opt = acc.prepare(model, opt)
    state.sessions.append({"from_step": state.step, "steps": cfg.steps, "processes": acc.num_processes,
                           "threads": torch.get_num_threads()})
    if cfg.batch_size % acc.num_processes:
        raise SystemExit(f"batch size {cfg.batch_size} does not split over {acc.num_processes} processes")
    share = cfg.batch_size // acc.num_processes
    rows = slice(acc.process_index * share, (acc.process_index + 1) * share)
    budget = None if seconds is None else TimeBudget(seconds, started).check(cfg, state)
    bar = tqdm(desc=f"train {cfg.kind}", mininterval=2, disable=not progress or not acc.is_main_process,
               initial=state.step, total=cfg.steps)
    while state.step < (cfg.steps if stop_after is None else min(cfg.steps, stop_after)):
        step = state.step
        if budget:
            cfg = budget.fit(cfg, state, acc)
            bar.total = cfg.steps
        if len(state.order) < cfg.batch_size:  # a fresh shuffle each epoch; [PAD]s are re-drawn too
            state.order += state.rng.sample(range(len(examples)), len(examples))
        idx, state.order = state.order[: cfg.batch_size], state.order[cfg.batch_size:]
        # Every process builds the whole global batch (same random draws), then trains its rows.
        seqs = [make_sequence(cfg, tok, examples[i], state.rng) for i in idx]
        batch = objective.collate(seqs, tok.tags.mask, hf_tok.pad_token_id, state.generator,
                                  cfg.mask_copies, cfg.stratified)
        # DDP averages gradients over processes; the shares add up, so scale by their number.
        value = _step_loss(model, batch, rows, device) * acc.num_processes
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        acc.backward(value)
        acc.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state.losses.append(acc.reduce(value.detach(), "mean").item())
        state.step = step + 1
        bar.update()
        bar.set_postfix(loss=f"{sum(state.losses[-20:]) / len(state.losses[-20:]):.3f}")
        if save_every and state.step % save_every == 0 and state.step < cfg.steps:
            save(acc, model, opt, hf_tok, out, cfg, state)
    record = save(acc, model, opt, hf_tok, out, cfg, state)
    return {**record, "losses": state.losses}


def save(acc, model, opt, hf_tok, out: Path, cfg: TrainConfig, state: Progress) -> dict:
    """Write the checkpoint with its training record, and the trainer state for `--resume`
    (main process only; the others wait for it)."""
    seconds, init_record = state.elapsed(), state.init_record
    record = {
        "kind": cfg.kind, "train_config": dataclasses.asdict(cfg), "device": str(acc.device),
        "processes": acc.num_processes, "steps_done": state.step, "seconds": seconds,
        "sessions": state.sessions,
        "threads": torch.get_num_threads(),
        "loss_first": round(sum(state.losses[:10]) / max(1, len(state.losses[:10])), 4),
        "loss_last": round(sum(state.losses[-20:]) / max(1, len(state.losses[-20:])), 4),
        "length_scale": cfg.length_scale,
        **({"init": init_record} if init_record else {}),
    }
    if acc.is_main_process:
        save_checkpoint(acc.unwrap_model(model), hf_tok, out, extra={"pdiff": record})
        state.save(out / STATE_FILE, seconds, train_config=dataclasses.asdict(cfg),
                   optimizer=opt.state_dict())
    acc.wait_for_everyone()
    return record


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pdiff train", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS_TRAIN), default="small")
    p.add_argument("--kind", choices=["pd", "ar"], default="pd")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    p.add_argument("--steps", type=int, help="override the preset's steps")
    p.add_argument("--examples", type=int, help="override the preset's number of examples")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=int)
    p.add_argument("--shape", choices=sorted(PRESETS))
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--init", type=Path, help="start from this checkpoint folder (weights and tokenizer)")
    p.add_argument("--save-every", type=int, default=0, help="also save every N steps")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out (same settings) from its last save")
    p.add_argument("--max-pad", type=int, help="override the preset's [PAD] slack per span")
    p.add_argument("--length-scale", type=int, help="override the preset's tokens per plan unit")
    p.add_argument("--style", choices=STYLES, help="the answers' style (default canonical)")
    p.add_argument("--task", choices=TASKS,
                   help="the training data's variety: v6 (default; composed prompts as wide as "
                        "visitors write them, pdiff.notes.wide), v5 (wider names, one-fact sections),"
                        " v4 (wide extra-detail keys) or v3 (25 extra-detail keys)")
    p.add_argument("--mask-copies", type=int, help="mask draws of the span blocks per sequence (default 1)")
    p.add_argument("--stratified", action="store_true", default=None,
                   help="stratify the batch's mask ratios t over (0, 1)")
    p.add_argument("--seconds", type=float,
                   help="size a fresh run to end about this many seconds after it starts: the warm-up's"
                        " step time sets --steps")
    p.add_argument("--stop-after", type=int,
                   help="end this session after N steps in all (the schedule still runs to --steps)")
    args = p.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items()
                 if k in {f.name for f in dataclasses.fields(TrainConfig)} and v is not None}
    cfg = dataclasses.replace(PRESETS_TRAIN[args.preset], **overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    record = train(cfg, args.out, args.device, init=args.init, save_every=args.save_every,
                   resume=args.resume, stop_after=args.stop_after, seconds=args.seconds)
    record.pop("losses")
    print(json.dumps(record, indent=2))
