"""Where a run's time goes: model forwards versus everything the engine does around them.

`measure(engine, prompt, config)` times every model forward (synchronising CUDA when the model
is there) and the engine's own clock, so the host time outside forwards (sampling, schedules,
masks, events) can be reported per denoise step (issue: at most 15% of a denoise step). It is
run by `python -m pdiff bench --overhead`; it changes nothing in the engine.
"""

from __future__ import annotations

import statistics
import time

import torch

from pdiff.config import GenerationConfig
from pdiff.engine import Engine
from pdiff.events import DenoiseStep, Finished


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(engine: Engine, prompt: str, config: GenerationConfig, repeats: int = 5) -> dict:
    """Median figures over `repeats` runs (after one warm-up run)."""
    model, device = engine.model, engine.device
    original = model.forward
    spent: list[float] = []

    def timed(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        out = original(*args, **kwargs)
        _sync(device)
        spent.append(time.perf_counter() - start)
        return out

    rows = []
    model.forward = timed
    try:
        for i in range(repeats + 1):
            spent.clear()
            denoise_wall, last, steps = 0.0, None, 0
            t0 = time.perf_counter()
            for event in engine.generate(prompt, config):
                now = time.perf_counter()
                if isinstance(event, DenoiseStep):
                    steps += 1
                    denoise_wall += now - (last or now)
                last = now
                if isinstance(event, Finished):
                    final = event
            wall = time.perf_counter() - t0
            if i:  # the first run warms up
                rows.append(dict(wall=wall, engine=final.stats.total_seconds, forwards=sum(spent),
                                 calls=len(spent), steps=steps, denoise=final.stats.denoise_seconds))
    finally:
        del model.forward  # back to the class's method
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    outside = max(0.0, med["engine"] - med["forwards"])
    per_step = med["denoise"] / max(1, med["steps"])
    per_forward = med["forwards"] / max(1, med["calls"])
    return {
        "engine_seconds": med["engine"],
        "forward_seconds": med["forwards"],
        "outside_forward_seconds": outside,
        "outside_share_of_engine": outside / med["engine"] if med["engine"] else 0.0,
        "forwards": med["calls"],
        "denoise_steps": med["steps"],
        "denoise_step_seconds": per_step,
        "outside_per_forward_seconds": outside / max(1, med["calls"]),
        "outside_per_forward_share_of_denoise_step": (outside / max(1, med["calls"])) / per_step
        if per_step else None,
        "mean_forward_seconds": per_forward,
        "repeats": len(rows),
    }
