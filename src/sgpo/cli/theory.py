"""`sgpo theory`: expected dynamics of each method in the simplified K-step setting.

Prints a table (one line per method configuration, starting with the method's name) of the
iterations the expected dynamics need to reach each accuracy level, and writes
``accuracy.png``, ``all_negative.png`` and ``curves.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
from argparse import ArgumentTypeError
from itertools import product
from pathlib import Path

from sgpo.cli import add_overwrite, finite_float, float_in, int_in, positive_float, seed_int
from sgpo.core import METHODS, REWARD_MAPPINGS, SCOPES
from sgpo.errors import ConfigError
from sgpo.files.outputs import check_out
from sgpo.theory.dynamics import Curves, exact_dynamics, iterations_to, sampled_dynamics
from sgpo.theory.gradient import RANDOM_DRAWS, THEORY_SCALES, Method
from sgpo.theory.model import accuracy, as_theta, p_all_negative

#: What --out receives.
OUT_FILES = ("accuracy.png", "all_negative.png", "curves.json")

DEFAULT_METHODS = ("grpo", "sgpo", "ngrpo", "random")
#: Largest group size a flag accepts; the memory check below usually binds first.
MAX_GROUP = 100_000
#: Most numbers one tensor of the dynamics may hold (~1 GB at 8 bytes each): the exact gradient
#: enumerates C(G + K, K) groups of G, ``random`` draws 20,000 groups per mixed count, and
#: ``--mc-groups`` samples B groups of G per iteration, so -G 100000000 would need terabytes.
MAX_ELEMENTS = 1 << 27


def add_arguments(parser) -> None:
    parser.add_argument("--group-size", "-G", type=int_in(2, MAX_GROUP), default=8,
                        help=f"responses per group, 2..{MAX_GROUP} (default 8)")
    parser.add_argument("--theta0", type=finite_float, nargs="+", default=[-3.0, -3.0], metavar="THETA",
                        help="initial per-step logits, one per step or one for all (default -3 -3: "
                        "98%% of groups all-negative at G = 8)")
    parser.add_argument("--lr", type=positive_float, default=0.1, help="gradient-ascent step size (default 0.1)")
    parser.add_argument("--iters", type=int_in(1, 1_000_000), default=400, help="iterations (default 400)")
    parser.add_argument("--steps-k", type=int_in(1, 64), default=2, metavar="K", help="reasoning steps per response (default 2)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS.names(), metavar="METHOD",
                        help=f"methods to compare (default {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--mapping", nargs="+", default=["logistic"], choices=REWARD_MAPPINGS.names(),
                        help="RTS -> reward mapping(s) for sgpo and random (default logistic)")
    parser.add_argument("--mapping-param", action="append", default=[], metavar="KEY=VALUE",
                        help="mapping parameter, e.g. beta=-5 for a decreasing logistic mapping (repeatable)")
    parser.add_argument("--scope", nargs="+", default=["all_negative"], choices=SCOPES,
                        help="which wrong responses sgpo/random grade (default all_negative)")
    parser.add_argument("--scale", nargs="+", default=["group"], choices=THEORY_SCALES,
                        help="advantage scale: group = std normalisation, none = Dr. GRPO (default group)")
    parser.add_argument("--levels", type=float_in(0.0, 1.0), nargs="+", default=[0.5, 0.9], help="accuracy levels (default 0.5 0.9)")
    parser.add_argument("--mc-groups", type=int_in(0, MAX_ELEMENTS), default=0, metavar="B",
                        help="also run the dynamics with B sampled groups per step (default 0: off)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of sampled groups and random RTS (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/theory"), help="output directory (default runs/theory)")
    add_overwrite(parser)


def _mapping_params(items: list[str]) -> dict[str, float]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--mapping-param wants KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = finite_float(value)
        except (ValueError, ArgumentTypeError):
            raise ConfigError(f"--mapping-param {item!r}: the value must be a finite number") from None
    return params


def _check_size(args: argparse.Namespace, K: int, G: int) -> None:
    """Refuse, before any work, a setting whose tensors would not fit in memory."""
    sizes = [(f"-G {G} with --steps-k {K}", math.comb(G + K, K) * G, "lower -G or --steps-k")]
    if "random" in args.methods:
        sizes.append((f"-G {G} with method random", (G - 1) * G * RANDOM_DRAWS, "lower -G or leave out random"))
    sizes.append((f"--mc-groups {args.mc_groups} with -G {G}", args.mc_groups * G, "lower --mc-groups"))
    for what, n, fix in sizes:
        if n > MAX_ELEMENTS:
            raise ConfigError(f"{what} needs tensors of {n:.3g} numbers, more than the {MAX_ELEMENTS:.3g} allowed; {fix}")


def _configurations(args: argparse.Namespace) -> list[Method]:
    """Every method x scale, and for the graded methods every mapping x scope too."""
    params = _mapping_params(args.mapping_param)
    runs = []
    for name, scale in product(dict.fromkeys(args.methods), args.scale):
        if METHODS.get(name).grades:
            runs += [Method(name, mapping, scope, scale, params) for mapping, scope in product(args.mapping, args.scope)]
        else:
            runs.append(Method(name, scale=scale))
    return runs


def _label(method: Method, args: argparse.Namespace) -> str:
    """Legend label: the method, plus the options that vary between runs."""
    bits = []
    if method.graded:
        bits += [method.mapping] if len(args.mapping) > 1 or args.mapping_param else []
        bits += [method.scope] if len(args.scope) > 1 else []
    bits += [f"scale={method.scale}"] if len(args.scale) > 1 else []
    return method.name + (f" ({', '.join(bits)})" if bits else "")


def _fmt(it: int | None, iters: int) -> str:
    return str(it) if it is not None else f">{iters}"


def run(args) -> int:
    K, G = args.steps_k, args.group_size
    if K < 1 or G < 2:
        raise ConfigError("needs --steps-k >= 1 and --group-size >= 2")
    theta0 = as_theta(args.theta0)
    if theta0.numel() == 1:
        theta0 = theta0.repeat(K)
    if theta0.numel() != K:
        raise ConfigError(f"--theta0 needs 1 or {K} values (one per step), got {theta0.numel()}")
    methods = _configurations(args)
    _check_size(args, K, G)
    check_out(args.out, "dir", args.overwrite, names=OUT_FILES)

    results = []
    for method in methods:
        curves = exact_dynamics(method, theta0, G, args.lr, args.iters)
        mc = sampled_dynamics(method, theta0, G, args.lr, args.iters, args.mc_groups, args.seed) if args.mc_groups > 0 else None
        results.append((method, curves, mc))

    start = f"{', '.join(f'{t:g}' for t in theta0.tolist())}"
    print(f"# K={K} G={G} theta0=({start}) lr={args.lr:g} iters={args.iters}: expected accuracy "
          f"{float(accuracy(theta0)):.4f}, P(all-negative group) {float(p_all_negative(theta0, G)):.3f} at the start")
    head = ["method", "mapping", "scope", "scale"] + [f"iters@{lvl:.0%}" for lvl in args.levels]
    head += [f"mc@{lvl:.0%}" for lvl in args.levels] if args.mc_groups > 0 else []
    head += ["final_acc"]
    rows = []
    for method, curves, mc in results:
        row = [method.name, method.mapping if method.graded else "-", method.scope if method.graded else "-", method.scale]
        if method.graded and method.mapping_params:
            row[1] += "(" + ",".join(f"{k}={v:g}" for k, v in method.mapping_params.items()) + ")"
        row += [_fmt(iterations_to(curves.accuracy, lvl), args.iters) for lvl in args.levels]
        if mc is not None:
            row += [_fmt(iterations_to(mc.accuracy, lvl), args.iters) for lvl in args.levels]
        rows.append(row + [f"{float(curves.accuracy[-1]):.4f}"])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())

    args.out.mkdir(parents=True, exist_ok=True)
    _write_json(args, theta0, results)
    _plot(args, results)
    print(f"# wrote {args.out}/accuracy.png, all_negative.png, curves.json")
    return 0


def _curves_dict(curves: Curves) -> dict:
    return {"accuracy": curves.accuracy.tolist(), "p_all_negative": curves.p_all_negative.tolist(), "theta": curves.theta.tolist()}


def _write_json(args: argparse.Namespace, theta0, results) -> None:
    settings = {"steps_k": args.steps_k, "group_size": args.group_size, "theta0": theta0.tolist(), "lr": args.lr,
                "iters": args.iters, "levels": args.levels, "mc_groups": args.mc_groups, "seed": args.seed}
    runs = []
    for method, curves, mc in results:
        entry = {"label": _label(method, args), "method": method.name, "mapping": method.mapping, "scope": method.scope,
                 "scale": method.scale, "mapping_params": dict(method.mapping_params),
                 "iterations_to": {str(lvl): iterations_to(curves.accuracy, lvl) for lvl in args.levels},
                 "exact": _curves_dict(curves)}
        if mc is not None:
            entry["sampled"] = _curves_dict(mc)
        runs.append(entry)
    (args.out / "curves.json").write_text(json.dumps({"settings": settings, "runs": runs}))


def _plot(args: argparse.Namespace, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("accuracy", "expected accuracy", "accuracy.png"),
              ("p_all_negative", f"P(all-negative group), G = {args.group_size}", "all_negative.png")]
    for field, ylabel, filename in panels:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, (method, curves, mc) in enumerate(results):
            # Varying dash patterns keep curves that coincide (random = grpo in expectation) visible.
            style = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1))][i % 4]
            (line,) = ax.plot(getattr(curves, field).numpy(), linestyle=style, linewidth=1.6, label=_label(method, args))
            if mc is not None:
                ax.plot(getattr(mc, field).numpy(), color=line.get_color(), linestyle=":", linewidth=1.0, alpha=0.8)
        if field == "accuracy":
            for lvl in args.levels:
                ax.axhline(lvl, color="grey", linewidth=0.5, linestyle=":")
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.02, 1.02)
        title = f"K = {args.steps_k}, lr = {args.lr:g}" + (f"; dotted: {args.mc_groups} sampled groups/step" if args.mc_groups > 0 else "")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out / filename, dpi=120)
        plt.close(fig)
