"""Print (or check) the README's feature table, generated from the catalog so it cannot drift.

    .venv/bin/python scripts/feature_table.py          # print the table
    .venv/bin/python scripts/feature_table.py --write  # replace it in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from ztwizard.steps import ARTICLES, STEPS

BEGIN, END = "<!-- feature-table:begin -->", "<!-- feature-table:end -->"
KIND = {"auto-patch": "auto", "auto-put": "auto", "create": "create", "advisory": "manual"}


def table() -> str:
    rows = ["| Step | Title | Who fixes a failing check (every check is inspected) |", "|---|---|---|"]
    for step in STEPS:
        kinds: dict[str, list[str]] = {}
        for check in step.checks:
            kinds.setdefault(KIND[check.remediation], []).append(check.id)
        does = "; ".join(f"{k}: {', '.join(v)}" for k, v in kinds.items())
        rows.append(f"| `{step.id}` | {ARTICLES[step.article]} {step.number}: {step.title} | {does} |")
    return "\n".join(rows)


def main() -> int:
    text = table()
    if "--write" in sys.argv:
        readme = Path(__file__).resolve().parent.parent / "README.md"
        content = readme.read_text()
        head, _, rest = content.partition(BEGIN)
        _, _, tail = rest.partition(END)
        readme.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
