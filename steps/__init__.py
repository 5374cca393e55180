"""The catalog: every article's numbered steps and their checks, in guidance order.

Articles are discovered from the TOML data files shipped in this package (steps/README.md)."""

from __future__ import annotations

import re

from ._base import Check, Step
from .catalog import discover

_ARTICLES = discover()

ARTICLES: dict[str, str] = {data["article"]: data["title"] for data, _ in _ARTICLES}
STEPS: list[Step] = [s for _, steps in _ARTICLES for s in steps]
STEP_BY_ID: dict[str, Step] = {s.id: s for s in STEPS}
CHECK_BY_ID: dict[str, Check] = {c.id: c for s in STEPS for c in s.checks}
STEP_OF_CHECK: dict[str, Step] = {c.id: s for s in STEPS for c in s.checks}

_STEP_RE = re.compile(r"^([a-z]+-\d+)")


def step_of(check_id: str) -> str:
    """The step a check belongs to: the catalog's, else the id's shape (a journal from another
    version may name a check this catalog lacks: storage-1z -> storage-1)."""
    if check_id in STEP_OF_CHECK:
        return STEP_OF_CHECK[check_id].id
    m = _STEP_RE.match(check_id)
    return m.group(1) if m else check_id


__all__ = ["ARTICLES", "CHECK_BY_ID", "STEPS", "STEP_BY_ID", "STEP_OF_CHECK", "Check", "Step", "step_of"]
