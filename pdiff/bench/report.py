"""The summaries of `python -m pdiff bench`: quality signals, per-setting figures, the headline,
and the files summary.json, summary.md and frontier.html.

It reads finished rows (plain dicts, as runs.jsonl holds them) and knows nothing about engines,
processes or how the rows were made. Quality is recomputed here from each row's text (or its
confidence), so a resumed run scored with another signal stays consistent.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

AR = "ar"
SIGNALS = {
    "checker": "checker: pdiff.notes.checker.score(prompt, text, facts).value (facts stated, over the "
               "facts plus those the answer adds that the notes do not give, halved for a bad format; "
               "0..1; facts: a prompts line's given facts, else those read from the prompt)",
    "confidence": "confidence: stats.mean_confidence, the mean probability of committed tokens. For "
                  "the AR baseline it is the mean probability of its own greedy tokens, a different "
                  "quantity: the change vs AR is NOT a quality comparison",
    "agreement": "agreement: token-level F1 of a run's text against the AR baseline's answer for the "
                 "same prompt and seed (0..1; AR is 1.0 by definition)",
}
MATCHED_POINTS = 1.0  # "matched quality": at most 1 point (of 100) below AR
WITHIN_PERCENT = 5.0


def token_f1(text: str, reference: str) -> float:
    """SQuAD-style F1 of lower-cased word tokens; 1.0 when both are empty."""
    a, b = re.findall(r"\w+", text.lower()), re.findall(r"\w+", reference.lower())
    if not a or not b:
        return float(a == b)
    common = sum((Counter(a) & Counter(b)).values())
    if not common:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)


# --- summarising -----------------------------------------------------------------------------


def qualities(rows: list[dict], given, signal: str) -> list[float | None]:
    """Each row's quality under `signal` (the checker's also marks the row, `check_row`)."""
    if signal == "checker":
        return [check_row(row, given) for row in rows]
    if signal == "confidence":
        return [r["confidence"] for r in rows]
    ar_text = {(r["prompt"], r["seed"]): r["text"] for r in rows if r["setting"] == AR}
    return [token_f1(r["text"], ar_text[(r["prompt"], r["seed"])])
            if (r["prompt"], r["seed"]) in ar_text else None for r in rows]


def check_row(row: dict, given) -> float:
    """The checker's score of one row, against its line's given facts if any (else the facts read
    from its prompt). The row is marked with `format_ok` (no leftover tag, repeated sentence or
    stuttered phrase) and `invented` (at least one fact the notes do not give), and with the
    probes (`pdiff.notes.probes`): `name_exact` where its line names the entity, `numbers_exact`
    where its given facts hold a number."""
    from pdiff.notes.checker import score
    from pdiff.notes.probes import name_exact, numbers_exact, numbers_of

    i = row["prompt"]
    prompt, facts, name = given.texts[i], given.facts[i], given.names[i]
    scored = score(prompt, row["text"], facts)
    row["format_ok"] = float(scored.format_ok)
    row["invented"] = float(scored.invented > 0)
    if name is not None:
        row["name_exact"] = float(name_exact(name, prompt, row["text"]))
    values = [f.value for f in facts or ()]
    if any(numbers_of(v) for v in values):
        row["numbers_exact"] = float(numbers_exact(prompt, row["text"], values))
    return scored.value


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(rows: list[dict], settings, given, signal: str) -> dict:
    """Per-setting aggregates (settings: objects with key, mode, knobs, in table order), their
    speed and quality vs AR, the Pareto frontier and the headline. `given`: the prompts, with the
    facts and names their lines give (pdiff.bench.prompts.PromptSet)."""
    from pdiff.app.chart import ChartPoint, pareto_front

    for row, q in zip(rows, qualities(rows, given, signal)):
        row["quality"] = q
    by_setting = {s.key: [r for r in rows if r["setting"] == s.key] for s in settings}
    ar_latency = {(r["prompt"], r["seed"]): r["latency"] for r in by_setting[AR]}
    table = []
    for s in settings:
        group = by_setting[s.key]
        if not group:
            continue
        lat = [r["latency"] for r in group]
        ratios = [ar_latency[(r["prompt"], r["seed"])] / r["latency"] for r in group
                  if (r["prompt"], r["seed"]) in ar_latency and r["latency"] > 0]
        entry = dict(setting=s.key, mode=s.mode, knobs=s.knobs, runs=len(group),
                     latency_median=float(np.median(lat)), latency_p90=float(np.percentile(lat, 90)),
                     speedup_per_prompt_median=float(np.median(ratios)) if ratios else None,
                     quality=_mean(r["quality"] for r in group))
        for name in ("forward_passes", "critical_path", "tokens_per_forward", "plan_tokens", "spans",
                     "rounds", "generated_tokens", "pad_share", "format_ok", "invented", "name_exact",
                     "numbers_exact"):
            entry[name] = _mean(r.get(name) for r in group)
        table.append(entry)
    ar = next((e for e in table if e["setting"] == AR), None)
    for e in table:
        e["speedup_median_latency"] = ar["latency_median"] / e["latency_median"] if ar else None
        ok = ar is not None and e["quality"] is not None and ar["quality"] is not None
        e["quality_change_points"] = 100 * (e["quality"] - ar["quality"]) if ok else None
        e["quality_change_percent"] = (100 * (e["quality"] - ar["quality"]) / abs(ar["quality"])
                                       if ok and ar["quality"] else None)
    points = [ChartPoint(e["setting"], e["mode"], e["latency_median"], e["quality"], e["knobs"])
              for e in table if e["quality"] is not None]
    frontier = [p.label for p in pareto_front(points)]
    for e in table:
        e["frontier"] = e["setting"] in frontier
    return dict(settings=table, frontier=frontier, headline=headline(table, ar))


def headline(table: list[dict], ar: dict | None) -> dict:
    """The fastest planned setting at matched quality (>= AR - 1 point) and within 5% of AR."""
    if ar is None or ar["quality"] is None:
        return dict(matched=None, within_5_percent=None, note="no AR baseline quality")
    planned = [e for e in table if e["mode"] == "planned" and e["quality"] is not None]

    def fastest(ok) -> dict | None:
        good = [e for e in planned if ok(e)]
        best = max(good, key=lambda e: e["speedup_median_latency"], default=None)
        return None if best is None else {k: best[k] for k in (
            "setting", "speedup_median_latency", "speedup_per_prompt_median", "quality",
            "quality_change_points", "quality_change_percent")}

    return dict(
        matched=fastest(lambda e: e["quality"] >= ar["quality"] - MATCHED_POINTS / 100 - 1e-12),
        within_5_percent=fastest(
            lambda e: e["quality"] >= ar["quality"] - WITHIN_PERCENT / 100 * abs(ar["quality"]) - 1e-12),
        note=f"planned settings only; matched = quality >= AR - {MATCHED_POINTS:g} point (of 100), "
             f"within = quality >= AR - {WITHIN_PERCENT:g}% of AR's quality; speed = AR median latency "
             "/ the setting's median latency")


EMBED_LIMIT = 5_000_000  # embed plotly.js in frontier.html (works offline) when it is smaller


def _fmt(value, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def _pick(name: str, pick: dict | None) -> str:
    if pick is None:
        return f"{name}: none"
    return (f"{name}: **{pick['speedup_median_latency']:.2f}×** (per-prompt median "
            f"{_fmt(pick['speedup_per_prompt_median'], '.2f')}×) at "
            f"{_fmt(pick['quality_change_points'], '+.2f')} points / "
            f"{_fmt(pick['quality_change_percent'], '+.2f')}% quality, `{pick['setting']}`")


def summary_markdown(meta: dict, summary: dict) -> str:
    m = meta["machine"]
    lines = [
        "# pdiff bench", "",
        f"- command: `{meta['command']}`", f"- date: {meta['date']}",
        f"- machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']}, device {m['device']} "
        f"({m['device_name']}), {m['processes']} process(es)",
        f"- quality signal: {meta['quality_definition']}",
        "- invented: the share of a setting's answers that state at least one fact the notes do not "
        "give (checker only); name exact: the copy probe, the share of answers that name the "
        "entity exactly and never respell it (prompts that name it); numbers exact: the number "
        "probe, every given number copied as written and no other (prompts with numbers); "
        "pdiff.notes.probes",
        f"- {meta['prompts']} prompts ({meta.get('prompts_with_facts', 0)} checked against the facts "
        f"their line gives) × seeds {meta['seeds']}, temperature {meta['temperature']}, "
        f"max_new_tokens {meta['max_new_tokens']}, latency = median of {meta['repeats']} repeat(s) "
        "(stats.total_seconds), batch 1",
        ("- plain-diffusion baseline: max_new_tokens capped at "
         f"{meta['diffusion_max_new_tokens']} so that it is not absurdly slow" if
         meta["diffusion_max_new_tokens"] else "- plain-diffusion baseline: not run"),
        f"- chart: frontier.html ({meta['plotlyjs']})", "",
        "## Headline", "",
        "- " + _pick(f"speedup over AR at matched quality (>= AR - {MATCHED_POINTS:g} point)",
                     summary["headline"].get("matched")),
        "- " + _pick(f"fastest within {WITHIN_PERCENT:g}% of AR's quality",
                     summary["headline"].get("within_5_percent")),
        f"- ({summary['headline']['note']})", "",
        "## Settings", "",
        "| setting | runs | median s | p90 s | speedup (medians) | speedup (per-prompt) | forwards "
        "| critical path | tokens/forward | plan tokens | spans | rounds | [PAD] share | quality "
        "| clean format | invented | name exact | numbers exact | Δ points | Δ % | frontier |",
        "|" + "---|" * 21,
    ]
    for e in summary["settings"]:
        lines.append("| " + " | ".join([
            f"`{e['setting']}`", str(e["runs"]), _fmt(e["latency_median"], ".4f"),
            _fmt(e["latency_p90"], ".4f"), _fmt(e["speedup_median_latency"], ".2f"),
            _fmt(e["speedup_per_prompt_median"], ".2f"), _fmt(e["forward_passes"], ".1f"),
            _fmt(e["critical_path"], ".1f"), _fmt(e["tokens_per_forward"], ".2f"),
            _fmt(e["plan_tokens"], ".1f"), _fmt(e["spans"], ".1f"), _fmt(e["rounds"], ".1f"),
            _fmt(e["pad_share"], ".3f"), _fmt(e["quality"], ".3f"), _fmt(e["format_ok"], ".1%"),
            _fmt(e["invented"], ".1%"), _fmt(e["name_exact"], ".1%"), _fmt(e["numbers_exact"], ".1%"),
            _fmt(e["quality_change_points"], "+.2f"),
            _fmt(e["quality_change_percent"], "+.2f"), "✓" if e["frontier"] else ""]) + " |")
    return "\n".join(lines) + "\n"


def frontier_html(meta: dict, summary: dict) -> tuple[str, str]:
    """Relative and absolute charts (chart_figure), frontier points ringed; (html, how plotly.js
    is included)."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    from pdiff.app.chart import ChartPoint, ar_reference, chart_figure, relative_xy

    points = [ChartPoint(e["setting"], e["mode"], e["latency_median"], e["quality"], e["knobs"])
              for e in summary["settings"] if e["quality"] is not None]
    front = [p for p in points if p.label in summary["frontier"]]
    label = f"quality ({meta['quality_signal']})"
    embed = len(get_plotlyjs()) < EMBED_LIMIT
    parts = []
    for relative in (True, False):
        fig = chart_figure(points, label, relative=relative, paper=True)
        ref = ar_reference(points)
        xy = [relative_xy(p, ref) if relative and ref else (p.latency, p.quality) for p in front]
        keep = [(p, v) for p, v in zip(front, xy) if v is not None]
        fig.add_trace(go.Scatter(
            x=[v[0] for _, v in keep], y=[v[1] for _, v in keep], mode="markers",
            name="Pareto frontier", text=[p.label for p, _ in keep],
            hovertemplate="frontier: %{text}<extra></extra>",
            marker=dict(size=20, symbol="circle-open", color="#E69F00", line=dict(width=2))))
        fig.update_layout(height=540, margin=dict(t=110), title=dict(
            text="vs autoregressive" if relative else "absolute", y=0.97))
        parts.append(fig.to_html(full_html=False, include_plotlyjs=embed and not parts))
    how = "plotly.js embedded, works offline" if embed else "plotly.js from the CDN"
    head = (f"<h1>pdiff bench</h1><p>{meta['date']} · {meta['machine']['device_name']} · quality: "
            f"{meta['quality_definition']}</p><p>Paper reference points (AlpacaEval): 1.27× at "
            "-0.87%, 1.81× at -5.4%.</p>")
    if not embed:
        parts.insert(0, '<script src="https://cdn.plot.ly/plotly-latest.min.js"></script>')
    return ("<!doctype html><html><head><meta charset='utf-8'><title>pdiff bench</title></head>"
            f"<body>{head}{''.join(parts)}</body></html>"), how


def write_reports(out: Path, meta: dict, summary: dict) -> None:
    html, how = frontier_html(meta, summary)
    meta = {**meta, "plotlyjs": how}
    (out / "frontier.html").write_text(html, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({**meta, **summary}, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(meta, summary), encoding="utf-8")
    print(summary_markdown(meta, summary))
