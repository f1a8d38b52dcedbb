"""Plotly pictures of runs: the latency/quality chart with its Pareto front, and who-sees-whom.

`chart_figure` places each run as a point (absolute: seconds and quality; relative: speedup and
quality change vs its own prompt's autoregressive runs, with the paper's two published points).
A Pareto front joins runs of one prompt only: each prompt's front is its own dashed line, named
by the prompt, for the `MAX_FRONTS` prompts run last (a point's hover names its prompt).
`visibility_matrix` is the attention rule of one round as booleans, read from a
`pdiff.layout.Layout` built as the engine builds it (spec section 3; the rule has no other home);
`visibility_figure` draws it downsampled without building the full matrix.

This module knows nothing of gradio, models or runs, nor how quality is measured: the quality
is a number per run and its name is passed in. The benchmark draws its frontier with it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

import numpy as np
import plotly.graph_objects as go
import torch

from pdiff.layout import Layout

AR_MODE = "autoregressive"
PAPER_POINTS = ((1.27, -0.87), (1.81, -5.4))  # (speedup, quality change %) published, AlpacaEval
PAPER_LABEL = "paper: 7B, AlpacaEval, GPU"  # a different model, benchmark and machine: own axes
PAPER_DOMAIN = (0.78, 1.0)  # the paper's panel, right of this model's (x domain of the figure)
COLOURS = {"planned": "#0072B2", "diffusion": "#009E73", AR_MODE: "#D55E00"}  # Okabe-Ito
SYMBOLS = {"planned": "circle", "diffusion": "square", AR_MODE: "diamond"}
_SHOWN_SETTINGS = ("steps_ratio", "schedule", "threshold", "unmask", "attention",
                   "temperature", "use_cache")
_GREY = "rgba(128,128,128,0.3)"
MAX_FRONTS = 6  # prompts whose front is drawn, the latest first: more lines tangle the chart
FRONT_DASHES = ("dash", "dot", "dashdot", "longdash")  # a prompt keeps its dash as runs come
PROMPT_CHARS = 40  # a prompt's short form in a legend entry or a hover


@dataclass(frozen=True)
class ChartPoint:
    """One run on the chart: latency in seconds, quality in the chart's signal, its settings and
    its prompt (runs of different prompts are never compared; "" when there is one prompt set)."""

    label: str
    mode: str
    latency: float
    quality: float
    settings: dict = field(default_factory=dict, compare=False)
    prompt: str = ""


def _valid(p: ChartPoint) -> bool:
    return math.isfinite(p.latency) and p.latency > 0 and math.isfinite(p.quality)


def pareto_front(points: list[ChartPoint]) -> list[ChartPoint]:
    """Non-dominated points (lower latency and higher quality are better), by latency.

    A point is dominated when another is no slower and no worse, and better in one; equal points
    do not dominate each other, so ties are all kept. Invalid points (non-finite, latency <= 0)
    are left out.
    """
    valid = [p for p in points if _valid(p)]

    def dominated(p: ChartPoint) -> bool:
        return any(q.latency <= p.latency and q.quality >= p.quality
                   and (q.latency < p.latency or q.quality > p.quality) for q in valid)

    return sorted((p for p in valid if not dominated(p)), key=lambda p: (p.latency, -p.quality))


def by_prompt(points: list[ChartPoint]) -> dict[str, list[ChartPoint]]:
    """The points of each prompt, in their order; the prompt run last comes first."""
    groups: dict[str, list[ChartPoint]] = {}
    for p in reversed(points):
        groups.setdefault(p.prompt, []).insert(0, p)
    return groups


def short_prompt(prompt: str, limit: int = PROMPT_CHARS) -> str:
    """A prompt on one line, cut to `limit` characters with an ellipsis (plain, not escaped)."""
    line = " ".join(prompt.split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def ar_reference(points: list[ChartPoint]) -> tuple[float, float] | None:
    """Mean (latency, quality) of the valid autoregressive runs, or None without any."""
    ar = [p for p in points if p.mode == AR_MODE and _valid(p)]
    if not ar:
        return None
    return sum(p.latency for p in ar) / len(ar), sum(p.quality for p in ar) / len(ar)


def relative_xy(point: ChartPoint, ref: tuple[float, float]) -> tuple[float, float] | None:
    """(speedup, quality change in %) of a point vs the AR reference; None if undefined."""
    if not _valid(point) or ref[1] == 0:
        return None
    return ref[0] / point.latency, (point.quality - ref[1]) / abs(ref[1]) * 100


def _hover(p: ChartPoint) -> str:
    ignored = ("threshold",) if p.settings.get("schedule") == "reference" else ()  # it reads none
    shown = [f"{k}={p.settings[k]}" for k in _SHOWN_SETTINGS if k in p.settings and k not in ignored]
    lines = [p.label, p.mode, short_prompt(p.prompt), ", ".join(shown)]
    return "<br>".join(escape(str(x)) for x in lines if x)


def _style(fig: go.Figure, x_title: str, y_title: str) -> go.Figure:
    axis = dict(gridcolor=_GREY, zerolinecolor=_GREY, linecolor=_GREY)
    fig.update_layout(
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        font=dict(color="#808080"), margin=dict(l=50, r=10, t=40, b=45), height=380,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        xaxis=dict(title=x_title, **axis), yaxis=dict(title=y_title, **axis))
    return fig


def _note(fig: go.Figure, text: str, y: float = 0.5) -> None:
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=y, showarrow=False)


def _paper_panel(fig: go.Figure) -> None:
    """The paper's published points on their own axes (x2, y2), titled as what they are: never
    on this model's quality axis, which measures another model on another task."""
    axis = dict(gridcolor=_GREY, zerolinecolor=_GREY, linecolor=_GREY)
    fig.add_trace(go.Scatter(
        x=[x for x, _ in PAPER_POINTS], y=[y for _, y in PAPER_POINTS], xaxis="x2", yaxis="y2",
        mode="markers+text", name=PAPER_LABEL, textposition="bottom center",
        text=[f"{x:.2f}×, {y:+.2f}%" for x, y in PAPER_POINTS],
        hovertemplate=PAPER_LABEL + ": %{text}<extra></extra>",
        marker=dict(size=12, color="#CC79A7", symbol="star")))
    fig.update_layout(  # this model's axes on the left, the paper's on their own right
        xaxis=dict(domain=[0, PAPER_DOMAIN[0] - 0.1]),
        xaxis2=dict(domain=list(PAPER_DOMAIN), anchor="y2", title="speedup (×)", range=[0.8, 2.2], **axis),
        yaxis2=dict(anchor="x2", title="AlpacaEval change (%)", range=[-8, 2], **axis))
    fig.add_annotation(text=PAPER_LABEL, xref="x2 domain", yref="paper", x=0.5, y=1.0,
                       yanchor="bottom", showarrow=False, font=dict(size=11))


