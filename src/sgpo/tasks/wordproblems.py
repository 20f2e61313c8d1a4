"""The built-in math word-problem set: short GSM8K-like problems, generated from a seed.

    sgpo data wordproblems            # rewrite src/sgpo/data/wordproblems_*.jsonl
    sgpo data wordproblems --check    # exit 1 if the shipped files differ

Each problem takes one to three steps of small-number arithmetic, so that a 135M-parameter chat
model solves some of them. The reference solution has one step per line, each step one equation
in words, and a last line with the answer in ``\\boxed{}``::

    {"id": "wp-train-0007", "problem": "Mia has 4 bags with 6 marbles in each bag. She gives 5 ...",
     "solution": "Mia has 4 * 6 = 24 marbles.\\nAfter giving 5 away she has 24 - 5 = 19 marbles.\\n...",
     "answer": "19"}

The splits are cut from one shuffled list of distinct problems, so no problem is in two splits.
"""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path
from typing import Callable

SPLIT_SIZES = {"train": 400, "validation": 50, "test": 100}
SEED = 2024
FILE = "wordproblems_{split}.jsonl"

_PEOPLE = [("Mia", "she"), ("Leo", "he"), ("Ava", "she"), ("Sam", "he"), ("Zoe", "she"), ("Ben", "he"),
           ("Lily", "she"), ("Omar", "he"), ("Nora", "she"), ("Raj", "he"), ("Emma", "she"), ("Tom", "he")]
_ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "cards", "books", "shells", "stamps", "balloons"]
_THINGS = [("notebook", "notebooks"), ("sandwich", "sandwiches"), ("toy car", "toy cars"), ("pen", "pens"),
           ("cupcake", "cupcakes"), ("ticket", "tickets")]


def _people(rng: random.Random, k: int) -> list[tuple[str, str]]:
    return rng.sample(_PEOPLE, k)


# Each template draws numbers and returns (problem, solution steps, answer).
Template = Callable[[random.Random], tuple[str, list[str], int]]


def _buy_more(rng):
    (p, _), item = _people(rng, 1)[0], rng.choice(_ITEMS)
    a, b = rng.randint(2, 30), rng.randint(2, 20)
    return (f"{p} has {a} {item}. {p} buys {b} more {item}. How many {item} does {p} have now?",
            [f"{p} has {a} + {b} = {a + b} {item}."], a + b)


def _give_away(rng):
    (p, pr), (q, _) = _people(rng, 2)
    item, a = rng.choice(_ITEMS), rng.randint(10, 40)
    b = rng.randint(2, a - 1)
    return (f"{p} had {a} {item} and gave {b} of them to {q}. How many {item} does {p} have left?",
            [f"{p} has {a} - {b} = {a - b} {item} left."], a - b)


def _groups(rng):
    (p, _), item = _people(rng, 1)[0], rng.choice(_ITEMS)
    a, b = rng.randint(2, 9), rng.randint(2, 12)
    return (f"{p} has {a} bags with {b} {item} in each bag. How many {item} does {p} have in total?",
            [f"{p} has {a} * {b} = {a * b} {item}."], a * b)


def _share(rng):
    (p, _), item = _people(rng, 1)[0], rng.choice(_ITEMS)
    k, each = rng.randint(2, 8), rng.randint(2, 10)
    return (f"{p} shares {k * each} {item} equally among {k} friends. How many {item} does each friend get?",
            [f"Each friend gets {k * each} / {k} = {each} {item}."], each)


def _buy_then_give(rng):
    (p, pr), (q, _) = _people(rng, 2)
    item, a, b = rng.choice(_ITEMS), rng.randint(3, 25), rng.randint(2, 15)
    c = rng.randint(1, a + b - 1)
    return (f"{p} has {a} {item}. {pr.capitalize()} buys {b} more and then gives {c} to {q}. "
            f"How many {item} does {p} have now?",
            [f"After buying, {p} has {a} + {b} = {a + b} {item}.",
             f"After giving {c} away, {pr} has {a + b} - {c} = {a + b - c} {item}."], a + b - c)


