"""The two kinds of bad input, at the bottom of the import graph so every layer may raise them.

The command line turns either into one line on stderr, ``sgpo COMMAND: error: ...``, and exit
code 2; anything else is a bug and keeps its traceback.
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


__all__ = ["ConfigError", "DataError", "MissingInputError", "RunFailed"]
