"""`python -m pdiff generate`: one prompt through the engine, streamed to the terminal or as JSON.

Every GenerationConfig knob has a flag. Without `--json` the plan streams token by token, then
each denoise step redraws the spans (masks as ░, this step's commits highlighted). Errors from
bad input are printed as one line and exit with status 2, never as a traceback. The flags become
`Knobs`, mapped to a config as the app maps its own. It reads the engine's event stream like
every other consumer and knows nothing of how the engine produces it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pdiff.config import DECODING_KNOBS, SCHEDULES, ConfigError, Knobs
from pdiff.events import DenoiseStep, Finished, Notice, PlanToken, RoundEnd, SpansOpened, TextToken

# Terminal colours (Okabe-Ito orange and blue for new and earlier commits), only on a terminal
# and never when NO_COLOR is set (no-color.org); piped output is plain text.
ANSI = {"bold": "\033[1m", "dim": "\033[2m", "reset": "\033[0m", "new": "\033[38;5;208m",
        "old": "\033[38;5;33m", "warn": "\033[33m"}
PLAIN = dict.fromkeys(ANSI, "")


def palette(out) -> dict[str, str]:
    """ANSI codes when `out` is a terminal and NO_COLOR is unset or empty, else empty strings."""
    return ANSI if out.isatty() and not os.environ.get("NO_COLOR") else PLAIN


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pdiff generate",
                                description="Generate with planned diffusion or a baseline.")
    p.add_argument("--model", default=None,
                   help="checkpoint folder or hub id (default: the bundled model; with --mode "
                        "autoregressive, the bundled AR baseline)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--mode", choices=["planned", "autoregressive", "diffusion"], default="planned")
    p.add_argument("--steps-ratio", type=float, default=None,
                   help="denoise steps per longest-span token (default: the checkpoint's)")
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="commit schedule (default: the checkpoint's): reference (no threshold), "
                        "paper (the threshold only adds steps) or adaptive (it removes steps)")
    p.add_argument("--threshold", type=float, default=None,
                   help="confidence threshold of the paper and adaptive schedules (default: the "
                        "checkpoint's); without --schedule, over a reference default, runs the paper's")
    p.add_argument("--reference", action="store_true",
                   help="the reference schedule (no threshold, steps ratio 1) instead of the "
                        "checkpoint's default; --steps-ratio, --schedule and --threshold still apply")
    p.add_argument("--unmask", choices=["entropy", "confidence", "margin"], default="entropy")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--length-scale", type=int, default=None,
                   help="tokens per plan unit (default: the checkpoint's)")
    p.add_argument("--attention", choices=["sparse", "dense"], default="sparse")
    p.add_argument("--no-cache", action="store_true", help="recompute everything each forward")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--max-plan-tokens", type=int, default=128)
    p.add_argument("--max-rounds", type=int, default=8)
    p.add_argument("--plan", default=None, help="plan rounds used verbatim, e.g. "
                   "'<promise>-<topic>intro 3</topic><|im_end|>'")
    p.add_argument("--no-chat-template", action="store_true", help="use the prompt as-is (base models)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: torch's default team oversubscribes a small "
                        "machine, and a 1-token step of a small model gains nothing from more)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    return p


def config_from_args(args, engine):
    """The run's GenerationConfig: the flags as Knobs, through the mapping the app uses too.
    Schedule flags left out take the checkpoint's default schedule (or, with --reference, the
    reference schedule); a --threshold with no --schedule keeps the default's schedule, or where
    that is the reference (which has no threshold), takes the paper's."""
    flags = {**vars(args), "use_cache": not args.no_cache, "chat_template": not args.no_chat_template}
    default = engine.config() if args.reference else engine.default_config()
    defaults = {name: getattr(default, name) for name in DECODING_KNOBS}
    if defaults["schedule"] == "reference" and flags["threshold"] is not None:
        defaults["schedule"] = "paper"  # a threshold given alone asks for a schedule that reads it
    for name in DECODING_KNOBS:
        if flags[name] is None:
            flags[name] = defaults[name]
    return Knobs.named(flags).config(engine.length_scale)