def _change(rng):
    (p, _), (thing, things) = _people(rng, 1)[0], rng.choice(_THINGS)
    n, price = rng.randint(2, 6), rng.randint(2, 9)
    bill = next(b for b in (10, 20, 50, 100) if b >= n * price)
    return (f"A {thing} costs ${price}. {p} buys {n} {things} and pays with a ${bill} bill. "
            f"How many dollars of change does {p} get?",
            [f"The {things} cost {n} * {price} = {n * price} dollars.",
             f"The change is {bill} - {n * price} = {bill - n * price} dollars."], bill - n * price)


def _reading(rng):
    (p, pr) = _people(rng, 1)[0]
    a, d, b = rng.randint(3, 12), rng.randint(2, 7), rng.randint(2, 20)
    return (f"{p} reads {a} pages every day for {d} days. Then {pr} reads {b} more pages. "
            f"How many pages does {p} read in total?",
            [f"In {d} days {p} reads {a} * {d} = {a * d} pages.",
             f"In total {pr} reads {a * d} + {b} = {a * d + b} pages."], a * d + b)


def _together(rng):
    (p, _), (q, _) = _people(rng, 2)
    item, a, b = rng.choice(_ITEMS), rng.randint(2, 30), rng.randint(2, 15)
    return (f"{p} has {a} {item}. {q} has {b} more {item} than {p}. How many {item} do they have together?",
            [f"{q} has {a} + {b} = {a + b} {item}.",
             f"Together they have {a} + {a + b} = {2 * a + b} {item}."], 2 * a + b)


def _packs(rng):
    (p, pr), item = _people(rng, 1)[0], rng.choice(_ITEMS)
    n, k, m = rng.randint(2, 6), rng.randint(3, 10), rng.randint(2, 12)
    u = rng.randint(1, n * k - 1)
    return (f"{p} buys {n} packs of {item} with {k} {item} in each pack. {pr.capitalize()} uses {u} of them "
            f"and then buys {m} more. How many {item} does {p} have now?",
            [f"{p} buys {n} * {k} = {n * k} {item}.",
             f"After using {u}, {pr} has {n * k} - {u} = {n * k - u} {item}.",
             f"After buying {m} more, {pr} has {n * k - u} + {m} = {n * k - u + m} {item}."], n * k - u + m)


def _savings(rng):
    (p, pr), (thing, _) = _people(rng, 1)[0], rng.choice(_THINGS)
    a, w = rng.randint(2, 15), rng.randint(2, 8)
    s = rng.randint(1, a * w - 1)
    return (f"{p} saves ${a} every week for {w} weeks. Then {pr} spends ${s} on a {thing}. "
            f"How many dollars does {p} have left?",
            [f"{p} saves {a} * {w} = {a * w} dollars.",
             f"After spending {s}, {pr} has {a * w} - {s} = {a * w - s} dollars."], a * w - s)


def _chairs(rng):
    r, c = rng.randint(2, 9), rng.randint(3, 10)
    x = rng.randint(1, r * c - 1)
    return (f"A room has {r} rows of chairs with {c} chairs in each row. {x} chairs are taken. "
            f"How many chairs are free?",
            [f"There are {r} * {c} = {r * c} chairs.", f"Free chairs: {r * c} - {x} = {r * c - x}."], r * c - x)


def _twice(rng):
    (p, _), (q, qr) = _people(rng, 2)
    item, a = rng.choice(_ITEMS), rng.randint(2, 25)
    b = rng.randint(1, 2 * a - 1)
    return (f"{p} has {a} {item}. {q} has twice as many {item} as {p}. Then {q} loses {b} of them. "
            f"How many {item} does {q} have now?",
            [f"{q} has 2 * {a} = {2 * a} {item}.", f"After losing {b}, {qr} has {2 * a} - {b} = {2 * a - b} {item}."],
            2 * a - b)


def _half(rng):
    (p, pr) = _people(rng, 1)[0]
    a, b = rng.randint(2, 20), rng.randint(2, 15)
    return (f"{p} baked {2 * a} cookies and ate half of them. Then {pr} baked {b} more cookies. "
            f"How many cookies does {p} have now?",
            [f"Half of {2 * a} is {2 * a} / 2 = {a}, so {a} cookies are left.",
             f"After baking more, {pr} has {a} + {b} = {a + b} cookies."], a + b)


