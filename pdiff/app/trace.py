"""Traces: a run's settings and events as JSON, written for download and read back from uploads.

`trace_to_json` and `trace_from_json` are the format (checked field by field and event by event,
`TraceError` with a short message on anything else; with `TraceLimits`, every number is held to
what a real run of the loaded model could produce, see `pdiff.app.guard`; the settings of a trace
written before `schedule` was a knob are read in today's spelling); `settings_for_trace`
is what a trace says about a run; `TraceStore` keeps the newest downloads in one folder of its
own, removed at exit (and, at the next start, the folders of processes that were killed);
`read_trace` reads an upload.
A trace names a model by its public name and never holds a server path. This module knows
nothing of gradio, models or HTML.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import tempfile
import time
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

from pdiff.app.fold import RunView
from pdiff.app.guard import TraceCheck, TraceError, TraceLimits, check_settings
from pdiff.app.settings import public_model_name
from pdiff.config import ConfigError, GenerationConfig, upgrade_schedule
from pdiff.events import Event
from pdiff.events import from_dict as event_from_dict
from pdiff.events import to_dict as event_to_dict
from pdiff.plan import render_plan

MAX_TRACE_BYTES = 20 * 1024 * 1024
TRACE_FORMAT, TRACE_VERSION = "pdiff-trace", 1
__all__ = ["TraceError", "TraceLimits", "TraceStore", "read_trace", "trace_from_json", "trace_to_json"]


def trace_to_json(settings: dict, events: list[Event]) -> str:
    """A run as compact JSON (UTF-8 text, no padding): its settings and its events, nothing else."""
    try:
        return json.dumps({"format": TRACE_FORMAT, "version": TRACE_VERSION,
                           "settings": dict(settings), "events": [event_to_dict(e) for e in events]},
                          separators=(",", ":"), ensure_ascii=False, allow_nan=False)
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


def trace_from_json(text: str | bytes, view: RunView | None = None,
                    limits: TraceLimits | None = None) -> tuple[dict, list[Event]]:
    """Read a trace back: (settings, events). Raises TraceError on anything else.

    Every event is folded into `view` (a fresh RunView when None) to check its order; a caller
    that passes one keeps the folded view of the whole run. With `limits`, the settings and
    every event are first held to what a real run of that model on this server could produce,
    and the trace's own export (`trace_to_json`) must fit the size cap, so it loads again."""
    settings, raw = _document(text)
    if limits is not None:
        settings = check_settings(settings, limits)
        if len(raw) > limits.max_events:
            raise TraceError(f"the trace has {len(raw)} events; a run on this server (max_new_tokens "
                             f"{limits.max_new_tokens}) has at most {limits.max_events}")
    events = _events(raw, RunView() if view is None else view, limits)
    if limits is not None and len(trace_to_json(settings, events).encode()) > MAX_TRACE_BYTES:
        raise TraceError(f"this trace would save as over {MAX_TRACE_BYTES // 2**20} MB; it was not read")
    return settings, events


def _document(text) -> tuple[dict, list]:
    """A trace file's settings object and raw events list."""
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
    try:
        settings = upgrade_schedule(settings)  # a trace written before `schedule` was a knob
    except ConfigError as err:
        raise TraceError(f"the trace's settings are not a run's: {str(err)[:160]}") from None
    return settings, raw


def _events(raw: list, view: RunView, limits: TraceLimits | None) -> list[Event]:
    """The raw events as typed events, each held to `limits` and folded into `view`."""
    check = None if limits is None else TraceCheck(limits)
    events: list[Event] = []
    for i, item in enumerate(raw):
        try:
            ev = event_from_dict(item)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise TraceError(f"event {i + 1} is not a pdiff event: {str(err)[:120]}") from None
        if not _typed(ev, type(ev)):
            raise TraceError(f"event {i + 1} ({type(ev).__name__}) has a field of the wrong type")
        try:
            if check is not None:
                check.check(ev)
        except TraceError as err:
            raise TraceError(f"event {i + 1} ({type(ev).__name__}): {err}") from None
        try:
            view.apply(ev)
        except ValueError as err:
            raise TraceError(f"event {i + 1} does not follow the ones before: {err}") from None
        events.append(ev)
    return events


def settings_for_trace(prompt: str, config: GenerationConfig, model: str) -> dict:
    """JSON-ready run settings (a structured plan is written back as plan markup)."""
    values = config.to_dict()
    if isinstance(values["plan"], tuple):
        values["plan"] = render_plan(values["plan"])
    return {"prompt": prompt, "model": public_model_name(model), **values}


FOLDER_PREFIX = "pdiff-traces-"
_FOLDER = re.compile(re.escape(FOLDER_PREFIX) + r"(\d+)-")  # pdiff-traces-<pid>-<random>
STALE_SECONDS = 6 * 3600  # a folder of the old form (no pid) is left alone until it is this old


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_folders(root: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the trace folders of processes that are gone (killed before their exit clean-up);
    a folder named without a pid (an older version's) only once it is STALE_SECONDS old."""
    root = Path(root or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for folder in root.glob(FOLDER_PREFIX + "*"):
        match = _FOLDER.match(folder.name)
        try:
            gone = (not _alive(int(match.group(1))) if match
                    else now - folder.stat().st_mtime > STALE_SECONDS)
        except OSError:
            continue
        if gone and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class TraceStore:
    """Trace files for download, in one folder of this process, keeping only the newest `keep`.

    A file is named by its run alone (`pdiff-trace-<run id>.json`). Without a `folder`, the store
    makes its own under the system temp folder, removes it at exit, and first removes the
    folders that killed processes left behind."""

    def __init__(self, folder: Path | None = None, keep: int = 64) -> None:
        if folder is None:
            remove_stale_folders()
            folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
            atexit.register(shutil.rmtree, folder, True)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def write(self, text: str, run_id: str | None = None) -> str:
        name = run_id or f"{time.time_ns():x}"
        if not re.fullmatch(r"[\w-]{1,64}", name):
            raise TraceError("a run id names a trace file with letters, digits, - and _ only")
        path = self.folder / f"pdiff-trace-{name}.json"
        path.write_text(text, encoding="utf-8")
        files = sorted(self.folder.glob("pdiff-trace-*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[:-self.keep]:
            old.unlink(missing_ok=True)
        return str(path)


def read_trace(path, view: RunView | None = None,
               limits: TraceLimits | None = None) -> tuple[dict, list[Event]]:
    """Read an uploaded trace file (into `view`, held to `limits`, as trace_from_json);
    TraceError says what is wrong with it."""
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
    return trace_from_json(data, view, limits)
