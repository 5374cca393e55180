"""`$filter` on ARM list calls: each list accepts the filters its API documents, and ARM answers
any other with 400 rather than ignoring it (a filter silently dropped would return too much)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .request import arm_error

_EQ = re.compile(r"^(\w+)\s+eq\s+'((?:[^']|'')*)'$", re.IGNORECASE)
_CALL = re.compile(r"^(\w+)\(\s*(?:'((?:[^']|'')*)')?\s*\)$", re.IGNORECASE)

Predicate = Callable[[dict[str, Any]], bool]


def _prop(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda e: str((e.get("properties") or {}).get(name) or "").lower()


# list type (lower case) -> accepted `field eq '…'` fields -> the value the entry has
EQ_FIELDS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "microsoft.authorization/roleassignments": {"principalid": _prop("principalId")},
    "microsoft.authorization/roledefinitions": {"type": _prop("type"), "rolename": _prop("roleName")},
    "microsoft.resources/resources": {"resourcetype": lambda e: str(e.get("type") or "").lower()},
    "microsoft.compute/skus": {"location": lambda e: ""},  # answered by the skus handler itself
}
# list type -> accepted functions: atScope() and assignedTo('{principal}') for role assignments
CALLS: dict[str, set[str]] = {"microsoft.authorization/roleassignments": {"atscope", "assignedto"},
                              "microsoft.authorization/policyassignments": {"atscope"}}


def _equals(get: Callable[[dict[str, Any]], str], want: str) -> Predicate:
    return lambda e: get(e) == want


def parse_filter(rtype: str, text: str) -> tuple[Predicate, set[str]]:
    """(predicate over entries, functions used) for a `$filter` on a list of `rtype`; raises 400
    for a term this list does not accept."""
    t = rtype.lower()
    terms = [s.strip() for s in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE)] if text.strip() else []
    checks: list[Predicate] = []
    calls: set[str] = set()
    for term in terms:
        m = _EQ.match(term)
        if m and m[1].lower() in EQ_FIELDS.get(t, {}):
            checks.append(_equals(EQ_FIELDS[t][m[1].lower()], m[2].replace("''", "'").lower()))
            continue
        c = _CALL.match(term)
        if c and c[1].lower() in CALLS.get(t, set()):
            calls.add(c[1].lower())
            if c[1].lower() == "assignedto" and c[2]:
                checks.append(_equals(_prop("principalId"), c[2].lower()))
            continue
        raise arm_error(400, "InvalidFilterInQueryString",
                        f"Invalid $filter '{text}' specified in the query string: '{term}' is not supported "
                        f"when listing {rtype}.")
    return (lambda e: all(check(e) for check in checks)), calls
