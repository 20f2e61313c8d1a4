"""The rollouts file: fixed, verified (and optionally judged) responses for offline training.

``sgpo rollout`` writes it, ``sgpo train train.mode=offline`` trains on it and ``sgpo analyze``
reports on it. It is JSON Lines, UTF-8, one object per line:

line 1, the header (what produced the responses; offline training checks it against its config)::

    {"format": "sgpo-rollouts", "version": 1, "model": "...", "tokenizer": {"name": "...",
     "vocab_size": 49152, "fingerprint": "..."}, "task": "arith", "group_size": 8,
     "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 48, "logprob_precision": "bf16",
     "prompt_width": 96, "response_width": 48, "judge": "rule", "judge_scope": "all_negative", "step_mode": "line", "max_steps": null,
     "seed": 0, "created": "2025-01-01T00:00:00+00:00"}

every further line, one response (G lines per group, written group by group)::

    {"group": 0, "sample": 3, "problem_id": "...", "problem": "...", "reference": "..." | null,
     "answer": "..." | null, "prompt": "...", "response": "...", "prompt_ids": [...],
     "response_ids": [...], "logprobs": [...], "outcome": 0.0,
     "verdict": {"first_error": 2, "n_steps": 5, "status": "ok"} | null}

``response_ids`` are the sampled tokens up to and including EOS (if the response ended before
``max_new_tokens``); ``logprobs[t]`` is the behaviour policy's log pi(y_t | y_<t) at the sampling
temperature, computed as the trainer computes its old log-probs (see ``logprob_precision``).
``outcome`` is 0 (wrong) or 1 (correct), nothing in between: a response is correct iff its outcome
is 1 (``sgpo.core.is_correct``). ``verdict`` is null when the response was not judged; its
``first_error`` is -1 or names one of its ``n_steps`` steps (0..n_steps-1). The writer stores a
judge's ``ok`` verdict with an index outside that range as the failure it is (``invalid``).

``prompt_width`` and ``response_width`` (optional) are the widths every prompt was left-padded
and every response right-padded to when the log-probs were computed, and the widths offline
training pads to. Under bf16 a sequence's log-probs depend on its padding (on CPU, SmolLM2-135M
moves by up to ~0.13 nats with the amount of left padding, and with the batch's total length);
fixed widths lay each sequence out the same way in every batch, so the trainer recomputes the
stored log-probs exactly.

The writer (:mod:`sgpo.rollouts.writer`) appends one line per response and flushes it, so a crash loses at most the record
being written. The reader treats an unterminated last line that is not valid JSON as a
truncated write: it skips it with a warning, and drops the group it left incomplete (also with a
warning); any other malformed line is an error naming the file, line and field.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sgpo.errors import ConfigError, MissingInputError
from sgpo.judges.base import STATUSES, Verdict
from sgpo.tasks.base import Problem

FORMAT, VERSION = "sgpo-rollouts", 1
#: Largest log-prob accepted: log-softmax is <= 0 up to float rounding.
_MAX_LOGPROB = 1e-4


class RolloutsError(ConfigError):
    """A rollouts file that cannot be used: names the file, line and field."""


@dataclass(frozen=True)
class RolloutRecord:
    """One response of one group, as stored on one line."""

    group: int
    sample: int
    """Index of the response within its group, 0..G-1."""
    problem_id: str
    problem: str
    reference: str | None
    answer: str | None
    prompt: str
    """The prompt text the policy saw (template and system prompt applied)."""
    response: str
    prompt_ids: list[int]
    response_ids: list[int]
    """Sampled tokens, up to and including EOS when the response ended before the length limit."""
    logprobs: list[float]
    """Behaviour log-probs of ``response_ids``, at the sampling temperature."""
    outcome: float
    """Verifier outcome, 1.0 correct / 0.0 wrong."""
    verdict: Verdict | None
    """The step judge's verdict, or None when the response was not judged."""
    line: int = field(default=0, compare=False)
    """Line in the file it was read from (0 when not read from a file)."""

    def to_json(self) -> dict:
        v = self.verdict
        return {
            "group": self.group, "sample": self.sample, "problem_id": self.problem_id, "problem": self.problem,
            "reference": self.reference, "answer": self.answer, "prompt": self.prompt, "response": self.response,
            "prompt_ids": self.prompt_ids, "response_ids": self.response_ids, "logprobs": self.logprobs,
            "outcome": self.outcome,
            "verdict": None if v is None else {"first_error": v.first_error, "n_steps": v.n_steps, "status": v.status},
        }

    @property
    def problem_obj(self) -> Problem:
        return Problem(self.problem_id, self.problem, self.reference or "", self.answer or "")


