"""The size comparison of the bundled-models issue (item 5): AR checkpoints of two shapes,
trained side by side from scratch on one budget (the same seconds, so the larger gets fewer
steps), scored at temperature 0, one thread each, on the held-out prompts, the visitor set and
the copy and number probe, as the bench scores a row (`pdiff.bench.report.check_row`):

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/size-comparison.py \\
        runs/size/ar-small runs/size/ar-medium --heldout 200 --probe 200 --out docs/bench/size

Each folder is scored in its own process (one core each); the figures go to OUT/size.json and,
as a table, to OUT/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VISITORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "visitors.jsonl"
COLUMNS = ("score", "invented", "name_exact", "numbers_exact")


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return round(statistics.mean(values), 4) if values else None


def score_folder(folder: str, heldout: int, probe: int, visitors: int | None = None) -> dict:
    """One checkpoint's figures on each prompt set, and what it is (shape, parameters, steps)."""
    import torch

    torch.set_num_threads(1)
    from pdiff.bench.prompts import heldout as heldout_set
    from pdiff.bench.prompts import probe as probe_set
    from pdiff.bench.prompts import read_prompts
    from pdiff.bench.report import check_row
    from pdiff.loader import load_engine

    engine = load_engine(folder)
    record = json.loads((Path(folder) / "config.json").read_text())["pdiff"]
    config = engine.config(mode="autoregressive", temperature=0.0)
    out = {"folder": folder, "shape": record["train_config"]["shape"],
           "parameters": sum(p.numel() for p in engine.model.parameters()),
           "mb": round((Path(folder) / "model.safetensors").stat().st_size / 2**20, 1),
           "steps": record["steps_done"], "batch_size": record["train_config"]["batch_size"],
           "train_seconds": round(record["seconds"])}
    sets = (("heldout", heldout_set(heldout, None)), ("visitors", read_prompts(VISITORS, visitors)),
            ("probe", probe_set(probe, None)))
    for name, given in sets:
        rows, t0 = [], time.perf_counter()
        for i, prompt in enumerate(given.texts):
            row = {"prompt": i, "text": engine.generate_text(prompt, config).text}
            row["score"] = check_row(row, given)
            rows.append(row)
        out[name] = {"prompts": len(rows), **{k: _mean(rows, k) for k in COLUMNS},
                     "seconds_per_prompt": round((time.perf_counter() - t0) / len(rows), 3)}
    return out


def table(results: list[dict]) -> str:
    head = ("| model | parameters | MB | steps x batch | train s | set | score | invented | "
            "name exact | numbers exact |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in results:
        for name in ("heldout", "visitors", "probe"):
            s = r[name]
            cells = [f"{s[k]:.3f}" if s[k] is not None else "–" for k in COLUMNS]
            lines.append(f"| {r['shape']} | {r['parameters'] / 1e6:.2f} M | {r['mb']} | {r['steps']} x "
                         f"{r['batch_size']} | {r['train_seconds']} | {name} ({s['prompts']}) | "
                         + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+")
    p.add_argument("--heldout", type=int, default=200)
    p.add_argument("--probe", type=int, default=200)
    p.add_argument("--visitors", type=int, help="the first N of the visitor set (default: all)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    with ProcessPoolExecutor(len(args.folders)) as pool:
        results = list(pool.map(score_folder, args.folders, [args.heldout] * len(args.folders),
                                [args.probe] * len(args.folders), [args.visitors] * len(args.folders)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "size.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "README.md").write_text(
        "# Size comparison (AR, from scratch, one budget)\n\nMade by `scripts/size-comparison.py` "
        "(its docstring has the command).\n\n" + table(results))
    print(table(results))


if __name__ == "__main__":
    main()