def _legs(rng):
    c, k = rng.randint(2, 12), rng.randint(1, 9)
    return (f"A farm has {c} chickens and {k} cows. Chickens have 2 legs and cows have 4 legs. "
            f"How many legs do the animals have in total?",
            [f"The chickens have {c} * 2 = {2 * c} legs.", f"The cows have {k} * 4 = {4 * k} legs.",
             f"In total there are {2 * c} + {4 * k} = {2 * c + 4 * k} legs."], 2 * c + 4 * k)


def _running(rng):
    (p, pr) = _people(rng, 1)[0]
    a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 9)
    return (f"{p} runs {a} km on Monday, {b} km on Tuesday and {c} km on Wednesday. How many km does {p} run in total?",
            [f"On Monday and Tuesday {pr} runs {a} + {b} = {a + b} km.",
             f"With Wednesday it is {a + b} + {c} = {a + b + c} km."], a + b + c)


def _boxes(rng):
    (p, pr) = _people(rng, 1)[0]
    k, n = rng.randint(2, 10), rng.randint(2, 9)
    return (f"{p} picked {k * n} apples and puts them into boxes of {k} apples each. How many boxes does {p} fill?",
            [f"{p} fills {k * n} / {k} = {n} boxes."], n)


def _ages(rng):
    (p, _), (q, qr) = _people(rng, 2)
    a, b, c = rng.randint(5, 15), rng.randint(1, 10), rng.randint(1, 10)
    return (f"{p} is {a} years old. {q} is {b} years older than {p}. How old will {q} be in {c} years?",
            [f"{q} is {a} + {b} = {a + b} years old now.", f"In {c} years {qr} will be {a + b} + {c} = {a + b + c}."],
            a + b + c)


def _two_prices(rng):
    (p, pr) = _people(rng, 1)[0]
    (t1, _), (_, t2s) = rng.sample(_THINGS, 2)
    x, y, n = rng.randint(2, 15), rng.randint(2, 15), rng.randint(2, 4)
    return (f"A {t1} costs ${x} and one of the {t2s} costs ${y}. {p} buys one {t1} and {n} {t2s}. "
            f"How many dollars does {p} spend?",
            [f"The {t2s} cost {n} * {y} = {n * y} dollars.", f"In total {pr} spends {x} + {n * y} = {x + n * y} dollars."],
            x + n * y)


TEMPLATES: list[Template] = [
    _buy_more, _give_away, _groups, _share, _buy_then_give, _change, _reading, _together, _packs,
    _savings, _chairs, _twice, _half, _legs, _running, _boxes, _ages, _two_prices,
]


def generate(seed: int = SEED, sizes: dict[str, int] = SPLIT_SIZES) -> dict[str, list[dict]]:
    """Rows for each split: distinct problems drawn round-robin over the templates, shuffled, cut."""
    rng = random.Random(seed)
    total = sum(sizes.values())
    seen: dict[str, dict] = {}
    for i in range(100 * total):
        if len(seen) == total:
            break
        problem, steps, answer = TEMPLATES[i % len(TEMPLATES)](rng)
        lines = steps + [f"The answer is \\boxed{{{answer}}}."]
        seen.setdefault(problem, {"problem": problem, "solution": "\n".join(lines), "answer": str(answer)})
    if len(seen) < total:  # pragma: no cover - the templates have far more distinct problems
        raise ValueError(f"only {len(seen)} distinct word problems for {total} requested")
    rows = list(seen.values())
    rng.shuffle(rows)
    out, start = {}, 0
    for split, n in sizes.items():
        out[split] = [{"id": f"wp-{split}-{j:04d}", **row} for j, row in enumerate(rows[start : start + n])]
        start += n
    return out


def builtin_file(split: str) -> Path:
    """The shipped JSONL of a split of the built-in set."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLIT_SIZES)}")
    return Path(str(resources.files("sgpo") / "data" / FILE.format(split=split)))


if __name__ == "__main__":  # the old `python -m` entry point: say where it went, and fail
    raise SystemExit("moved: run `sgpo data wordproblems ...` (see `sgpo data wordproblems --help`)")
