"""The critical-path timeline: every forward pass of a run, in order, in the lane it served.

`forwards(view)` lists a finished run's model calls from its folded events: one per sampled plan
or AR token, one per denoise step (shared by every span of its round), one per prefill (a user's
plan read with a cache, the diffusion baseline's prompt). Two facts are not in the events and are
read from the run's stats: how many prefills there were, and whether an AR text ended by
sampling its end token (one more forward). The count equals the engine's own `forward_passes`.

`timeline_figure(view, ar_view)` draws them: x is the forward, in order; lanes are the plan, each
span of each round, an AR fallback text, and the AR baseline when it ran on the same prompt. A
plan or AR forward is a dot; a denoise forward is one bar across the spans it filled at once,
with each span's commits written on it. Colour is the tokens a forward committed. Exactly one
mark (dot or bar) per forward. The figure is always the whole run, and its x axis says so: a
replay's step does not move it. This module knows nothing of gradio, torch or models.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import plotly.graph_objects as go

from pdiff.app.chart import _GREY, _style
from pdiff.app.fold import RunView

PLAN, TEXT, AR = "plan", "text (no plan: written AR)", "AR baseline"
MAX_LABELLED = 60  # per-span commit counts are written on the bars up to this many denoise forwards
AR_SYMBOL = "diamond"  # the AR baseline's dots: never the plan's circle, whatever the colour
LEGEND_PX = 60  # room under the x axis for the legend: three rows on a phone, one on a desktop
# The x axis says the figure is the whole run: a replay's step does not move it. Short, to fit
# a phone's plot width.
X_TITLE = "forward pass, in order (whole run)"


@dataclass(frozen=True)
class Forward:
    """One model call of a run."""

    index: int  # 1-based, in the order the run made them
    kind: str  # plan | prefill | denoise | text | end
    lanes: tuple[str, ...]  # the lanes it served: one, or every span of a denoise round
    tokens: int  # tokens it committed to the answer or plan (a prefill commits none)
    detail: str  # what it did, in words (hover)
    per_lane: tuple[int, ...] = ()  # denoise: tokens committed in each of `lanes`


def span_lane(round_index: int, span_index: int, topic: str) -> str:
    return f"r{round_index + 1}·s{span_index + 1} {topic}"


def _text_forwards(tokens: list[str], ends: int, lane: str, first: int) -> list[Forward]:
    """AR text: one forward per token written, and one that sampled the end (if it did)."""
    out = [Forward(first + i, "text", (lane,), 1, f"{lane}: token {t!r}") for i, t in enumerate(tokens)]
    out += [Forward(first + len(tokens) + i, "end", (lane,), 0,
                    f"{lane}: sampled the end of the text") for i in range(ends)]
    return out


def forwards(view: RunView) -> list[Forward]:
    """The model calls of a finished run, in order (empty before it finished)."""
    if view.finished is None:
        return []
    stats = view.finished.stats
    if view.mode == "autoregressive":
        ends = stats.plan_tokens - len(view.text_tokens)  # 1 when it sampled its end token
        return _text_forwards(view.text_tokens, ends, AR, 1)
    out: list[Forward] = []
    prefills = stats.prefill_forwards

    def add(kind: str, lanes: tuple[str, ...], tokens: int, detail: str, per_lane=()) -> None:
        out.append(Forward(len(out) + 1, kind, lanes, tokens, detail, tuple(per_lane)))

    if view.mode == "diffusion" and prefills:
        add("prefill", (PLAN,), 0, f"prefill: reads the prompt ({view.prompt_tokens} tokens)")
        prefills -= 1
    rounds = view.ordered_rounds()
    fallback = view.mode == "planned" and bool(view.text_tokens)
    for rnd in rounds:
        if rnd.plan and all(t.forced for t in rnd.plan):
            if prefills:  # with a cache, the user's plan round is read in one forward
                add("prefill", (PLAN,), 0, f"prefill: reads round {rnd.round + 1}'s given plan "
                                          f"({len(rnd.plan)} tokens)")
                prefills -= 1
        else:
            sampled = [t for t in rnd.plan if not t.forced]
            if fallback and rnd is rounds[-1]:
                sampled = sampled[:-1]  # its dropped terminator's forward wrote the first text token
            for t in sampled:
                add("plan", (PLAN,), 1, f"plan round {rnd.round + 1}: token {t.text!r}")
        if not rnd.opened:
            continue
        lanes = tuple(span_lane(rnd.round, s, span.topic) for s, span in enumerate(rnd.spans))
        for step in range(rnd.step + 1):
            per = [sum(x == step for x in span.step_of) for span in rnd.spans]
            parts = ", ".join(f"{span.topic} {n}" for span, n in zip(rnd.spans, per, strict=True))
            add("denoise", lanes, sum(per), f"denoise step {step + 1} of round {rnd.round + 1}: "
                                            f"{sum(per)} tokens ({parts})", per)
    sampled_plan = sum(f.kind == "plan" for f in out)
    ends = stats.plan_tokens - sampled_plan - len(view.text_tokens)
    out += _text_forwards(view.text_tokens, max(0, ends), TEXT, len(out) + 1)
    return out


def lanes_of(marks: list[Forward], ar_marks: list[Forward] = ()) -> list[str]:
    """Lanes top to bottom: the plan, the spans in order, the fallback text, the AR baseline."""
    seen: dict[str, None] = {}
    for f in [*marks, *ar_marks]:
        for lane in f.lanes:
            seen.setdefault(lane, None)
    order = {PLAN: 0, TEXT: 2, AR: 3}
    return sorted(seen, key=lambda lane: order.get(lane, 1))  # stable: spans keep run order


def _dots(marks: list[Forward], row: dict[str, int], name: str, symbol: str) -> go.Scatter:
    """One-token forwards as dots of `symbol` (a prefill a square, a sampled end a cross); the
    legend shows the trace's first marker, so a trace that starts with a prefill is drawn first
    from its most common kind."""
    symbols = {"prefill": "square-open", "end": "x-thin-open"}
    marks = sorted(marks, key=lambda f: f.kind in symbols)  # the legend takes the first marker
    return go.Scatter(
        x=[f.index for f in marks], y=[row[f.lanes[0]] for f in marks], mode="markers", name=name,
        hovertext=[escape(f"forward {f.index} · {f.detail}") for f in marks],
        hoverinfo="text", marker=dict(size=[7 + 3 * f.tokens for f in marks],
                                      color=[f.tokens for f in marks], coloraxis="coloraxis",
                                      symbol=[symbols.get(f.kind, symbol) for f in marks],
                                      line=dict(width=1, color="#808080")))


def _bars(marks: list[Forward], row: dict[str, int]) -> list[go.BaseTraceType]:
    """One bar per denoise forward across its round's span lanes, the counts written on it."""
    top = [min(row[lane] for lane in f.lanes) for f in marks]
    bottom = [max(row[lane] for lane in f.lanes) for f in marks]
    traces: list[go.BaseTraceType] = [go.Bar(
        x=[f.index for f in marks], base=[t - 0.38 for t in top],
        y=[b - t + 0.76 for t, b in zip(top, bottom, strict=True)], width=0.8,
        name="denoise forward (shared by its spans)", hoverinfo="text",
        hovertext=[escape(f"forward {f.index} · {f.detail}") for f in marks],
        marker=dict(color=[f.tokens for f in marks], coloraxis="coloraxis",
                    line=dict(width=0)))]
    if len(marks) <= MAX_LABELLED:
        cells = [(f.index, row[lane], n) for f in marks
                 for lane, n in zip(f.lanes, f.per_lane, strict=True) if n]
        traces.append(go.Scatter(x=[c[0] for c in cells], y=[c[1] for c in cells], mode="text",
                                 text=[str(c[2]) for c in cells], hoverinfo="skip", showlegend=False,
                                 textfont=dict(size=10, color="#FFFFFF")))
    return traces


