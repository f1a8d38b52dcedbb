"""The MEASURED values of tests/test_handwritten.py, tests/test_bundled.py and
tests/test_visitors.py, computed exactly as those tests compute them (at temperature 0, the
bundled models on disk, one thread; the visitor test's own functions). Run after retraining, and
copy the printed figures into the three tests:

    PYTHONPATH=. .venv/bin/python scripts/measured-accuracy.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pdiff.loader import BUNDLED_AR, load_engine  # noqa: E402
from pdiff.notes.checker import score  # noqa: E402
from pdiff.notes.data import make_split  # noqa: E402
from tests.test_visitors import probe_shares, visitor_accuracy  # noqa: E402

HANDWRITTEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "handwritten.jsonl"


def accuracy(engine, prompts: list[str], config) -> float:
    """Mean fact accuracy of `engine` on `prompts` with `config(temperature=0.0)`."""
    return statistics.mean(score(p, engine.generate_text(p, config(temperature=0.0)).text).fact_accuracy
                           for p in prompts)


def main() -> None:
    torch.set_num_threads(1)
    pd, ar = load_engine(), load_engine(BUNDLED_AR)

    def ar_config(**knobs):
        return ar.config(mode="autoregressive", **knobs)

    handwritten = [json.loads(line)["instruction"] for line in HANDWRITTEN.open()]
    held_out = [ex.prompt for ex in make_split("heldout", 6)]  # tests/test_bundled.py's PROMPTS
    out = {
        "test_handwritten": {"ar": accuracy(ar, handwritten, ar_config),
                             "pd_default": accuracy(pd, handwritten, pd.default_config),
                             "pd_reference": accuracy(pd, handwritten, pd.config)},
        "test_bundled": {"pd": accuracy(pd, held_out, pd.default_config),
                         "ar": accuracy(ar, held_out, ar_config)},
    }
    probes = {"pd_default": probe_shares(pd, pd.default_config), "ar": probe_shares(ar, ar_config)}
    out["test_visitors"] = {
        "visitors": {"ar": visitor_accuracy(ar, ar_config),
                     "pd_default": visitor_accuracy(pd, pd.default_config)},
        "probe_name": {k: v[0] for k, v in probes.items()},
        "probe_numbers": {k: v[1] for k, v in probes.items()},
    }
    rounded = lambda v: {k: rounded(x) for k, x in v.items()} if isinstance(v, dict) else round(v, 3)
    print(json.dumps(rounded(out)))


if __name__ == "__main__":
    main()
