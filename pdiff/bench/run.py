"""`python -m pdiff bench`: planned diffusion against its baselines, setting by setting.

Every planned-diffusion combination of a grid of GenerationConfig knobs, plus the autoregressive
baseline and (optionally) the plain-diffusion baseline, runs on every prompt with the same seeds.
Settings are interleaved per prompt and seed, in a rotated order, so that latency ratios are
measured side by side under the same machine load. Each finished run is appended to
`DIR/runs.jsonl` at once (`--resume` skips what is there); at the end `summary.json`,
`summary.md` and `frontier.html` compare every setting with the AR baseline. A `--prompts` line
with a "facts" list of [key, value] pairs (a visitor set's) is checked against those facts rather
than the ones the checker reads from its prompt. Under `accelerate launch` the prompts are sharded
across processes (`runs.rank{N}.jsonl`) and the main process gathers the rows; the launch that
works, on CPU too (torchrun, gloo):
    accelerate launch --multi_gpu --num_processes 2 -m pdiff bench --out DIR ...
(accelerate 1.15's `--cpu --num_processes 2` starts ONE process unless given an MPI hostfile.)
`--shape` instead times the 7B architecture with random weights (see `pdiff.bench.shapes`).

What it deliberately does not know: whether a quality signal is meaningful for a model
(`checker` only scores "notes to text" prompts; `confidence` is not comparable between AR and
diffusion; `agreement` only measures closeness to the AR answer, and AR scores 1.0 by
definition). It measures wall-clock latency of one sequence at a time (batch 1): no batching, no
throughput under concurrency, no accounting for a machine shared with other jobs beyond the
interleaving.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from pdiff.bench import prompts as prompt_sets
from pdiff.bench.prompts import PromptSet, read_prompts
from pdiff.bench.report import AR, SIGNALS, summarise, write_reports
from pdiff.config import ConfigError, GenerationConfig, upgrade_schedule

DEFAULT_GRID = "steps_ratio=1.0,0.5;schedule=reference,paper,adaptive;threshold=0.9;attention=sparse,dense"
RUN_LEVEL = ("mode", "seed", "plan", "temperature", "max_new_tokens")  # flags, not grid knobs
DIFFUSION = "diffusion"


@dataclass(frozen=True)
class Setting:
    key: str
    mode: str
    knobs: dict = field(default_factory=dict, compare=False)


def parse_value(text: str):
    low = text.strip().lower()
    if low in ("none", "null"):  # threshold=none: the grid's spelling of the reference schedule
        return None
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"[+-]?\d+", low):
        return int(low)
    try:
        return float(low)
    except ValueError:
        return text.strip()


def parse_grid(text: str) -> dict[str, list[tuple[str, object]]]:
    """'a=1,2;b=x' -> {a: [('1', 1), ('2', 2)], b: [('x', 'x')]}, names checked."""
    # A grid may spell the schedule as before `schedule` was a knob (the README's grid does):
    # threshold=none for the reference, threshold_rule for the rule of a threshold.
    known = {f.name for f in fields(GenerationConfig)} | {"threshold_rule"}
    grid: dict[str, list] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, values = part.partition("=")
        name = name.strip()
        if name not in known or name in RUN_LEVEL:
            raise ConfigError(f"grid knob {name!r} is not a GenerationConfig knob the grid may vary "
                              f"(not one of {', '.join(RUN_LEVEL)})")
        grid[name] = [(v.strip(), parse_value(v)) for v in values.split(",") if v.strip()]
        if not grid[name]:
            raise ConfigError(f"grid knob {name!r} has no values")
    return grid


def _unread(values: dict) -> str | None:
    """The grid knob a reference run does not read, left out of its key so that each run is named
    once: the threshold of schedule=reference, the threshold_rule of threshold=none (the old
    spelling, under which the README's grid and older runs.jsonl files name their settings)."""
    if values.get("schedule") == "reference":
        return "threshold"
    if "threshold" in values and values["threshold"] is None:
        return "threshold_rule"
    return None


def make_settings(grid: dict, diffusion: bool) -> list[Setting]:
    """The planned product of the grid (a knob the run does not read left out, `_unread`), then
    AR, then plain diffusion. A setting's knobs are GenerationConfig's, in today's spelling."""
    combos: list[list[tuple[str, str, object]]] = [[]]
    for name, values in grid.items():
        combos = [c + [(name, shown, v)] for c in combos for shown, v in values]
    out: dict[str, Setting] = {}
    for combo in combos:
        unread = _unread({n: v for n, _, v in combo})
        kept = [(n, s, v) for n, s, v in combo if n != unread]
        key = "pd:" + ",".join(f"{n}={s}" for n, s, _ in kept)
        knobs = upgrade_schedule({n: v for n, _, v in kept})
        out.setdefault(key, Setting(key, "planned", knobs))
    out[AR] = Setting(AR, "autoregressive")
    if diffusion:
        out[DIFFUSION] = Setting(DIFFUSION, "diffusion")
    return list(out.values())


def short_hash(value) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


# --- running ---------------------------------------------------------------------------------


def run_one(engine, prompt: str, config: GenerationConfig, repeats: int) -> dict:
    """Run `repeats` times; the text and counts of the first, the median latency of all."""
    finals = [engine.generate_text(prompt, config) for _ in range(repeats)]
    first, s = finals[0], finals[0].stats
    latencies = [f.stats.total_seconds for f in finals]
    span_slots = sum(item.length for items in first.plan for item in items)
    pads = sum(t == engine.tags.pad for t in first.token_ids) if span_slots else 0
    return dict(
        latency=float(np.median(latencies)), latencies=latencies, plan_seconds=s.plan_seconds,
        denoise_seconds=s.denoise_seconds, forward_passes=s.forward_passes,
        prefill_forwards=s.prefill_forwards, critical_path=s.critical_path,
        tokens_per_forward=s.tokens_per_forward, plan_tokens=s.plan_tokens,
        denoise_steps=s.denoise_steps, spans=s.spans, rounds=s.rounds,
        generated_tokens=s.generated_tokens, confidence=s.mean_confidence, text=first.text,
        pad_share=pads / span_slots if span_slots else None)  # span slots that ended as [PAD]


def read_rows(folder: Path) -> list[dict]:
    """Rows of runs.jsonl and any runs.rank*.jsonl; a torn last line is skipped."""
    rows = []
    for path in sorted(folder.glob("runs*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def row_key(row: dict) -> tuple:
    return row["setting"], row["prompt"], row["seed"]


# --- main ------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pdiff bench", description=(
        "Benchmark planned diffusion against autoregressive and plain-diffusion baselines."))
    p.add_argument("--model", default=None, help="checkpoint folder or hub id (default: bundled)")
    p.add_argument("--ar-model", default=None, help="AR baseline checkpoint (default: the bundled AR "
                   "model with the bundled model, else --model run with mode=autoregressive)")
    p.add_argument("--prompts", default=None, help="JSONL with an 'instruction' (or 'prompt') per "
                   "line, and optionally its 'facts' as [key, value] pairs for the checker (default: "
                   "32 held-out notes prompts, written to DIR/prompts.jsonl)")
    p.add_argument("--probe", type=int, default=None, metavar="N", help="the copy and number probe "
                   "instead: N task-v6 prompts with held-out names (written to DIR/prompts.jsonl)")
    p.add_argument("--limit", type=int, default=None, help="use the first N prompts")
    p.add_argument("--grid", default=DEFAULT_GRID, help=f"knob=v1,v2;... (default: {DEFAULT_GRID})")
    p.add_argument("--no-diffusion-baseline", action="store_true")
    p.add_argument("--diffusion-max-new-tokens", type=int, default=128,
                   help="cap on the plain-diffusion canvas (default 128): it is slow otherwise")
    p.add_argument("--repeats", type=int, default=1, help="time each run R times, keep the median")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per engine and mode first")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="skip (setting, prompt, seed) in DIR")
    p.add_argument("--quality", choices=sorted(SIGNALS), default=None,
                   help="default: checker with the bundled model, else agreement")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default float32 (bfloat16 on CUDA for --shape)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--overhead", action="store_true",
                   help="profile host time outside model forwards on the first prompt, per setting")
    g = p.add_argument_group("GPU figures (--shape: time the architecture, no prompts)")
    g.add_argument("--shape", default=None, help="dream-7b | small | tiny (on CPU dream-7b shrinks)")
    g.add_argument("--layers", type=int, default=None)
    g.add_argument("--hidden", type=int, default=None)
    g.add_argument("--context", type=int, default=1000, help="(a) KV context of the AR step")
    g.add_argument("--prefix", type=int, default=500, help="(b) cached prefix of the denoise step")
    g.add_argument("--spans", type=int, default=3)
    g.add_argument("--span-len", type=int, default=64)
    g.add_argument("--rounds", type=int, default=2)
    g.add_argument("--hbm-tbps", type=float, default=None, help="HBM bandwidth (TB/s) for the floor "
                   "(default: the card's, by its name; see pdiff.bench.shapes.HBM_TBPS)")
    g.add_argument("--peer", choices=["compile", "eager", "none"], default=None, help="transformers' "
                   "Qwen2 on the same weights: torch.compile'd (default on CUDA), eager (default on CPU), "
                   "or not run")
    g.add_argument("--iters", type=int, default=None, help="timed iterations per figure")
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    out = Path(args.out)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        if args.shape:
            from pdiff.bench.shapes import main as shapes_main

            shapes_main(args, out)
            return
        if args.overhead:
            overhead(args, out)
            return
        bench(args, argv, out)
    except (ConfigError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


@dataclass(frozen=True)
class Job:
    """What one process of a benchmark runs: the settings, prompts and seeds, and how it scores."""

    settings: list[Setting]
    given: PromptSet  # the prompts with the facts and names their lines give
    seeds: list[int]
    signal: str  # the quality signal, a key of report.SIGNALS
    fingerprint: str  # the options rows must share to be resumed
    device: str
    rank: int
    world: int

    @property
    def prompts(self) -> list[str]:
        return self.given.texts


def bench(args, argv: list[str], out: Path) -> None:
    from accelerate import PartialState

    from pdiff.loader import load_engine

    state = PartialState(cpu=not args.device.startswith("cuda"))
    job, ar_name, done = plan_job(args, state, out)
    dtype = args.dtype or "float32"
    engine = load_engine(args.model, job.device, dtype)
    ar_engine = load_engine(ar_name, job.device, dtype) if ar_name else engine
    configs = make_configs(args, job, engine, ar_engine)
    todo = pending(job, done)
    if todo:  # one-time costs (allocation, lazy init) are not charged to the first setting
        for eng, _, cfg in {(id(c[0]), c[2].mode): c for c in configs.values()}.values():
            for _ in range(args.warmup):
                eng.generate_text(job.prompts[todo[0][0]], eng.config(**{
                    **cfg.to_dict(), "max_new_tokens": min(32, cfg.max_new_tokens)}))
    run_all(args, job, configs, todo, out)
    state.wait_for_everyone()
    if state.is_main_process:  # the others may exit: nothing waits on a failed report
        gather_and_report(args, argv, out, job)


def plan_job(args, state, out: Path) -> tuple[Job, object, dict]:
    """The Job of this process, the AR model's name, and the rows `out` already holds (checked:
    they must be resumed, and made with the same options)."""
    from pdiff.loader import BUNDLED, BUNDLED_AR, resolve

    rank, world = state.process_index, state.num_processes
    device = f"cuda:{state.local_process_index}" if args.device == "cuda" and world > 1 else args.device
    bundled = args.model is None or resolve(args.model).resolve() == BUNDLED.resolve()
    signal = args.quality or ("checker" if bundled else "agreement")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    settings = make_settings(parse_grid(args.grid), not args.no_diffusion_baseline)
    out.mkdir(parents=True, exist_ok=True)
    if args.prompts and args.probe:
        raise ValueError("--probe makes its own prompts: give --probe or --prompts, not both")
    if args.prompts:
        given = read_prompts(args.prompts, args.limit)
    else:
        make = prompt_sets.probe if args.probe else prompt_sets.heldout
        given = make(args.probe or args.limit or 32, out if state.is_main_process else None)
    if not given.texts or not seeds:
        raise ValueError("no prompts or no seeds to run")
    ar_name = args.ar_model or (BUNDLED_AR if bundled else None)
    fingerprint = short_hash([str(args.model), str(ar_name), args.temperature, args.max_new_tokens,
                              args.diffusion_max_new_tokens, args.dtype or "float32", args.device])
    state.wait_for_everyone()
    done = {row_key(r): r for r in read_rows(out)}
    if done and not args.resume:
        raise FileExistsError(f"{out} already holds runs; pass --resume to continue, or choose "
                              "another --out")
    if any(r.get("fingerprint") != fingerprint for r in done.values()):
        raise ValueError(f"{out} holds runs made with other options (model, temperature, "
                         "max_new_tokens, dtype or device); choose another --out")
    state.wait_for_everyone()
    job = Job(settings, given, seeds, signal, fingerprint, device, rank, world)
    return job, ar_name, done


def make_configs(args, job: Job, engine, ar_engine) -> dict:
    """setting key -> (engine, knobs, GenerationConfig); every setting is validated up front."""
    base = dict(temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    configs = {}
    for s in job.settings:
        eng = ar_engine if s.key == AR else engine
        knobs = {**base, **s.knobs, "mode": s.mode}
        if s.key == DIFFUSION:
            knobs["max_new_tokens"] = min(args.max_new_tokens, args.diffusion_max_new_tokens)
        configs[s.key] = (eng, knobs, eng.config(**knobs))
    return configs


def pending(job: Job, done: dict) -> list[tuple[int, int, Setting, str]]:
    """This process's (prompt, seed, setting, prompt hash) runs not done yet, settings rotated
    per prompt and seed so that no setting always runs first."""
    todo = []
    for i in (i for i in range(len(job.prompts)) if i % job.world == job.rank):
        prompt_sha = short_hash(job.prompts[i])
        for j, seed in enumerate(job.seeds):
            turn = (i * len(job.seeds) + j) % len(job.settings)
            for s in job.settings[turn:] + job.settings[:turn]:
                if done.get((s.key, i, seed), {}).get("prompt_sha") != prompt_sha:
                    todo.append((i, seed, s, prompt_sha))
    return todo


def run_all(args, job: Job, configs: dict, todo: list, out: Path) -> None:
    """Run `todo`, appending each finished run to this process's rows file at once."""
    from tqdm import tqdm

    world, rank = job.world, job.rank
    path = out / ("runs.jsonl" if world == 1 else f"runs.rank{rank}.jsonl")
    bar = tqdm(todo, desc="bench" if world == 1 else f"bench rank {rank}", position=rank,
               unit="run", file=sys.stderr, dynamic_ncols=True)
    with open(path, "a", encoding="utf-8") as fh:
        for i, seed, s, prompt_sha in bar:
            eng, knobs, cfg = configs[s.key]
            cfg = eng.config(**{**knobs, "seed": seed})
            result = run_one(eng, job.prompts[i], cfg, args.repeats)
            quality = None
            if job.signal == "checker":
                from pdiff.notes.checker import score

                quality = score(job.prompts[i], result["text"], job.given.facts[i]).value
            elif job.signal == "confidence":
                quality = result["confidence"]
            row = dict(setting=s.key, mode=s.mode, settings={**knobs, "model": eng.name},
                       prompt=i, seed=seed, prompt_sha=prompt_sha, fingerprint=job.fingerprint,
                       quality_signal=job.signal, quality=quality, **result, rank=rank,
                       finished=datetime.datetime.now(datetime.timezone.utc).isoformat())
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
    bar.close()


def gather_and_report(args, argv, out: Path, job: Job) -> None:
    """Merge every process's rows into runs.jsonl, then write the summaries and the chart."""
    settings, prompts, seeds, signal, device = job.settings, job.prompts, job.seeds, job.signal, job.device
    rows = {row_key(r): r for r in read_rows(out)}
    order = {s.key: n for n, s in enumerate(settings)}
    merged = sorted(rows.values(), key=lambda r: (r["prompt"], r["seed"], order.get(r["setting"], 1e9),
                                                  r["setting"]))
    tmp = out / "runs.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged), encoding="utf-8")
    os.replace(tmp, out / "runs.jsonl")
    for path in out.glob("runs.rank*.jsonl"):
        path.unlink()
    sha = {i: short_hash(p) for i, p in enumerate(prompts)}
    current = [r for r in merged if r["setting"] in order and r["seed"] in seeds
               and sha.get(r["prompt"]) == r.get("prompt_sha")]
    summary = summarise(current, settings, job.given, signal)
    import torch

    meta = dict(
        command="python -m pdiff bench " + shlex.join(argv),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), torch=torch.__version__,
                     device=device, device_name=(torch.cuda.get_device_name(device)
                                                 if device.startswith("cuda") else platform.processor()
                                                 or "cpu"), processes=job.world),
        quality_signal=signal, quality_definition=SIGNALS[signal],
        prompts=len(prompts), prompts_with_facts=sum(f is not None for f in job.given.facts),
        prompts_with_names=sum(n is not None for n in job.given.names), seeds=seeds,
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, repeats=args.repeats,
        diffusion_max_new_tokens=(None if args.no_diffusion_baseline
                                  else min(args.max_new_tokens, args.diffusion_max_new_tokens)))
    write_reports(out, meta, summary)


def overhead(args, out: Path) -> None:
    """Host time outside forwards, per planned setting of the grid, on the first prompt."""
    from pdiff.bench.overhead import measure
    from pdiff.loader import load_engine
    from pdiff.notes.data import make_split

    engine = load_engine(args.model, device=args.device, dtype=args.dtype or "float32")
    prompt = read_prompts(args.prompts, 1).texts[0] if args.prompts else make_split("heldout", 1)[0].prompt
    results = []
    for setting in make_settings(parse_grid(args.grid), diffusion=False):
        if setting.mode != "planned":
            continue
        config = engine.config(**setting.knobs, temperature=args.temperature,
                               max_new_tokens=args.max_new_tokens)
        row = {"setting": setting.key, **measure(engine, prompt, config, repeats=args.repeats)}
        results.append(row)
        print(f"{setting.key}: outside forwards {row['outside_forward_seconds'] * 1e3:.1f} ms of "
              f"{row['engine_seconds'] * 1e3:.1f} ms; per forward "
              f"{row['outside_per_forward_seconds'] * 1e3:.2f} ms = "
              f"{100 * (row['outside_per_forward_share_of_denoise_step'] or 0):.1f}% of a denoise step")
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps({"prompt": prompt, "runs": results}, indent=2))
