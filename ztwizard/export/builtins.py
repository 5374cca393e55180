"""The built-in Azure Policy definitions the export refers to, vendored from Azure/azure-policy
(builtins/definitions.json; builtins/SOURCES.md names each one's source path and the commit).

Only definitions the export references are vendored, and the export references no other id: an
initiative that names a built-in this table lacks is a bug (tests check it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

PREFIX = "/providers/Microsoft.Authorization/policyDefinitions/"


@dataclass(frozen=True)
class BuiltIn:
    name: str  # the definition's GUID
    display_name: str
    version: str
    parameters: dict[str, Any]
    role_definition_ids: tuple[str, ...]  # what a DeployIfNotExists/Modify effect needs
    source: str  # path in Azure/azure-policy

    @property
    def id(self) -> str:
        return PREFIX + self.name

    def default_effect(self) -> str:
        return str((self.parameters.get("effect") or {}).get("defaultValue") or "")

    def needs_identity(self) -> bool:
        return self.default_effect().lower() in ("deployifnotexists", "modify")


@cache
def table() -> dict[str, BuiltIn]:
    """Definition GUID -> BuiltIn, for every vendored definition."""
    raw = json.loads(resources.files(__package__).joinpath("builtins/definitions.json").read_text())
    return {name: BuiltIn(name=name, display_name=d["displayName"], version=d.get("version", ""),
                          parameters=d.get("parameters") or {},
                          role_definition_ids=tuple(d.get("roleDefinitionIds") or ()), source=d["source"])
            for name, d in raw["definitions"].items()}


@cache
def source_commit() -> str:
    raw = json.loads(resources.files(__package__).joinpath("builtins/definitions.json").read_text())
    return str(raw["source"]["commit"])


def get(name: str) -> BuiltIn:
    return table()[name]
