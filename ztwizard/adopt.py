"""Recognising the wizard's own creations. A create whose resource already exists is not
someone else's resource when the journal records the wizard creating it (a lost answer, a
half-failed run) or when it matches the planned create by name, type and location and holds
what the create sends. Such a resource is adopted (counted as done, so what depends on it
proceeds), or, when its last provisioning failed, the create is sent again to complete it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import journal as J
from .model import Change

# provisioningState values that mean the create did not finish: send it again.
UNFINISHED = {"failed", "canceled"}


@dataclass
class Creation:
    """A create found to be the wizard's own: `complete` (adopt it) or not (send it again)."""

    complete: bool
    reason: str


def _low(v: Any) -> str:
    return str(v or "").lower().replace(" ", "")


def matches_planned_create(ch: Change, cur: dict[str, Any]) -> bool:
    """Same name, type and location as the create, and holding every property it sends."""
    from .armjson import holds

    body = ch.body or {}
    for key in ("name", "type", "location"):
        if key in body and _low(body[key]) != _low(cur.get(key)):
            return False
    return holds(cur, ch.after)


def own_creation(journal: J.Journal, session_id: str, ch: Change, cur: dict[str, Any] | None) -> Creation | None:
    """None unless `ch` creates a resource that exists and is the wizard's own."""
    if ch.action != "create" or cur is None:
        return None
    state = _low((cur.get("properties") or {}).get("provisioningState"))
    record = journal.created_by_wizard(ch.resource_id, exclude_change=(session_id, ch.id))
    planned = matches_planned_create(ch, cur)
    if record is not None and record.state == J.FAILED and state not in UNFINISHED and not planned:
        record = None  # ARM refused that create: whatever exists now was made by someone else
    if record is None and not planned:
        return None
    where = f"session {record.session_id}" if record is not None else "it matches the planned create"
    if state in UNFINISHED:
        if record is None:
            return None  # not provably ours: leave someone else's failed resource alone
        return Creation(False, f"created by this wizard ({where}) but its provisioning {state}; "
                               "sending the create again")
    if not planned:
        return Creation(False, f"created by this wizard ({where}) but not as planned; sending the create again")
    return Creation(True, f"already created by this wizard ({where}); adopted")