def model_name(args) -> str | None:
    """The checkpoint to load: --model as given; without it the bundled planned model, or for
    --mode autoregressive the bundled AR baseline (the planned checkpoint never learned to write
    answers left to right). Raises ConfigError, naming --model, when that baseline is missing."""
    if args.model is not None or args.mode != "autoregressive":
        return args.model
    from pdiff.loader import BUNDLED_AR

    if not (BUNDLED_AR / "config.json").is_file():
        raise ConfigError("--mode autoregressive needs an autoregressive checkpoint and the "
                          f"bundled one ({BUNDLED_AR}) is missing: name one with --model")
    return str(BUNDLED_AR)


def result_json(final: Finished) -> dict:
    """The --json object: text, prompt_ids, token_ids, plan and stats."""
    return {
        "text": final.text,
        "prompt_ids": list(final.prompt_ids),
        "token_ids": list(final.token_ids),
        "plan": [[{"topic": i.topic, "units": i.units, "length": i.length} for i in rnd]
                 for rnd in final.plan],
        "stats": final.stats.__dict__,
    }


def render_step(event: DenoiseStep, c: dict[str, str] = PLAIN) -> str:
    lines = []
    for s, tokens in enumerate(event.tokens):
        new = set(event.committed[s])
        cells = ["░" if t is None else (c["new"] if i in new else c["old"]) + t + c["reset"]
                 for i, t in enumerate(tokens)]
        filled = sum(t is not None for t in tokens)
        lines.append(f"  {c['dim']}span {s + 1} {filled}/{len(tokens)}{c['reset']} " + "".join(cells))
    return "\n".join(lines)


def stream(events, out=sys.stdout) -> Finished:
    """Print the run as it happens; redraw the spans in place on a terminal."""
    tty, c = out.isatty(), palette(out)
    bold, dim, reset = c["bold"], c["dim"], c["reset"]
    drawn = 0
    final = None
    for event in events:
        if isinstance(event, PlanToken):
            out.write(f"{dim if event.forced else bold}{event.text}{reset}")
        elif isinstance(event, TextToken):
            out.write(event.text)
        elif isinstance(event, Notice):
            out.write(f"\n{c['warn']}! {event.message}{reset}\n")
        elif isinstance(event, SpansOpened):
            out.write(f"\n{dim}round {event.round + 1}: {len(event.items)} spans, "
                      f"{event.steps} steps{reset}\n")
            drawn = 0
        elif isinstance(event, DenoiseStep):
            text = render_step(event, c)
            if tty and drawn:
                out.write(f"\033[{drawn}F\033[J")
            if tty or event.step == 0:
                out.write(text + "\n")
                drawn = text.count("\n") + 1
        elif isinstance(event, RoundEnd) and not tty:
            out.write("\n".join(f"  span {i + 1}: {t}" for i, t in enumerate(event.span_texts)) + "\n")
        elif isinstance(event, Finished):
            final = event
        out.flush()
    s = final.stats
    out.write(f"\n{bold}answer{reset}\n{final.text}\n\n{dim}{s.total_seconds:.2f}s "
              f"(plan {s.plan_seconds:.2f}s, denoise {s.denoise_seconds:.2f}s), "
              f"{s.forward_passes} forwards, {s.tokens_per_forward:.2f} tokens/forward{reset}\n")
    return final


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from pdiff.loader import load_engine

    try:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1; got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
        engine = load_engine(model_name(args), device=args.device, dtype=args.dtype)
        config = config_from_args(args, engine)
        events = engine.generate(args.prompt, config)
        if args.json:
            print(json.dumps(result_json(list(events)[-1])))
        else:
            stream(events)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