def _count_lines(fig: go.Figure, ends: list[tuple[int, str]]) -> None:
    """A dotted line after each run's last forward, its count above the plot, one row each (so two
    counts never overlap), written away from the nearer edge (so neither is clipped)."""
    right = max(n for n, _ in ends)
    for i, (n, who) in enumerate(ends):
        fig.add_vline(x=n + 0.5, line=dict(color=_GREY, dash="dot"))
        fig.add_annotation(x=n + 0.5, xref="x", y=1, yref="paper", yanchor="bottom",
                           xanchor="right" if n > right / 2 else "left", yshift=2 + 16 * i,
                           text=f"{who}: {n} forwards", showarrow=False, font=dict(size=11))


def timeline_figure(view: RunView, ar_view: RunView | None = None) -> go.Figure | None:
    """The run's forwards as marks in lanes (and the AR baseline's, when given); None before a
    run finished."""
    marks = forwards(view)
    if not marks:
        return None
    ar_marks = forwards(ar_view) if ar_view is not None and ar_view.mode == "autoregressive" else []
    lanes = lanes_of(marks, ar_marks)
    row = {lane: i for i, lane in enumerate(lanes)}
    fig = go.Figure()
    single = [f for f in marks if f.kind != "denoise"]
    if single:
        fig.add_trace(_dots(single, row, "plan / text forward", "circle"))
    shared = [f for f in marks if f.kind == "denoise"]
    if shared:
        for trace in _bars(shared, row):
            fig.add_trace(trace)
    if ar_marks:
        fig.add_trace(_dots(ar_marks, row, "AR forward", AR_SYMBOL))
    ends = [(n, who) for n, who in ((len(marks), view.mode), (len(ar_marks), "AR")) if n]
    _count_lines(fig, ends)
    _style(fig, X_TITLE, "")
    fig.update_layout(height=LEGEND_PX + 110 + 26 * len(lanes) + 16 * len(ends), bargap=0,
                      barmode="overlay", margin=dict(l=10, r=10, t=12 + 16 * len(ends),
                                                     b=45 + LEGEND_PX),
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0),
                      coloraxis=dict(colorscale="Viridis", cmin=0,
                                     colorbar=dict(title=dict(text="tokens", side="top"),
                                                   thickness=10, len=0.75, y=0,
                                                   ticklabelposition="outside bottom",
                                                   yanchor="bottom")))
    fig.update_yaxes(tickvals=list(range(len(lanes))), ticktext=[escape(x) for x in lanes],
                     range=[len(lanes) - 0.5, -0.5], automargin=True, showgrid=False, zeroline=False)
    fig.update_xaxes(rangemode="tozero")
    return fig
