"""The plan's vocabulary: findings, proposed changes, step results. Plain data, JSON-ready."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Status = Literal["pass", "fail", "manual", "error", "not_applicable"]
# A step's status is the worst of its findings.
SEVERITY: dict[str, int] = {"not_applicable": 0, "pass": 1, "manual": 2, "fail": 3, "error": 4}
STATUSES: tuple[Status, ...] = ("pass", "fail", "manual", "error", "not_applicable")
# Who brings a finding in line: the wizard (an update it proposes), the wizard creating a
# resource, or a person following the finding's instruction. Status never says this.
Remediation = Literal["auto", "create", "manual"]
REMEDIATION_KINDS: tuple[Remediation, ...] = ("auto", "create", "manual")


def worst(statuses: list[Status]) -> Status:
    if not statuses:
        return "not_applicable"
    return max(statuses, key=lambda s: SEVERITY[s])


@dataclass(slots=True)  # a plan holds several per resource: no instance dict each
class Finding:
    check: str
    resource_id: str
    status: Status
    property: str = ""
    actual: Any = None
    expected: Any = None
    message: str = ""
    remediation: Remediation = "manual"  # set from the check's label by the catalog's Context
    waiver: dict[str, Any] | None = None  # set by waivers.apply_waivers: {id, reason, expires, by}

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        out = asdict(self) if copy else view(self)
        if out.get("waiver") is None:  # the key appears only on waived findings (product.md §4)
            out.pop("waiver", None)
        return out


@dataclass(slots=True)
class Change:
    """One ARM write that brings a finding in line.

    `body` is exactly what is sent: a PATCH carries only what changes, a PUT is a full
    read-modify-write of the current resource. `before`/`after` hold only the properties the
    change sets, for a noise-free diff. `etag` is the one read at plan time (If-Match on apply).
    `params` are the choices a person may edit for create-resource changes. `one_way` says why
    undo could not take the change back (ARM keeps what it sets), before anyone applies it.
    `instead_of` names a broader change this one stands in for (an account's own Defender setting
    for the subscription's plan): sent only when that change is not part of the apply."""

    check: str
    resource_id: str
    action: str  # update | create | delete
    method: str  # PATCH | PUT | DELETE
    body: dict[str, Any] | None
    before: dict[str, Any]
    after: dict[str, Any]
    api_version: str = ""
    disruptive: bool = False
    billable: bool = False
    risk: str = ""
    title: str = ""
    etag: str | None = None
    depends_on: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    one_way: str = ""  # why undo cannot take it back ('' when it can), shown before apply
    instead_of: str = ""  # the change whose applying makes this one needless ('' for none)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = change_id(self.check, self.resource_id, self.method)

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        return asdict(self) if copy else view(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def view(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict whose values are the object's own (no copy): for a report
    that only reads them (`to_dict(copy=False)`)."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:  # `fields()` on every call was most of a report's cost
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    return {name: getattr(obj, name) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def change_id(check: str, resource_id: str, method: str) -> str:
    """Stable across runs, so a resumed session recognises the same change."""
    digest = hashlib.sha1(f"{check}|{resource_id.lower()}|{method}".encode()).hexdigest()
    return f"{check}-{digest[:10]}"


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


@dataclass
class StepResult:
    id: str
    article: str
    number: int
    title: str
    status: Status
    findings: list[Finding]
    changes: list[Change]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {s: 0 for s in STATUSES}
        out["waived"] = 0
        for f in self.findings:
            out["waived" if f.waiver else f.status] += 1  # a waived finding counts as waived only
        return out

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        return {
            "id": self.id, "article": self.article, "number": self.number, "title": self.title,
            "status": self.status,
            "findings": [f.to_dict(copy=copy) for f in self.findings],
            "changes": [c.to_dict(copy=copy) for c in self.changes],
        }
