"""Write the README's results table from results/*.json (`make results`); `--check` only says if it is stale.

    python scripts/results.py           # rewrite the table between the README's two markers
    python scripts/results.py --check   # exit 1 if the README's table differs from the files

The rows come from the runs (`course_utils.tools.results.record`: benchmarks, notebooks under
`make run`); edit a row's `what`, `machine` or `command` in its json file, never the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from course_utils.paths import ROOT  # noqa: E402
from course_utils.tools.results import render_table  # noqa: E402

BEGIN = "<!-- results table: written by `make results` from results/*.json; edit those, not this -->"
END = "<!-- end of results table -->"


def updated(readme: str, table: str) -> str:
    """`readme` with the text between BEGIN and END replaced by `table`."""
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers of the results table:\n{BEGIN}\n{END}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the table is stale")
    args = parser.parse_args(argv)
    path = ROOT / "README.md"
    old = path.read_text(encoding="utf-8")
    new = updated(old, render_table())
    if args.check:
        if new != old:
            print("README.md's results table differs from results/*.json: run `make results`")
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    print("README.md: results table written from results/*.json" + ("" if new != old else " (unchanged)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
