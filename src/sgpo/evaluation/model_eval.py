"""avg@k and pass@k of a model on benchmark files (``sgpo eval``).

For each problem, k responses are sampled; each is checked like training checks it (final answer
extracted, compared with math-verify). avg@k is the mean share of correct responses per problem
(an estimate of pass@1), pass@k the share of problems with at least one correct response. Field
names are detected from each file (MATH-500, GSM8K and AIME layouts read as they are) unless
given, and the fields used are printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sgpo.errors import ConfigError
from sgpo.sampling.rollout import format_prompt, generate
from sgpo.tasks.base import Problem
from sgpo.tasks.math_task import BUILTIN_FIELDS, SYSTEM_PROMPT
from sgpo.tasks.problem_files import read_problems, read_problems_auto
from sgpo.tasks.verify import STATUSES, AnswerChecker
from sgpo.tasks.wordproblems import builtin_file


@dataclass
class FileResult:
    """What one benchmark file came to."""

    name: str
    fields: str
    problems: int = 0
    correct: list[int] = field(default_factory=list)
    """Correct responses per problem."""
    statuses: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0

    def summary(self, k: int) -> dict:
        n = max(1, self.problems)
        return {
            "file": self.name, "fields": self.fields, "problems": self.problems, "k": k,
            f"avg@{k}": sum(self.correct) / (n * k), f"pass@{k}": sum(c > 0 for c in self.correct) / n,
            "statuses": self.statuses, "response_tokens": self.tokens, "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class EvalSettings:
    """How responses are sampled for evaluation (``sgpo eval``'s options)."""

    k: int = 4
    """Responses per problem when sampling (greedy takes one: :attr:`responses_per_problem`)."""
    temperature: float = 0.6
    """Sampling temperature; 0 is greedy."""
    top_p: float = 0.95
    """Nucleus sampling threshold."""
    max_new_tokens: int = 512
    """Longest response in tokens."""
    batch_size: int = 16
    """Responses generated at once, k per problem."""
    system_prompt: str | None = None
    """System prompt (chat) or preamble (plain); None: the math task's."""
    template: str = "auto"
    """``chat``, ``plain`` or ``auto`` (chat if the tokenizer has a chat template)."""

    def __post_init__(self):
        if self.k < 1 or self.batch_size < 1 or self.max_new_tokens < 1 or not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ConfigError("need k >= 1, batch_size >= 1, max_new_tokens >= 1, 0 < top_p <= 1, temperature >= 0 "
                              f"(got k={self.k}, batch_size={self.batch_size}, max_new_tokens={self.max_new_tokens}, "
                              f"top_p={self.top_p}, temperature={self.temperature})")

    @property
    def responses_per_problem(self) -> int:
        return 1 if self.temperature == 0 else self.k


def read_benchmarks(files: list[str], limit: int | None = None, problem_field: str | None = None,
                    answer_field: str | None = None, id_field: str | None = None) -> list[tuple[str, list[Problem], str]]:
    """(name, problems, fields used) per file, or the built-in test split when ``files`` is empty;
    every file is read and validated before any sampling."""
    if not files:
        path = builtin_file("test")
        return [("built-in test", read_problems(path, BUILTIN_FIELDS)[:limit], BUILTIN_FIELDS.describe())]
    out = []
    for f in files:
        problems, fields = read_problems_auto(f, problem_field, answer_field, None, id_field)
        out.append((f, problems[:limit], f"problem={fields.problem!r} answer={fields.answer!r} id={fields.id!r}"))
    return out


def evaluate_file(model, tokenizer, problems: list[Problem], checker: AnswerChecker, settings: EvalSettings, name: str,
                  fields: str, write=None, bar=None) -> FileResult:
    """Sample k responses per problem, check them, and tally; ``write(row)`` gets each problem's row."""
    greedy = settings.temperature == 0
    k = settings.responses_per_problem
    system = SYSTEM_PROMPT if settings.system_prompt is None else settings.system_prompt
    prompts = [format_prompt(p.question, tokenizer, system or None, settings.template) for p in problems]
    # Similar lengths together: less left padding per batch.
    order = sorted(range(len(problems)), key=lambda i: len(prompts[i]))
    per_call = max(1, settings.batch_size // k)
    result = FileResult(name, fields, statuses=dict.fromkeys(STATUSES, 0))
    rows: dict[int, dict] = {}
    t0 = time.perf_counter()
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]
        rollout = generate(model, tokenizer, [prompts[i] for i in chunk], n=k, temperature=settings.temperature or 1.0,
                           top_p=settings.top_p, max_new_tokens=settings.max_new_tokens, greedy=greedy)
        result.tokens += int(rollout.response_mask.sum())
        for j, i in enumerate(chunk):
            texts = rollout.texts[j * k : (j + 1) * k]
            checks = [checker.check(problems[i].answer, t) for t in texts]
            for c in checks:
                result.statuses[c.status] += 1
            n_ok = sum(c.correct for c in checks)
            rows[i] = {"file": name, "id": problems[i].id, "problem": problems[i].question, "answer": problems[i].answer,
                       "responses": texts, "extracted": [c.answer for c in checks], "status": [c.status for c in checks],
                       "correct": [c.correct for c in checks], "n_correct": n_ok, "avg": n_ok / k, "pass": n_ok > 0}
        if bar is not None:
            bar.update(len(chunk))
            done = [r["avg"] for r in rows.values()]
            bar.set_postfix({"avg": f"{sum(done) / len(done):.3f}"})
    result.seconds = time.perf_counter() - t0
    result.problems = len(problems)
    for i in range(len(problems)):
        result.correct.append(rows[i]["n_correct"])
        if write is not None:
            write(rows[i])
    return result


def print_table(summaries: list[dict]) -> None:
    """The summary as a table (rich)."""
    from rich.console import Console
    from rich.table import Table

    k = summaries[0]["k"]
    table = Table(title="sgpo eval")
    for col in ("file", "problems", f"avg@{k}", f"pass@{k}", "no answer", "unparsable", "timeout", "tokens/s", "seconds"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for s in summaries:
        st, n = s["statuses"], max(1, s["problems"] * k)
        table.add_row(s["file"], str(s["problems"]), f"{s[f'avg@{k}']:.3f}", f"{s[f'pass@{k}']:.3f}",
                      f"{st.get('no_answer', 0) / n:.1%}", str(st.get("unparsable", 0)), str(st.get("timeout", 0)),
                      f"{s['response_tokens'] / max(s['seconds'], 1e-9):.0f}", f"{s['seconds']:.0f}")
    Console(width=140).print(table)
