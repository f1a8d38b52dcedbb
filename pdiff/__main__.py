"""`python -m pdiff {generate,train,curve,bench}`: the command line; it only picks the command's module."""

import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = ("generate", "train", "curve", "bench")
    if not argv or argv[0] not in commands:
        print(f"usage: python -m pdiff {{{','.join(commands)}}} ... (add --help for options)")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    if argv[0] == "generate":
        from pdiff.cli import main as run
    elif argv[0] == "train":
        from pdiff.train.loop import main as run
    elif argv[0] == "curve":
        from pdiff.train.curve import main as run
    else:
        from pdiff.bench.run import main as run
    run(argv[1:])


if __name__ == "__main__":
    main()
