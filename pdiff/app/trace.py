"""Traces: a run's settings and events as JSON, written for download and read back from uploads.

`trace_to_json` and `trace_from_json` are the format (checked field by field and event by event,
`TraceError` with a short message on anything else); `settings_for_trace` is what a trace says
about a run; `TraceStore` keeps the newest downloads in one folder; `read_trace` reads an upload.
A trace names a model by its public name and never holds a server path. This module knows
nothing of gradio, models or HTML.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import time
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

from pdiff.app.settings import public_model_name
from pdiff.app.view import RunView
from pdiff.config import GenerationConfig
from pdiff.events import Event
from pdiff.events import from_dict as event_from_dict
from pdiff.events import to_dict as event_to_dict
from pdiff.plan import render_plan

MAX_TRACE_BYTES = 20 * 1024 * 1024
TRACE_FORMAT, TRACE_VERSION = "pdiff-trace", 1


class TraceError(ValueError):
    """A trace that cannot be read; the message says why in a line, without paths or code."""


def trace_to_json(settings: dict, events: list[Event]) -> str:
    """A run as JSON: its settings and its events, nothing else."""
    try:
        return json.dumps({"format": TRACE_FORMAT, "version": TRACE_VERSION,
                           "settings": dict(settings), "events": [event_to_dict(e) for e in events]})
    except (TypeError, ValueError) as err:
        raise TraceError(f"this run cannot be saved as a trace: {err}") from None


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _typed(value, hint) -> bool:
    """Whether JSON-read `value` fits the annotation `hint` of an event field."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_typed(value, h) for h in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        return isinstance(value, tuple) and all(_typed(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if is_dataclass(hint):
        hints = _hints(hint)
        return isinstance(value, hint) and all(
            _typed(getattr(value, f.name), hints[f.name]) for f in fields(hint))
    return isinstance(value, hint)


def trace_from_json(text: str | bytes, view: RunView | None = None) -> tuple[dict, list[Event]]:
    """Read a trace back: (settings, events). Raises TraceError on anything else.

    Every event is folded into `view` (a fresh RunView when None) to check its order; a caller
    that passes one keeps the folded view of the whole run."""
    if not isinstance(text, (str, bytes)):
        raise TraceError("a trace is text")
    size = len(text)
    if isinstance(text, str) and size <= MAX_TRACE_BYTES:
        size = len(text.encode("utf-8", "replace"))
    if size > MAX_TRACE_BYTES:
        raise TraceError(f"the trace is over {MAX_TRACE_BYTES // 2**20} MB; it was not read")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise TraceError("the file is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != TRACE_FORMAT:
        raise TraceError("the file is not a pdiff trace (no \"format\": \"pdiff-trace\")")
    if data.get("version") != TRACE_VERSION:
        raise TraceError(f"trace version {str(data.get('version'))[:20]!r} is not readable; "
                         f"this app reads version {TRACE_VERSION}")
    settings, raw = data.get("settings"), data.get("events")
    if not isinstance(settings, dict) or not isinstance(raw, list):
        raise TraceError("a trace needs a \"settings\" object and an \"events\" list")
    events: list[Event] = []
    view = RunView() if view is None else view
    for i, item in enumerate(raw):
        try:
            ev = event_from_dict(item)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise TraceError(f"event {i + 1} is not a pdiff event: {str(err)[:120]}") from None
        if not _typed(ev, type(ev)):
            raise TraceError(f"event {i + 1} ({type(ev).__name__}) has a field of the wrong type")
        try:
            view.apply(ev)
        except ValueError as err:
            raise TraceError(f"event {i + 1} does not follow the ones before: {err}") from None
        events.append(ev)
    return settings, events


def settings_for_trace(prompt: str, config: GenerationConfig, model: str) -> dict:
    """JSON-ready run settings (a structured plan is written back as plan markup)."""
    values = config.to_dict()
    if isinstance(values["plan"], tuple):
        values["plan"] = render_plan(values["plan"])
    return {"prompt": prompt, "model": public_model_name(model), **values}


class TraceStore:
    """Trace files for download, in one folder, keeping only the newest `keep`."""

    def __init__(self, folder: Path | None = None, keep: int = 64) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="pdiff-traces-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._n = 0

    def write(self, text: str) -> str:
        self._n += 1
        path = self.folder / f"pdiff-trace-{os.getpid()}-{time.time_ns()}-{self._n}.json"
        path.write_text(text)
        files = sorted(self.folder.glob("pdiff-trace-*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[:-self.keep]:
            old.unlink(missing_ok=True)
        return str(path)


def read_trace(path, view: RunView | None = None) -> tuple[dict, list[Event]]:
    """Read an uploaded trace file (into `view`, as trace_from_json); TraceError says what is
    wrong with it."""
    if not path:
        raise TraceError("choose a trace file (.json) to load")
    path = Path(getattr(path, "name", path))
    try:
        size = path.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise TraceError(f"the trace is over {MAX_TRACE_BYTES // 2**20} MB; it was not read")
        data = path.read_bytes()
    except OSError:
        raise TraceError("the trace file could not be read") from None
    return trace_from_json(data, view)
