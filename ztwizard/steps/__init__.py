"""The catalog: the four articles' 23 numbered steps and their checks, in guidance order."""

from __future__ import annotations

# Each article module exposes STEPS: list[Step].
from . import hub, spoke, storage, vm  # noqa: E402
from ._base import ARTICLES, Check, Step

STEPS: list[Step] = [*storage.STEPS, *vm.STEPS, *spoke.STEPS, *hub.STEPS]
STEP_BY_ID: dict[str, Step] = {s.id: s for s in STEPS}
CHECK_BY_ID: dict[str, Check] = {c.id: c for s in STEPS for c in s.checks}
STEP_OF_CHECK: dict[str, Step] = {c.id: s for s in STEPS for c in s.checks}

__all__ = ["ARTICLES", "CHECK_BY_ID", "STEPS", "STEP_BY_ID", "STEP_OF_CHECK", "Check", "Step"]