@dataclass
class RolloutsFile:
    """A rollouts file as read: its header, its complete groups, and what was skipped."""

    path: Path
    header: dict
    groups: list[list[RolloutRecord]]
    """Complete groups in file order, each G records ordered by ``sample``."""
    sha256: str
    """Hash of the file's bytes, so a resumed run can tell the file has not changed."""
    skipped_lines: int = 0
    """Unterminated, unparseable last lines (a write cut short)."""
    dropped_groups: int = 0
    """Groups left incomplete at the end of the file, not used."""
    dropped_responses: int = 0
    """Responses in those groups."""
    warnings: list[str] = field(default_factory=list)

    @property
    def group_size(self) -> int:
        return int(self.header["group_size"])

    def records(self) -> list[RolloutRecord]:
        return [r for g in self.groups for r in g]


# -- tokenizer identity --------------------------------------------------------------------------


def tokenizer_fingerprint(tokenizer) -> dict:
    """Name, size and a hash of the vocabulary and special tokens: enough to tell tokenizers apart."""
    vocab = sorted(tokenizer.get_vocab().items())
    special = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    digest = hashlib.sha256(json.dumps([vocab, special], ensure_ascii=False).encode()).hexdigest()[:16]
    return {"name": str(getattr(tokenizer, "name_or_path", "") or "built-in"), "vocab_size": len(tokenizer), "fingerprint": digest}


# -- reading and validation ----------------------------------------------------------------------


def field_error(where: str, name: str, problem: str) -> RolloutsError:
    return RolloutsError(f"{where}: field {name!r}: {problem}")


def check_header(h: dict, where: str) -> None:
    if h.get("format") != FORMAT:
        raise RolloutsError(f"{where}: not a rollouts file (the first line must be a header with \"format\": \"{FORMAT}\")")
    if h.get("version") != VERSION:
        raise field_error(where, "version", f"version {h.get('version')!r} is not supported (this sgpo reads {VERSION})")
    G = h.get("group_size")
    if not isinstance(G, int) or isinstance(G, bool) or G < 2:
        raise field_error(where, "group_size", f"must be an integer >= 2, got {G!r}")
    t = h.get("temperature")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0:
        raise field_error(where, "temperature", f"must be a number > 0, got {t!r}")
    for name in ("prompt_width", "response_width"):
        w = h.get(name)
        if w is not None and (not is_int(w) or w < 1):
            raise field_error(where, name, f"must be null or an integer >= 1, got {w!r}")
    tok = h.get("tokenizer")
    if tok is not None and (not isinstance(tok, dict) or not {"vocab_size", "fingerprint"} <= set(tok)):
        raise field_error(where, "tokenizer", "must be null or an object with vocab_size and fingerprint")


