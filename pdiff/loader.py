"""Load and save Hugging Face checkpoint folders: config.json, safetensors, tokenizer.json.

A model is named by a local folder or a hub id ("dmisrael/planned-diffusion-dream7b-sft-16ep").
Hub ids resolve through huggingface_hub (its cache, or a download where the network allows).
Weights are read with safetensors straight into a model built on the meta device (accelerate),
so a 15 GB checkpoint is never held twice. We run our own model class, not the checkpoint's
remote code. `load_engine` hands the loaded model and tokenizer to an `Engine`; this module
knows nothing about how generation runs.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
from accelerate import init_empty_weights
from safetensors import safe_open
from safetensors.torch import save_file

from pdiff.engine import Engine
from pdiff.model import DreamModel, ModelConfig
from pdiff.tokenizer import Tokenizer

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
MODEL_TYPES = ("dream", "qwen2")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Where the bundled default model lives; the app and the CLI use it when no model is named.
BUNDLED = Path(__file__).resolve().parent.parent / "assets" / "models" / "pd-notes"
BUNDLED_AR = BUNDLED.parent / "ar-notes"


class CheckpointError(ValueError):
    """A model name or folder that cannot be loaded; the message says why."""


def resolve(name: str | Path) -> Path:
    """A local checkpoint folder for `name`: the folder itself, or a hub snapshot."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise CheckpointError(f"{name} is not a checkpoint folder (it has no config.json)")
        return path
    if not _HUB_ID.match(str(name)):
        raise CheckpointError(f"model {name!s} does not exist: give a checkpoint folder or a hub id")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(
            str(name), allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        raise CheckpointError(
            f"could not fetch {name} from the Hugging Face hub ({type(err).__name__}); "
            "check the id and the network, or download it and pass the folder") from None


def read_config(folder: Path) -> ModelConfig:
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"config.json is not readable JSON: {err}") from None
    model_type = str(raw.get("model_type", "")).lower()
    if model_type not in MODEL_TYPES:
        raise CheckpointError(
            f"model_type {raw.get('model_type')!r} is not supported; pdiff runs Dream and qwen2")
    try:
        return ModelConfig.from_hf(raw)
    except TypeError as err:
        raise CheckpointError(f"config.json has unexpected fields: {err}") from None


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files: one file, or the shards an index names."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError("the checkpoint has no .safetensors weights")
    return files


def load_model(folder: Path, device: str = "cpu", dtype: str = "float32") -> DreamModel:
    if dtype not in DTYPES:
        raise CheckpointError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    config = read_config(folder)
    with init_empty_weights():
        model = DreamModel(config)  # parameters on the meta device: no memory yet
    expected = set(model.state_dict())
    state: dict[str, torch.Tensor] = {}
    for file in weight_files(folder):
        with safe_open(str(file), framework="pt", device=str(device)) as f:
            for key in f.keys():
                if key in expected:
                    state[key] = f.get_tensor(key).to(DTYPES[dtype])
    if config.tie_word_embeddings and "lm_head.weight" not in state:
        state["lm_head.weight"] = state.get("model.embed_tokens.weight")
    missing = sorted(k for k in expected if state.get(k) is None)
    if missing:
        raise CheckpointError(f"the checkpoint lacks {len(missing)} weights, e.g. {missing[0]}")
    model.load_state_dict(state, assign=True, strict=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def load_engine(name: str | Path | None = None, device: str = "cpu", dtype: str = "float32",
                graphs: bool | None = None) -> Engine:
    """The public loader: checkpoint folder or hub id (None: the bundled model) -> Engine.

    `graphs` runs the forwards on static shapes (pdiff.graphs), captured as CUDA graphs here, at
    load, on a GPU (`engine.graphs.capture_seconds` says how long each width took); None: on
    for CUDA, off for the CPU, whose eager path it leaves unchanged."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"device {device} was asked for, but no CUDA GPU is available")
    folder = resolve(BUNDLED if name is None else name)
    tokenizer = Tokenizer.load(folder)
    model = load_model(folder, device, dtype)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"{model.config.vocab_size} embeddings")
    meta = json.loads((folder / "config.json").read_text()).get("pdiff") or {}
    engine = Engine(model, tokenizer, name=str(name or "bundled"),
                    length_scale=int(meta.get("length_scale", 10)), decoding=meta.get("decoding"))
    if device.startswith("cuda") if graphs is None else graphs:
        from pdiff.graphs import Graphs

        try:
            engine.graphs = Graphs(model)
            engine.graphs.prepare()
        except RuntimeError as err:  # e.g. a CUDA that cannot capture here (ZeroGPU's start-up)
            if graphs:
                raise
            engine.graphs = None
            logging.getLogger(__name__).warning("CUDA graphs off, every forward eager: %s", err)
    return engine


def save_checkpoint(model: DreamModel, hf_tokenizer, folder: str | Path, extra: dict | None = None) -> Path:
    """Write config.json, model.safetensors and the tokenizer files; the loader reads them back."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**model.config.to_hf(), "torch_dtype": "float32", **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    hf_tokenizer.save_pretrained(str(folder))
    return folder
