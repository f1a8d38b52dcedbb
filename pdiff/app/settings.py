"""The app's start-up: settings from the environment, the models they name, and the examples.

`settings_from_env` reads the PDIFF_* and GRADIO_SERVER_* variables (a bad one is a
`SettingsError` naming it); `load_models` loads the model and its autoregressive baseline once;
`load_examples` gives the prompts and the starter plan for the model's kind. A model comes from
an allow-list, or (the operator's choice only) a local folder; `public_model_name` is how a
model may be named to a visitor. This module knows nothing of gradio, runs or pages.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pdiff.app import zerogpu
from pdiff.config import LIMITS

log = logging.getLogger("pdiff.app")

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES_PATH = ROOT / "assets" / "examples.json"
CSS_PATH = ROOT / "assets" / "style.css"

RELEASED_PD = ("dmisrael/planned-diffusion-dream7b-sft-16ep",
               "dmisrael/planned-diffusion-dream7b-sft-full-attention-16ep")
RELEASED_AR = "dmisrael/ar-dream7b-sft-16ep"
ALLOWED_MODELS = ("bundled", *RELEASED_PD)  # what PDIFF_MODEL may name besides a local folder
THREAD_CHOICES = ("auto", "torch")  # PDIFF_THREADS: the chosen policy, or torch's own default
QUALITY_LABELS = {"checker": "checker score (fact accuracy)", "confidence": "mean commit confidence"}


class SettingsError(ValueError):
    """A start-up setting (environment variable) is bad; the message names the variable."""


@dataclass(frozen=True)
class AppSettings:
    model: str  # "bundled", a released PD id, or an operator's local checkpoint folder
    ar_model: str | None  # PDIFF_AR_MODEL: None = the default for the model, "none" = no baseline
    device: str
    dtype: str
    max_new_tokens: int
    queue_size: int
    concurrency: int
    sweep_limit: int
    server_name: str
    server_port: int
    threads: str = "auto"  # PDIFF_THREADS: auto = pdiff.threads' policy (CPU); torch = torch's default
    cache_mb: int = 500  # PDIFF_CACHE_MB: uploads, served files and traces together, at most this

    @property
    def kind(self) -> str:
        """bundled | released | folder: picks the examples, the baseline and the quality."""
        if self.model == "bundled":
            return "bundled"
        return "released" if self.model in RELEASED_PD else "folder"


def check_model_name(name, allow_folder: bool = False) -> str:
    """`name` if it is on the allow-list (or, for operator config only, a checkpoint folder).

    Anything else is refused with a message; UI and API input never reach the folder branch.
    """
    if not isinstance(name, str) or not name.strip():
        raise SettingsError("a model name must be text")
    name = name.strip()
    if name in ALLOWED_MODELS:
        return name
    if allow_folder and (Path(name).expanduser() / "config.json").is_file():
        return str(Path(name).expanduser().resolve())
    allowed = ", ".join(ALLOWED_MODELS)
    where = " or a local checkpoint folder (with config.json)" if allow_folder else ""
    raise SettingsError(f"model {name[:80]!r} is not allowed; use one of {allowed}{where}")


def public_model_name(name) -> str:
    """A model as traces name it: an allowed id as it is, a checkpoint folder by its last part
    only (traces are downloaded and shared; the operator's folders are not theirs to know)."""
    name = str(name)
    if name in (*ALLOWED_MODELS, RELEASED_AR):
        return name
    return Path(name).name or name


def _env_int(env: Mapping[str, str], var: str, default: int, low: int, high: int) -> int:
    raw = (env.get(var) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{var} must be a whole number; got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{var} must be in [{low}, {high}]; got {value}")
    return value


def _ar_model_from_env(env: Mapping[str, str]) -> str | None:
    raw = (env.get("PDIFF_AR_MODEL") or "").strip()
    if not raw:
        return None
    if raw.lower() == "none":
        return "none"
    if raw == RELEASED_AR:
        return raw
    if (Path(raw).expanduser() / "config.json").is_file():
        return str(Path(raw).expanduser().resolve())
    raise SettingsError(f"PDIFF_AR_MODEL must be {RELEASED_AR}, none, or a local "
                        f"checkpoint folder (with config.json); got {raw[:80]!r}")


def _device_from_env(env: Mapping[str, str], cuda_available: bool) -> tuple[str, str]:
    from pdiff.loader import DTYPES  # torch is imported by the loader anyway

    device = (env.get("PDIFF_DEVICE") or ("cuda" if cuda_available else "cpu")).strip().lower()
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise SettingsError(f"PDIFF_DEVICE must be cpu or cuda; got {device[:40]!r}")
    if device.startswith("cuda") and not cuda_available:
        raise SettingsError(f"PDIFF_DEVICE={device} but no CUDA GPU is available; use cpu")
    dtype = (env.get("PDIFF_DTYPE") or ("bfloat16" if device != "cpu" else "float32")).strip()
    if dtype not in DTYPES:
        raise SettingsError(f"PDIFF_DTYPE must be one of {', '.join(DTYPES)}; got {dtype[:40]!r}")
    return device, dtype


def settings_from_env(env: Mapping[str, str], cuda_available: bool | None = None) -> AppSettings:
    """Read the PDIFF_* and GRADIO_SERVER_* variables; SettingsError names the bad one."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    try:
        model = check_model_name(env.get("PDIFF_MODEL") or "bundled", allow_folder=True)
    except SettingsError as err:
        raise SettingsError(f"PDIFF_MODEL: {err}") from None
    ar_model = _ar_model_from_env(env)
    device, dtype = _device_from_env(env, cuda_available)
    server_name = (env.get("GRADIO_SERVER_NAME") or "127.0.0.1").strip()
    if not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]+", server_name):
        raise SettingsError(f"GRADIO_SERVER_NAME must be a host name or address; got {server_name[:40]!r}")
    return AppSettings(
        model=model, ar_model=ar_model, device=device, dtype=dtype,
        max_new_tokens=_env_int(env, "PDIFF_MAX_NEW_TOKENS", 512, 1, int(LIMITS["max_new_tokens"][1])),
        queue_size=_env_int(env, "PDIFF_QUEUE_SIZE", 16, 1, 10_000),
        concurrency=_env_int(env, "PDIFF_CONCURRENCY", 2, 1, 64),
        sweep_limit=_env_int(env, "PDIFF_SWEEP_LIMIT", 8, 1, 64),
        server_name=server_name,
        server_port=_env_int(env, "GRADIO_SERVER_PORT", 7860, 1, 65_535),
        threads=_threads_from_env(env),
        cache_mb=_env_int(env, "PDIFF_CACHE_MB", 500, 1, 1_000_000),
    )


def _threads_from_env(env: Mapping[str, str]) -> str:
    raw = (env.get("PDIFF_THREADS") or "auto").strip().lower()
    if raw not in THREAD_CHOICES:
        raise SettingsError(f"PDIFF_THREADS must be one of {', '.join(THREAD_CHOICES)}; got {raw[:40]!r}")
    return raw


# --- models and examples -------------------------------------------------------------------------


@dataclass
class Models:
    pd: object  # pdiff.engine.Engine
    ar: object | None  # a separate AR baseline engine, or None: the PD model in AR mode
    kind: str
    name: str
    ar_name: str | None

    @property
    def display_name(self) -> str:
        """The model as the page names it: never an operator's full folder path."""
        if self.kind == "folder":
            return f"local checkpoint {Path(self.name).name}"
        return "bundled pd-notes" if self.kind == "bundled" else self.name

    @property
    def quality_kind(self) -> str:
        return "checker" if self.kind == "bundled" else "confidence"

    @property
    def quality_label(self) -> str:
        return QUALITY_LABELS[self.quality_kind]

    @property
    def baseline_note(self) -> str:
        if self.ar is not None:
            return f"autoregressive baseline: {Path(self.ar_name or '').name or self.ar_name}"
        return ("no separate autoregressive baseline model is loaded; the baseline is this "
                "planned-diffusion model decoding in autoregressive mode")


def load_models(settings: AppSettings, loader: Callable | None = None) -> Models:
    """Load the model (and its AR baseline) once; SettingsError names the variable on failure."""
    from pdiff.loader import BUNDLED_AR, CheckpointError, load_engine

    # ZeroGPU attaches a GPU per call, in a process of its own: graphs captured here would not
    # be there, so its forwards stay eager (None: the loader's choice, graphs on CUDA)
    graphs = {"graphs": False} if zerogpu.available() else {}
    loader = loader or load_engine
    failures = (CheckpointError, OSError, RuntimeError, ValueError, KeyError)
    try:
        pd = loader(None if settings.model == "bundled" else settings.model,
                    settings.device, settings.dtype, **graphs)
    except failures as err:
        raise SettingsError(f"PDIFF_MODEL={settings.model} could not be loaded: {err}") from None
    ar_name = settings.ar_model
    explicit = ar_name not in (None, "none")
    if ar_name is None:
        if settings.kind == "bundled" and (BUNDLED_AR / "config.json").is_file():
            ar_name = str(BUNDLED_AR)
        elif settings.kind == "released":
            ar_name = RELEASED_AR
    ar = None
    if ar_name not in (None, "none"):
        try:
            ar = loader(ar_name, settings.device, settings.dtype, **graphs)
        except failures as err:
            if explicit:
                raise SettingsError(f"PDIFF_AR_MODEL={ar_name} could not be loaded: {err}") from None
            log.warning("AR baseline %s unavailable (%s); using the PD model in AR mode", ar_name, err)
    return Models(pd, ar, settings.kind, settings.model, ar_name if ar is not None else None)


def load_examples(kind: str, path: Path = EXAMPLES_PATH) -> tuple[list[str], list[list]]:
    """(example prompts, starter plan rows) for a model kind; empty if the file is unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        entry = data["released" if kind == "released" else "bundled"]
        return [str(p) for p in entry["prompts"]], [list(r) for r in entry["plan"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("examples not loaded from %s: %s", path, err)
        return [], []
