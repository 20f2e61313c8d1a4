"""The layout rules of docs/architecture.md, checked on the source: layers import only downward.

The import graph is read from the source (``ast``), so the test needs no heavy dependency and
sees imports that a run would not reach. An import at module level (outside ``if TYPE_CHECKING``)
is an edge of the graph, which must have no cycle; an import inside a function is allowed only for
a module that does not, through module-level imports, import the importing module back (that
would be an import placed in a function to dodge a cycle). Every module also imports on its own
in a fresh interpreter.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "sgpo"
MAX_LINES = 400
ENV = {**os.environ, "PYTHONPATH": str(SRC)}  # the subprocesses check this checkout, not an installed copy


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(node: ast.ImportFrom | ast.Import, here: str, is_package: bool) -> list[str]:
    """The sgpo modules an import statement loads (a ``from package import name`` may name a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = here.split(".")[: len(here.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join(anchor + ([base] if base else []))
        names = [base] + [f"{base}.{a.name}" for a in node.names]
    # Importing sgpo.a.b runs sgpo/a/__init__ first: an edge to every package above the target,
    # except the importer's own packages (a parent importing its children is how packages work,
    # and Python has the parent in sys.modules by then).
    own = {".".join(here.split(".")[:i]) for i in range(1, here.count(".") + 2)}
    found = []
    for name in names:
        parts = name.split(".")
        found += [p for p in (".".join(parts[:i]) for i in range(2, len(parts) + 1)) if p in MODULES and p not in own]
    return [m for m in dict.fromkeys(found) if m != here]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str) -> tuple[set[str], set[str]]:
    """(module-level sgpo imports, sgpo imports inside functions) of module ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    top, inner = set(), set()

    def walk(nodes, in_function: bool):
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                (inner if in_function else top).update(_target(node, name, path.name == "__init__.py"))
            elif isinstance(node, ast.If) and _is_type_checking(node):
                walk(node.orelse, in_function)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                walk(ast.iter_child_nodes(node), True)
            else:
                walk(ast.iter_child_nodes(node), in_function)

    walk(tree.body, False)
    return top, inner


GRAPH = {name: imports(name) for name in MODULES}


def reaches(start: str, goal: str) -> bool:
    """Does importing ``start`` import ``goal`` (through module-level imports)?"""
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo += GRAPH[m][0]
    return False


#: Layers, lowest first (docs/architecture.md): a module imports only from its own layer or lower ones.
LAYERS = [
    ("sgpo.errors", "sgpo.files", "sgpo.core"),
    ("sgpo.judges", "sgpo.tasks", "sgpo.models", "sgpo.theory"),
    ("sgpo.grading", "sgpo.sampling", "sgpo.rollouts", "sgpo.evaluation"),
    ("sgpo.train", "sgpo.judge_training"),
    ("sgpo.integrations",),
    ("sgpo.cli",),
]


def layer(name: str) -> int:
    if name == "sgpo":
        return len(LAYERS)  # the lazy public surface, above everything
    for level, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")


def test_layers_point_down():
    """Every import, at module level or in a function, goes to the importer's layer or below."""
    upward = sorted(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})" for a, (top, inner) in GRAPH.items()
                    for b in top | inner if layer(b) > layer(a))
    assert not upward, "\n".join(upward)


def test_the_graph_sees_imports():
    """The reader finds edges at all (a broken reader would pass every check below)."""
    top, _ = GRAPH["sgpo.train.trainer"]
    assert {"sgpo.grading", "sgpo.sampling.rollout", "sgpo.core"} <= top
    assert "sgpo.tasks.verify" in GRAPH["sgpo.cli.eval"][0] and "sgpo.evaluation.model_eval" in GRAPH["sgpo.cli.eval"][1]
    assert reaches("sgpo.train.trainer", "sgpo.errors")
    assert "sgpo.judges" in GRAPH["sgpo.tasks.arith"][0]  # the package above an imported module is an edge


def test_no_import_cycle():
    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a, (top, _) in GRAPH.items() for b in top if reaches(b, a))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_function_import_dodges_a_cycle():
    dodges = sorted(f"{a} imports {b} in a function; {b} imports {a} back" for a, (_, inner) in GRAPH.items()
                    for b in inner if reaches(b, a))
    assert not dodges, "\n".join(dodges)


def test_library_modules_do_not_parse_arguments():
    """Command-line parsing lives in sgpo.cli; the library takes plain arguments."""
    offenders = [name for name, path in MODULES.items()
                 if not name.startswith("sgpo.cli") and "argparse" in _stdlib_imports(path)]
    assert not offenders, offenders


