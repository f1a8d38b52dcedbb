"""Request times of the real app for 1 and 2 concurrent visitors: torch's default threads
against pdiff's thread policy (PDIFF_THREADS=torch vs auto).

Starts one server per thread setting (the bundled model, PDIFF_CONCURRENCY=2, no OMP_NUM_THREADS),
then, round after round in a rotated order so that both settings see the same machine load,
sends /generate requests through gradio_client: one visitor alone, then two at once. Prints the
median and p90 request time per condition and the ratio default / policy. Bounded: --requests
per condition (default 10), a per-request timeout, and the servers are stopped at the end.

    PYTHONPATH=. .venv/bin/python scripts/bench_visitors.py --requests 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.apphelpers import app_env, free_port, start_command  # noqa: E402

SETTINGS = ("torch", "auto")  # PDIFF_THREADS values compared
PROMPT = ("Tell me about the city Lagil. Facts: country: Dregani; climate: hot; "
          "population: 4800.")


def start(threads: str, tmp: Path):
    port = free_port()
    env = app_env("bundled", port, tmp / threads, PDIFF_THREADS=threads, PDIFF_CONCURRENCY="2")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    (tmp / threads).mkdir(parents=True, exist_ok=True)
    return start_command([sys.executable, "app.py"], env, port, tmp / threads)


def one_request(client, seed: int, timeout: float) -> float:
    t0 = time.perf_counter()
    job = client.submit(PROMPT, api_name="/generate", seed=seed)
    out = job.result(timeout=timeout)
    assert out[5].get("mode") == "planned", out[5]
    return time.perf_counter() - t0


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=10, help="requests per condition")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds per request at most")
    args = p.parse_args()
    from gradio_client import Client

    tmp = Path(tempfile.mkdtemp(prefix="pdiff-visitors-"))
    servers = {t: start(t, tmp) for t in SETTINGS}
    try:
        clients = {t: [Client(s.url, verbose=False) for _ in range(2)] for t, s in servers.items()}
        for t in SETTINGS:  # warm-up: first request of each server, not timed
            one_request(clients[t][0], 0, args.timeout)
        times = {(t, v): [] for t in SETTINGS for v in (1, 2)}
        rounds = args.requests
        with ThreadPoolExecutor(2) as pool:
            for r in range(rounds):
                order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
                for t in order:
                    times[(t, 1)].append(one_request(clients[t][0], r, args.timeout))
                    if len(times[(t, 2)]) < args.requests:  # two visitors at once: 2 requests
                        futures = [pool.submit(one_request, c, r, args.timeout) for c in clients[t]]
                        times[(t, 2)] += [f.result() for f in futures]
        rows = {}
        for (t, v), xs in times.items():
            rows[f"{t} threads, {v} visitor(s)"] = {"n": len(xs), "median_s": statistics.median(xs),
                                                    "p90_s": p90(xs)}
        for v in (1, 2):
            d, a = times[("torch", v)], times[("auto", v)]
            rows[f"ratio default/policy, {v} visitor(s)"] = {
                "median": statistics.median(d) / statistics.median(a), "p90": p90(d) / p90(a)}
        print(json.dumps({"cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "results": rows},
                         indent=1))
        for t, s in servers.items():
            line = next((ln for ln in s.log().splitlines() if "threads:" in ln), "")
            print(f"{t}: {line[line.find('threads:'):][:300]}")
    finally:
        for s in servers.values():
            s.stop()


if __name__ == "__main__":
    main()
