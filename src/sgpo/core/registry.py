"""Name -> function registries, so configs choose a method, scope or mapping by name.

A registry is the one list of its kind: config validation, the TRL config, the command line and
the trainers all read it, so an entry registered by a user's code (or a test) is a valid choice
everywhere without another edit.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

F = TypeVar("F", bound=Callable)


class UnknownName(KeyError, ValueError):
    """A name no entry of a registry has: a failed lookup (``KeyError``) and a bad option value
    (``ValueError``) at once, so either ``except`` clause catches it. Its text is the plain message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[F]):
    """A small dict of named functions with a decorator and an error that lists the choices."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: add the function under ``name`` (a name already taken is an error)."""

        def add(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = fn
            return fn

        return add

    def unregister(self, name: str) -> F:
        """Remove ``name`` and return what it held (a test's own entry, or one to replace)."""
        self.check(name)
        return self._items.pop(name)

    def check(self, name: str, option: str | None = None) -> str:
        """``name`` if registered, else :class:`UnknownName` naming ``option`` (default: the kind) and the choices."""
        if name not in self._items:
            head = f"{option}={name!r}" if option else f"unknown {self.kind} {name!r}"
            raise UnknownName(f"{head}; choose one of: {', '.join(self.names())}")
        return name

    def get(self, name: str) -> F:
        return self._items[self.check(name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