def is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _finite(x: int | float) -> bool:
    """A finite number that fits a float (``math.isfinite`` raises for an integer like 10**400)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _int_list(obj: dict, name: str, where: str, allow_empty: bool = False) -> list[int]:
    value = obj.get(name)
    if not isinstance(value, list) or not all(is_int(x) and x >= 0 for x in value):
        raise field_error(where, name, "must be a list of token ids (integers >= 0)")
    if not value and not allow_empty:
        raise field_error(where, name, "is empty")
    return value


def _text(obj: dict, name: str, where: str, nullable: bool = False):
    value = obj.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise field_error(where, name, f"must be a string{' or null' if nullable else ''}, got {type(value).__name__}")
    return value


def _parse_verdict(value, where: str) -> Verdict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise field_error(where, "verdict", "must be null or an object with first_error, n_steps, status")
    k, K, status = value.get("first_error"), value.get("n_steps"), value.get("status")
    if not is_int(K) or K < 0:
        raise field_error(where, "verdict.n_steps", f"must be an integer >= 0, got {K!r}")
    if not is_int(k) or k < -1:
        raise field_error(where, "verdict.first_error", f"must be an integer >= -1 (-1: no error found), got {k!r}")
    if k >= K:
        raise field_error(where, "verdict.first_error",
                          f"is {k} but the verdict has n_steps={K}: it must name one of the steps (0..{K - 1}) or be -1")
    if status not in STATUSES:
        raise field_error(where, "verdict.status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    return Verdict(k, K, status)


def parse_record(obj, where: str, G: int, line: int) -> RolloutRecord:
    if not isinstance(obj, dict):
        raise RolloutsError(f"{where}: a record must be a JSON object, got {type(obj).__name__}")
    for name in ("group", "sample"):
        if not is_int(obj.get(name)) or obj[name] < 0:
            raise field_error(where, name, f"must be an integer >= 0, got {obj.get(name)!r}")
    if obj["sample"] >= G:
        raise field_error(where, "sample", f"is {obj['sample']} but the header's group_size is {G} (samples are 0..{G - 1})")
    response_ids = _int_list(obj, "response_ids", where)
    logprobs = obj.get("logprobs")
    if not isinstance(logprobs, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in logprobs):
        raise field_error(where, "logprobs", "must be a list of numbers")
    if len(logprobs) != len(response_ids):
        raise field_error(where, "logprobs", f"has {len(logprobs)} values for {len(response_ids)} response_ids")
    bad = next((x for x in logprobs if not _finite(x) or x > _MAX_LOGPROB), None)
    if bad is not None:
        raise field_error(where, "logprobs", f"log-probs must be finite and <= 0, got {bad!r}")
    outcome = obj.get("outcome")
    # Exactly 0 or 1: a response is correct iff its outcome is 1 (sgpo.core.is_correct), so 0.5 would be
    # wrong while looking half right.
    if not isinstance(outcome, (int, float)) or isinstance(outcome, bool) or outcome not in (0, 1):
        raise field_error(where, "outcome", f"must be 0 (wrong) or 1 (correct), got {outcome!r}")
    return RolloutRecord(
        group=obj["group"], sample=obj["sample"],
        problem_id=str(_text(obj, "problem_id", where)), problem=_text(obj, "problem", where),
        reference=_text(obj, "reference", where, nullable=True), answer=_text(obj, "answer", where, nullable=True),
        prompt=_text(obj, "prompt", where), response=_text(obj, "response", where),
        prompt_ids=_int_list(obj, "prompt_ids", where), response_ids=response_ids,
        logprobs=[float(x) for x in logprobs], outcome=float(outcome),
        verdict=_parse_verdict(obj.get("verdict"), where), line=line,
    )


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def read_rollouts(path: str | Path, log: Callable[[str], None] = _warn_stderr) -> RolloutsFile:
    """Read and validate a rollouts file.

    Raises MissingInputError (a FileNotFoundError) for a missing file and :class:`RolloutsError` (file:line: field ...)
    for anything malformed, except a write cut short: an unterminated last line that does not
    parse is skipped, and a group left incomplete at the end of the file is dropped; both are
    counted and reported through ``log``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"rollouts file not found: {path}")
    data = path.read_bytes()
    out = RolloutsFile(path, {}, [], hashlib.sha256(data).hexdigest())
    lines = data.split(b"\n")
    terminated = lines[-1] == b""  # the piece after the last newline: empty iff the file ends with one
    if terminated:
        lines.pop()
    n_lines = len(lines)
    header: dict | None = None
    by_group: dict[int, list[RolloutRecord]] = {}
    for n, raw in enumerate(lines, 1):
        where = f"{path}:{n}"
        last_unterminated = n == n_lines and not terminated
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:  # ValueError: JSONDecodeError, or an integer of thousands of digits
            if last_unterminated:
                msg = f"{where}: incomplete last line (the file ends mid-record, e.g. the writer was killed); skipped"
                if header is None:
                    raise RolloutsError(f"{where}: the header line is incomplete (file truncated)") from None
                out.skipped_lines += 1
                out.warnings.append(msg)
                log(msg)
                break
            raise RolloutsError(f"{where}: not valid JSON: {e}") from None
        if header is None:
            if not isinstance(obj, dict):
                raise RolloutsError(f"{where}: the first line must be the header object")
            check_header(obj, where)
            header = obj
            continue
        record = parse_record(obj, where, int(header["group_size"]), n)
        for name, width in (("prompt_ids", header.get("prompt_width")), ("response_ids", header.get("response_width"))):
            if width is not None and len(getattr(record, name)) > width:
                raise field_error(where, name, f"has {len(getattr(record, name))} tokens, more than the header's "
                                         f"{name.split('_')[0]}_width {width}")
        by_group.setdefault(record.group, []).append(record)
    if header is None:
        raise RolloutsError(f"{path}: empty file (no header line)")
    out.header = header
    _assemble_groups(out, by_group, log)
    return out


def _assemble_groups(out: RolloutsFile, by_group: dict[int, list[RolloutRecord]], log) -> None:
    """Check each group's records agree and are complete; drop an incomplete last group."""
    G = out.group_size
    last_group = None
    if by_group:
        last_group = max(by_group.values(), key=lambda rs: rs[-1].line)[0].group
    for g, records in by_group.items():
        first = records[0]
        seen: dict[int, int] = {}
        for r in records:
            where = f"{out.path}:{r.line}"
            if r.sample in seen:
                raise field_error(where, "sample", f"group {g} already has sample {r.sample} (line {seen[r.sample]})")
            seen[r.sample] = r.line
            for name in ("problem_id", "prompt", "prompt_ids"):
                if getattr(r, name) != getattr(first, name):
                    raise field_error(where, name, f"differs from the first record of group {g} (line {first.line})")
        if len(records) < G:
            lines = f"lines {records[0].line}-{records[-1].line}"
            if g != last_group:
                raise RolloutsError(
                    f"{out.path}:{records[0].line}: field 'group': group {g} has {len(records)} of {G} responses "
                    f"({lines}) and is not the last group, so the file was not merely cut short"
                )
            msg = f"{out.path}: {lines}: group {g} has {len(records)} of {G} responses (the file ends there); dropped"
            out.dropped_groups += 1
            out.dropped_responses += len(records)
            out.warnings.append(msg)
            log(msg)
            continue
        out.groups.append(sorted(records, key=lambda r: r.sample))


# check_header, parse_record, field_error and is_int are the validators the writer and the offline
# batches share; they are public to those modules, not part of the format's API.
__all__ = ["FORMAT", "VERSION", "RolloutRecord", "RolloutsError", "RolloutsFile", "read_rollouts", "tokenizer_fingerprint"]