def _fronts(fig: go.Figure, points: list[ChartPoint], groups: dict[str, list[ChartPoint]],
            place: Callable[[ChartPoint], tuple[float, float] | None]) -> None:
    """Each prompt's Pareto front as its own dashed line named by the prompt (one prompt's runs
    only: runs of two prompts are not comparable), for the `MAX_FRONTS` prompts run last."""
    first_seen = list(dict.fromkeys(p.prompt for p in points))  # fixes each prompt's dash
    for prompt, group in list(groups.items())[:MAX_FRONTS]:
        front = [xy for xy in map(place, pareto_front(group)) if xy is not None]
        if len(front) < 2:
            continue
        name = escape(f"front: {short_prompt(prompt)}" if prompt else "Pareto front")
        dash = FRONT_DASHES[first_seen.index(prompt) % len(FRONT_DASHES)]
        fig.add_trace(go.Scatter(x=[x for x, _ in front], y=[y for _, y in front], mode="lines",
                                 name=name, text=[name] * len(front),
                                 hovertemplate="%{text}<extra></extra>",
                                 line=dict(dash=dash, color="#808080", width=1.5)))


def chart_figure(points: list[ChartPoint], quality_label: str, relative: bool = False,
                 paper: bool = True) -> go.Figure:
    """Runs as points, AR runs as a distinct marker, each prompt's Pareto front as a dashed line.

    A front never joins two prompts' runs; only the `MAX_FRONTS` prompts run last get one.
    relative: x = speedup vs the mean AR run of the point's prompt, y = quality change vs it in %
    (a prompt without an AR run has nothing to compare against: its runs are left out), plus the
    paper's published points when `paper`.
    """
    fig = go.Figure()
    groups = by_prompt(points)
    refs = {prompt: ar_reference(group) for prompt, group in groups.items()}
    if relative:
        def place(p: ChartPoint):
            ref = refs[p.prompt]
            return relative_xy(p, ref) if ref else None
        titles = ("speedup vs autoregressive (×)", f"change in {quality_label} vs autoregressive (%)")
    else:
        def place(p: ChartPoint):
            return (p.latency, p.quality) if _valid(p) else None
        titles = ("latency (s)", quality_label)
    for mode in sorted({p.mode for p in points}, key=lambda m: (m == AR_MODE, m)):
        group = [(p, place(p)) for p in points if p.mode == mode]
        group = [(p, xy) for p, xy in group if xy is not None]
        if not group:
            continue
        name = "autoregressive baseline" if mode == AR_MODE else mode
        fig.add_trace(go.Scatter(
            x=[xy[0] for _, xy in group], y=[xy[1] for _, xy in group], mode="markers", name=name,
            text=[_hover(p) for p, _ in group], hovertemplate="%{text}<extra></extra>",
            marker=dict(size=14 if mode == AR_MODE else 10, color=COLOURS.get(mode, "#CC79A7"),
                        symbol=SYMBOLS.get(mode, "triangle-up"),
                        line=dict(width=1, color="#FFFFFF"))))
    _fronts(fig, points, groups, place)
    if relative and paper:
        _paper_panel(fig)
    if relative:
        fig.add_vline(x=1, line=dict(color=_GREY, dash="dot"))
        fig.add_hline(y=0, line=dict(color=_GREY, dash="dot"))
        unplaced = [p for p in points if _valid(p) and refs[p.prompt] is None]
        if not any(refs.values()):
            _note(fig, "run the autoregressive baseline to compare against it")
        elif unplaced:
            _note(fig, f"{len(unplaced)} run(s) not shown: their prompt has no autoregressive run",
                  y=0.02)
    elif not any(_valid(p) for p in points):
        _note(fig, "no runs yet")
    fig = _style(fig, *titles)
    if not relative:  # every quality signal pdiff shows is a 0..1 score, with runs or not
        fig.update_yaxes(range=[-0.05, 1.05])
    return fig


