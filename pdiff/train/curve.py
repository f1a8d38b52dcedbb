"""`python -m pdiff curve`: one point of a training run's learning curve.

It scores a checkpoint on a fixed set of held-out prompts (`make_split("heldout", n, seed=CURVE_SEED)`,
the first 50 by default), or on a prompts file with its given facts (`--prompt-file`: the
visitor set, tests/data/visitors.jsonl), at temperature 0, a planned model at the reference schedule and an AR
model autoregressively, and appends one row to a JSON log: the run's step and training seconds
(from the checkpoint's record), the mean checker score, the fact accuracy, and the share of
answers with a clean format. `svg` draws a log as a small line chart for the model card.

A checkpoint that a live run overwrites while it loads is read again (its step must be the same
before and after the load). This module knows nothing about the training loop.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from pdiff.loader import load_engine
from pdiff.notes.checker import score
from pdiff.notes.data import make_split

CURVE_SEED = 50  # the curve's prompts: never the bench's (seed 0) nor the tests' first prompts


def _steps_done(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["pdiff"]["steps_done"]


def _load_steady(folder: Path, tries: int = 5):
    """(engine, record) of a checkpoint that may be rewritten while it loads."""
    for _ in range(tries):
        try:
            before = _steps_done(folder)
            engine = load_engine(folder)
            record = json.loads((folder / "config.json").read_text())["pdiff"]
            if record["steps_done"] == before:
                return engine, record
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(2)
    raise SystemExit(f"{folder} kept changing while it loaded ({tries} tries)")


def evaluate(folder: Path, n: int = 50, prompt_file: Path | None = None,
             step: int | None = None) -> dict:
    """One curve point of the checkpoint in `folder` on the first `n` curve prompts (or of
    `prompt_file`, against the facts its lines give), at `step` (default: the run's own)."""
    from pdiff.bench.prompts import read_prompts

    engine, record = _load_steady(folder)
    kind = record.get("kind", "pd")
    config = (engine.config(mode="autoregressive", temperature=0.0) if kind == "ar"
              else engine.config(temperature=0.0))
    if prompt_file:
        given = read_prompts(prompt_file, n)
        prompts = list(zip(given.texts, given.facts))
    else:
        prompts = [(ex.prompt, None) for ex in make_split("heldout", n, seed=CURVE_SEED)]
    scores = [score(p, engine.generate_text(p, config).text, facts) for p, facts in prompts]
    return {
        "run": record.get("train_config", {}).get("seed"), "kind": kind,
        "step": record["steps_done"] if step is None else step,
        "batch_size": record.get("train_config", {}).get("batch_size"),
        "seconds": record["seconds"], "prompts": len(prompts),
        "prompt_set": prompt_file.name if prompt_file else "heldout",
        "score": round(statistics.mean(s.value for s in scores), 4),
        "fact_accuracy": round(statistics.mean(s.fact_accuracy for s in scores), 4),
        "format_ok": round(statistics.mean(s.format_ok for s in scores), 4),
        "init": (record.get("init") or {}).get("folder"),
        "objective": {k: record.get("train_config", {}).get(k) for k in ("mask_copies", "stratified")},
    }


def append(log: Path, row: dict, label: str) -> list[dict]:
    """Add `row` under `label` to the JSON log (a list of rows), replacing a row of the same
    label and step; returns the log."""
    rows = json.loads(log.read_text()) if log.exists() else []
    log.parent.mkdir(parents=True, exist_ok=True)
    rows = [r for r in rows if (r["label"], r["step"]) != (label, row["step"])] + [{"label": label, **row}]
    rows.sort(key=lambda r: (r["label"], r["step"]))
    log.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")  # matplotlib's tab10: a run's colour is its own


def svg(rows: list[dict], width: int = 640, height: int = 320) -> str:
    """A line chart of checker score against step, one line per label, as SVG text."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    # the legend sits right of the plot: wide enough for the longest label (~7 px a character)
    left, bottom, right, top = 48, 40, max(150, 16 + 7 * max(map(len, labels), default=0)), 16
    width += right - 150
    x_max = max([r["step"] for r in rows] + [1])
    x = lambda step: left + (width - left - right) * step / x_max
    # the score axis runs from the tenth below the lowest score to 1, so close runs stay apart
    low = min([math.floor(r["score"] * 10) / 10 for r in rows] + [0.9])
    y = lambda value: top + (height - top - bottom) * (1 - value) / (1 - low)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>']
    for tick in (low + (1 - low) * k / 4 for k in range(5)):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick:.3f}</text>')
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        step = round(x_max * frac)
        parts.append(f'<text x="{x(step):.1f}" y="{height - bottom + 16}" text-anchor="middle">{step}</text>')
    batch = {r.get("batch_size") or 16 for r in rows}  # rows logged before batch_size were 16s
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">'
                 f'training step{f" (batch {batch.pop()})" if len(batch) == 1 else ""}</text>')
    parts.append(f'<text x="12" y="{(top + height - bottom) / 2}" transform="rotate(-90 12 '
                 f'{(top + height - bottom) / 2})" text-anchor="middle">checker score</text>')
    for i, label in enumerate(labels):
        colour = COLOURS[i % len(COLOURS)]
        points = [(x(r["step"]), y(r["score"])) for r in rows if r["label"] == label]
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in points]
        parts.append(f'<text x="{width - right + 8}" y="{top + 16 * i + 10}" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pdiff curve", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, type=Path, help="checkpoint folder (a live run's is fine)")
    p.add_argument("--log", required=True, type=Path, help="JSON log to append the point to")
    p.add_argument("--label", required=True, help="the run's name in the log and the chart")
    p.add_argument("--prompts", type=int, default=50, help="first N curve prompts")
    p.add_argument("--prompt-file", type=Path, default=None,
                   help="score on this prompts JSONL (its given facts) instead, e.g. the visitor set")
    p.add_argument("--step", type=int, default=None,
                   help="the point's step on the chart (default: the run's own steps), for a curve "
                        "that counts from an earlier checkpoint")
    p.add_argument("--svg", type=Path, default=None, help="also draw the whole log here")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    row = evaluate(args.model, args.prompts, args.prompt_file, args.step)
    rows = append(args.log, row, args.label)
    if args.svg:
        args.svg.write_text(svg(rows))
    print(json.dumps({"label": args.label, **row}))