def _stdlib_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_no_source_file_over_the_limit():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter (an order-dependent import would fail here). The optional
    integrations are left out when their framework is not installed."""
    optional = {"sgpo.integrations.trl": "trl", "sgpo.integrations.verl": "verl"}
    script = (
        "import importlib, importlib.util, subprocess, sys\n"
        f"optional = {optional!r}\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    need = next((dep for prefix, dep in optional.items() if name.startswith(prefix)), None)\n"
        "    if need and importlib.util.find_spec(need) is None:\n"
        "        continue\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True, text=True)\n"
        "    if r.returncode:\n"
        "        failed.append(name + ': ' + r.stderr.strip().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, *MODULES], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", ["sgpo", "sgpo.judges", "sgpo.core"])
def test_light_packages_stay_light(name):
    """The public entry points load without torch's training stack or an HTTP client."""
    r = subprocess.run([sys.executable, "-c", f"import sys, {name}; print(sorted(m for m in ('transformers', 'httpx', 'openai') if m in sys.modules))"],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


# -- tests that train in a subprocess carry the slow mark ------------------------------------------

TESTS = SRC.parent / "tests"
#: Calls that start training in another process (the testkit helpers and the commands that train).
TRAINS = re.compile(r"""assert_resume_is_exact\(|train_killed_after_checkpoint\(|torchrun|sgpo_cli\(\s*["'](train|compare|sft|rollout|train-judge)["']""")


def _trains_in_subprocess() -> dict[str, list[str]]:
    """file -> names of the test functions that train in a subprocess, directly or through a
    fixture of the same file that does."""
    out = {}
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        fixtures = {f.name for f in functions if any("fixture" in ast.unparse(d) for d in f.decorator_list)
                    and TRAINS.search(ast.unparse(f))}
        out[path.name] = [f.name for f in functions if f.name.startswith("test_") and (
            TRAINS.search(ast.unparse(f)) or fixtures & {a.arg for a in f.args.args})]
    return out


def _slow(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    if any(isinstance(n, ast.Assign) and "pytestmark" in ast.unparse(n) and "mark.slow" in ast.unparse(n) for n in tree.body):
        return True
    f = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return any("mark.slow" in ast.unparse(d) for d in f.decorator_list)


def test_tests_that_train_in_a_subprocess_are_marked_slow():
    found = _trains_in_subprocess()
    assert found["test_train.py"], "the detector finds nothing: check TRAINS"
    unmarked = [f"{file}::{name}" for file, names in found.items() for name in names if not _slow(TESTS / file, name)]
    assert not unmarked, "add @pytest.mark.slow to:\n" + "\n".join(unmarked)


def test_help_loads_no_torch():
    """`sgpo COMMAND --help` parses no model: commands import torch only when they run (theory's
    choices come from sgpo.core, which is torch)."""
    script = (
        "import contextlib, io, sys\n"
        "from sgpo.cli import COMMANDS, main\n"
        "heavy = []\n"
        "for name in COMMANDS:\n"
        "    if name == 'theory':\n"
        "        continue\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main([name, '--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    heavy += [f'{name}: {m}' for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('\\n'.join(heavy))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


#: Top-level modules besides the packages: the error types every layer raises, and the grading step
#: (one module, the stage every trainer calls; a package of one file would add only a name).
TOP_LEVEL = {"sgpo", "sgpo.errors", "sgpo.grading"}


def test_the_top_level_holds_packages_only():
    loose = sorted(name for name, path in MODULES.items() if name.count(".") == 1 and path.name != "__init__.py")
    assert set(loose) <= TOP_LEVEL, f"modules at the top level of sgpo/: {sorted(set(loose) - TOP_LEVEL)}"


def package_table() -> str:
    """docs/architecture.md's table: each top-level package (or module), its lines, the sgpo packages it imports."""
    top = lambda name: ".".join(name.split(".")[:2])  # noqa: E731
    lines: dict[str, int] = {}
    uses: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if name == "sgpo":
            continue
        lines[top(name)] = lines.get(top(name), 0) + len(path.read_text().splitlines())
        uses.setdefault(top(name), set()).update(top(b) for b in GRAPH[name][0] | GRAPH[name][1] if b != "sgpo")
    order = sorted(lines, key=lambda p: (-layer(p), p))  # the layers as docs/architecture.md lists them, top first
    rows = [f"| `{p}` | {len(LAYERS) - layer(p)} | {lines[p]} | {', '.join(f'`{u}`' for u in sorted(uses[p] - {p}, key=lambda u: (layer(u), u))) or '—'} |"
            for p in order]
    return "\n".join(["| package | layer | lines | imports |", "| --- | --- | --- | --- |", *rows])


def test_the_documented_package_table_matches_the_imports():
    """The table in docs/architecture.md names each package and what it imports (lines may drift:
    regenerate with `python tests/test_layout.py`)."""
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    strip_lines = lambda table: [re.sub(r"^(\| [^|]+ \| \d+ \| )\d+ ", r"\1", row) for row in table.splitlines()]  # noqa: E731
    documented = [row for row in strip_lines(doc) if row.startswith("| `sgpo.")]
    assert documented == strip_lines(package_table())[2:], "regenerate with `python tests/test_layout.py`"


if __name__ == "__main__":
    print(package_table())