# --- attention visibility -----------------------------------------------------------------------


def round_layout(prompt_len: int, plan_len: int, span_lengths: list[int], dense: bool) -> Layout:
    """The Layout of one round as the engine builds it: a causal prefix of prompt and plan,
    then the blocks (ids are placeholders). Its visibility is the model's: one rule, one home."""
    prefix = prompt_len + plan_len
    layout = Layout(prefix + sum(span_lengths), "cpu")
    layout.append_causal([0] * prefix)
    layout.append_blocks([[0] * n for n in span_lengths], dense=dense)
    return layout


def visibility_matrix(prompt_len: int, plan_len: int, span_lengths: list[int],
                      dense: bool) -> np.ndarray:
    """Bool (N, N), rows = queries, cols = keys: prompt and plan causal; a span sees the prefix
    and itself (sparse) or every span of the round (dense)."""
    layout = round_layout(prompt_len, plan_len, span_lengths, dense)
    positions = torch.arange(layout.length)
    return layout.visibility(positions, positions).numpy()


def _edges(n: int, cells: int) -> np.ndarray:
    return np.arange(n + 1) if n <= cells else np.unique(np.linspace(0, n, cells + 1).round()
                                                         .astype(np.int64))


def visibility_grid(prompt_len: int, plan_len: int, span_lengths: list[int], dense: bool,
                    max_cells: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(fraction visible per cell, cell edges in positions), at most max_cells a side.

    Computed from the interval bounds, so a long run never builds its (N, N) matrix.
    """
    layout = round_layout(prompt_len, plan_len, span_lengths, dense)
    pre, lo, hi = layout.pre.numpy(), layout.lo.numpy(), layout.hi.numpy()  # (N,) each
    edges = _edges(len(pre), max(1, max_cells))
    c0, c1 = edges[None, :-1], edges[None, 1:]

    def overlap(a, b):
        return np.clip(np.minimum(b[:, None], c1) - np.maximum(a[:, None], c0), 0, None)

    seen = overlap(np.zeros_like(pre), pre) + overlap(lo, hi)  # disjoint: lo >= pre or lo == hi
    rows = np.add.reduceat(seen, edges[:-1], axis=0).astype(float)
    sizes = np.diff(edges)
    return rows / (sizes[:, None] * sizes[None, :]), edges


def visibility_figure(prompt_len: int, plan_len: int, span_lengths: list[int], dense: bool,
                      max_cells: int = 64, prefix_label: str = "prompt") -> go.Figure:
    """Heatmap of who sees whom (rows = queries, cols = keys), segments outlined and named."""
    grid, edges = visibility_grid(prompt_len, plan_len, span_lengths, dense, max_cells)
    fig = go.Figure(go.Heatmap(
        z=grid, x=edges, y=edges, zmin=0, zmax=1, showscale=False,
        colorscale=[[0, "rgba(128,128,128,0.12)"], [1, "#0072B2"]],
        hovertemplate="query ≈ %{y:.0f}, key ≈ %{x:.0f}: %{z:.0%} visible<extra></extra>"))
    bounds = [(prefix_label, 0, prompt_len), ("plan", prompt_len, prompt_len + plan_len)]
    at = prompt_len + plan_len
    for i, length in enumerate(span_lengths):
        bounds.append((f"span {i + 1}", at, at + length))
        at += length
    for name, a, b in bounds:
        if b <= a:
            continue
        fig.add_shape(type="rect", x0=a, x1=b, y0=a, y1=b, line=dict(color="#E69F00", width=1))
        if len(bounds) <= 10:
            fig.add_annotation(x=(a + b) / 2, y=(a + b) / 2, text=escape(name), showarrow=False,
                               font=dict(size=10, color="#E69F00"))
    title = f"{'dense' if dense else 'sparse'} attention, last round"
    _style(fig, "key position", "query position").update_layout(
        title=dict(text=title, font=dict(size=13)), height=420)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain", side="top")
    return fig
