"""The two kinds of bad input, and the two ways a run ends early that are not bugs, at the bottom
of the import graph so every layer may raise them.

The command line turns bad input into one line on stderr, ``sgpo COMMAND: error: ...``, and exit
code 2; a :class:`RunFailed` into the same kind of line and exit code 1 (the input was fine, the
run could not go on); a :class:`RunInterrupted` (Ctrl-C) into one line and exit code 130, as a
shell reports a process ended by SIGINT. Anything else is a bug and keeps its traceback.
"""


class ConfigError(ValueError):
    """A configuration problem (a key, an option, a command-line argument), with what would be valid."""


class DataError(ValueError):
    """A malformed data file, naming the file and line (or row)."""


class MissingInputError(ConfigError, FileNotFoundError):
    """A file or directory the user named is not there (a model, a run directory, a rollouts file).

    A bare FileNotFoundError is a bug and keeps its traceback; this one is bad input.
    """


class RunFailed(RuntimeError):
    """A run that cannot go on, for a reason that is not a bug: the message says where it stopped
    and what was kept."""


class TrainingDiverged(RunFailed):
    """Too many updates in a row had a non-finite loss or gradient (none reached the weights)."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says where it stopped and how to continue.

    A KeyboardInterrupt, so code that catches Ctrl-C still catches it."""


__all__ = ["ConfigError", "DataError", "MissingInputError", "RunFailed", "RunInterrupted", "TrainingDiverged"]
