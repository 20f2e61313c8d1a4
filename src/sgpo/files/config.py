"""Config files (YAML or JSON) read into pydantic sections, with errors that fit on one line.

Every config a user hands sgpo goes through here (a training config, a judge config given to
``sgpo judge``/``judge-eval``), so a bad one reads the same everywhere: ``file:line`` for text
YAML cannot parse, the file and the dotted key, with the valid keys, for a bad key or value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sgpo.errors import ConfigError, MissingInputError


def load_yaml(path: str | Path):
    """The OmegaConf tree of a YAML/JSON file, unresolved (callers merge overrides first)."""
    import yaml
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"config file not found: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        return OmegaConf.load(path)
    except yaml.MarkedYAMLError as e:
        # YAML's own message spans lines ("while parsing ... in <file>, line 3 ..."): keep the
        # position of the problem and its one-phrase description.
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {e.problem or e.context}") from None
    except Exception as e:  # undecodable bytes, a duplicate key OmegaConf refuses, ...
        raise ConfigError(f"cannot parse {path}: {_first_line(e)}") from None


def to_container(tree, source: str) -> Any:
    """Plain Python data from an OmegaConf tree, running ``${...}`` interpolations."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(tree, resolve=True)
    except Exception as e:  # a missing key or environment variable in an interpolation
        raise ConfigError(f"cannot resolve the configuration ({source}): {_first_line(e)}") from None


def validate(model: type[BaseModel], data: Any, source: str, prefix: str = "") -> BaseModel:
    """``model`` from ``data``, or a one-line ConfigError naming ``source`` and each bad key
    (dotted, under ``prefix``: ``judge.`` for a judge section) with what would be valid."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise explain(e, model, source, prefix) from None


def explain(err: ValidationError, model: type[BaseModel], source: str, prefix: str = "") -> ConfigError:
    parts = []
    for e in err.errors():
        key = prefix + ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            section = _section_at(model, e["loc"][:-1])
            valid = ", ".join(section.model_fields) if section else "?"
            parts.append(f"unknown key {key!r}; valid keys here: {valid}")
        else:
            msg = e["msg"].removeprefix("Value error, ")  # a field validator's own sentence
            parts.append(f"{key}: {msg} (got {e.get('input')!r})")
    # One line, as every bad-input message: several problems are joined, not stacked.
    return ConfigError(f"invalid configuration ({source}): " + "; ".join(parts))


def _section_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return None
        model = field.annotation
    return model


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
