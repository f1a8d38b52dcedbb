"""The running machine, measured once at start-up: the device in words, the threads, the cost of
a wide forward against a 1-token one.

`measure_cost` times the loaded model itself: after a cached prefix, one forward over 1 token
(a plan or AR step) and one over `wide` tokens (a denoise step over the spans), each the median
of a few repeats, bounded in time. Its `factor` is what parallel tokens cost on this machine;
"How it works" and the speed line quote it, never a constant. `choose_threads` makes the thread
policy of `pdiff.threads` deliberate: it gives a run several threads for wide forwards only if
that measured faster here. This module knows nothing of gradio, pages or runs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from pdiff.threads import ThreadPolicy, available_cores

PREFIX_TOKENS = 64  # the cached context both timed forwards attend to, as in a real run
REPEATS = 5  # timed forwards per width (after one warm-up), fewer if the budget runs out
BUDGET_SECONDS = 1.5  # the most one width's timing may take: start-up stays short
PAYS = 0.9  # several threads are used only if they take at most this share of one thread's time


def device_words(device: str) -> str:
    """'CPU (2 cores)' or 'GPU (NVIDIA H200)': the device the settings loaded, in words."""
    if device.startswith("cuda"):
        try:
            return f"GPU ({torch.cuda.get_device_name(torch.device(device))})"
        except (RuntimeError, AssertionError):
            return "GPU"
    cores = available_cores()
    return f"CPU ({cores} core{'s' if cores != 1 else ''})"


@dataclass(frozen=True)
class ForwardCost:
    """What one wide forward costs against a 1-token forward, on the running machine."""

    device: str  # in words, from `device_words`
    narrow_seconds: float  # median seconds of a forward over 1 token after the prefix
    wide_seconds: float  # median seconds of a forward over `wide_tokens` tokens after it
    wide_tokens: int

    @property
    def factor(self) -> float:
        """wide / narrow: how many 1-token forwards one wide forward costs."""
        return self.wide_seconds / self.narrow_seconds if self.narrow_seconds > 0 else float("nan")

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("GPU")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(model, tokens: int, prefix: int = PREFIX_TOKENS, repeats: int = REPEATS,
                 budget: float = BUDGET_SECONDS) -> float:
    """Median seconds of one forward over `tokens` new tokens after a cached `prefix`.

    Ids are arbitrary (timing does not depend on them); visibility is causal; the cache is not
    advanced, so every repeat is the same forward. One warm-up, then up to `repeats`, stopping
    early once `budget` seconds are spent.
    """
    device = model.lm_head.weight.device
    vocab = model.config.vocab_size
    prefix = max(1, min(prefix, model.config.max_position_embeddings - tokens))
    cache = model.new_cache(prefix + tokens)
    ids = torch.arange(prefix + tokens, device=device) % vocab  # (P + T,)
    positions = torch.arange(prefix + tokens, device=device)
    causal = positions[:, None] >= positions[None, :]  # (P + T, P + T)
    times = []
    with torch.inference_mode():
        model(ids[None, :prefix], positions[:prefix], causal[:prefix, :prefix], cache, 0, True)
        seg = positions[prefix:]
        vis = causal[prefix:]  # (T, P + T)
        began = time.perf_counter()
        for i in range(repeats + 1):
            _sync(device)
            t0 = time.perf_counter()
            model(ids[None, prefix:], seg, vis, cache, prefix, False)
            _sync(device)
            if i:  # the first is a warm-up
                times.append(time.perf_counter() - t0)
            if time.perf_counter() - began > budget and times:
                break
    return statistics.median(times)


def measure_cost(model, device: str, wide: int) -> ForwardCost:
    """Time a 1-token and a `wide`-token forward of `model` as the runs will run them."""
    wide = max(2, min(wide, model.config.max_position_embeddings - 2))
    return ForwardCost(device_words(device), time_forward(model, 1), time_forward(model, wide), wide)


def choose_threads(model, runs: int, wide: int, cores: int | None = None) -> ThreadPolicy:
    """The thread policy for `runs` concurrent runs: a run's share of the cores for forwards of
    `wide`+ tokens, if that share measured at most PAYS x the one-thread time here; else one."""
    policy = ThreadPolicy(cores or available_cores(), runs)
    if policy.per_run == 1:
        return policy
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = time_forward(model, wide)
        torch.set_num_threads(policy.per_run)
        several = time_forward(model, wide)
    finally:
        torch.set_num_threads(before)
    return ThreadPolicy(policy.cores, runs, parallel=several <= PAYS * single)


WIDE_TOKENS = 256  # the width of the wide forward timed at start-up: "a few hundred tokens"


@dataclass(frozen=True)
class Machine:
    """What start-up measured: the forward cost, and the thread policy the engines use."""

    cost: ForwardCost
    policy: ThreadPolicy | None  # None: torch's own default threads (a GPU, or PDIFF_THREADS=torch)


def start_machine(engines, device: str, runs: int, threads: str = "auto") -> Machine:
    """Choose the threads (on a CPU with threads="auto"), give them to `engines`, and measure
    the forward cost under them. `engines[0]` is the model the page runs."""
    model = engines[0].model
    policy = None
    if device == "cpu" and threads == "auto":
        policy = choose_threads(model, runs, WIDE_TOKENS)
        torch.set_num_threads(1)  # new threads start from this; a forward sets its own
        for engine in engines:
            engine.threads = policy
    wide = max(2, min(WIDE_TOKENS, model.config.max_position_embeddings // 2))
    if policy is None:
        return Machine(measure_cost(model, device, wide), None)
    before = torch.get_num_threads()
    try:
        policy.apply(1)
        narrow = time_forward(model, 1)
        policy.apply(wide)
        wide_s = time_forward(model, wide)
    finally:
        torch.set_num_threads(before)
    return Machine(ForwardCost(device_words(device), narrow, wide_s, wide), policy)
