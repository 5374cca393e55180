"""Derive the compact request-body schemas the sandbox validates against
(ztwizard/sandbox/specs/schemas.json) from the installed azure-mgmt SDKs' generated models.

Those models are generated from Azure/azure-rest-api-specs at the api-version named below, so
they carry the swagger's required, readOnly and enum facts per property; the sandbox itself only
reads the JSON this script writes (it imports no SDK). Re-run after an SDK upgrade:

    .venv/bin/python scripts/derive_schemas.py > ztwizard/sandbox/specs/schemas.json
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import importlib.metadata
import inspect
import json
import sys
import typing
from typing import Any

# type -> (distribution, models module, api-version, swagger source, PUT model, PATCH model or None)
NET = "specification/network/resource-manager/Microsoft.Network/stable/2026-03-01"
TYPES: dict[str, tuple[str, str, str, str, str, str | None]] = {
    "microsoft.storage/storageaccounts": (
        "azure-mgmt-storage", "azure.mgmt.storage.models", "2026-09-01",
        "specification/storage/resource-manager/Microsoft.Storage/stable/2026-09-01/storage.json",
        "StorageAccountCreateParameters", "StorageAccountUpdateParameters"),
    "microsoft.storage/storageaccounts/blobservices": (
        "azure-mgmt-storage", "azure.mgmt.storage.models", "2026-09-01",
        "specification/storage/resource-manager/Microsoft.Storage/stable/2026-09-01/blob.json",
        "BlobServiceProperties", None),
    "microsoft.storage/storageaccounts/fileservices": (
        "azure-mgmt-storage", "azure.mgmt.storage.models", "2026-09-01",
        "specification/storage/resource-manager/Microsoft.Storage/stable/2026-09-01/file.json",
        "FileServiceProperties", None),
    **{t: ("azure-mgmt-network", "azure.mgmt.network.models", "2026-03-01", f"{NET}/{f}.json", m, "TagsObject")
       for t, f, m in [
           ("microsoft.network/networksecuritygroups", "networkSecurityGroup", "NetworkSecurityGroup"),
           ("microsoft.network/routetables", "routeTable", "RouteTable"),
           ("microsoft.network/virtualnetworks", "virtualNetwork", "VirtualNetwork"),
           ("microsoft.network/networkinterfaces", "networkInterface", "NetworkInterface"),
           ("microsoft.network/publicipaddresses", "publicIpAddress", "PublicIPAddress"),
           ("microsoft.network/applicationsecuritygroups", "applicationSecurityGroup", "ApplicationSecurityGroup"),
           ("microsoft.network/bastionhosts", "bastionHost", "BastionHost"),
           ("microsoft.network/firewallpolicies", "firewallPolicy", "FirewallPolicy"),
           ("microsoft.network/ddosprotectionplans", "ddosProtectionPlan", "DdosProtectionPlan"),
           ("microsoft.network/networkwatchers", "networkWatcher", "NetworkWatcher"),
           ("microsoft.network/privateendpoints", "privateEndpoint", "PrivateEndpoint"),
           ("microsoft.network/azurefirewalls", "azureFirewall", "AzureFirewall"),
           ("microsoft.network/applicationgateways", "applicationGateway", "ApplicationGateway"),
           ("microsoft.network/applicationgatewaywebapplicationfirewallpolicies", "webapplicationfirewall",
            "WebApplicationFirewallPolicy"),
       ]},
    **{t: ("azure-mgmt-network", "azure.mgmt.network.models", "2026-03-01", f"{NET}/{f}.json", m, None)
       for t, f, m in [
           ("microsoft.network/networksecuritygroups/securityrules", "networkSecurityGroup", "SecurityRule"),
           ("microsoft.network/routetables/routes", "routeTable", "Route"),
           ("microsoft.network/virtualnetworks/subnets", "virtualNetwork", "Subnet"),
           ("microsoft.network/networkwatchers/flowlogs", "networkWatcher", "FlowLog"),
           ("microsoft.network/firewallpolicies/rulecollectiongroups", "firewallPolicy",
            "FirewallPolicyRuleCollectionGroup"),
       ]},
    "microsoft.compute/virtualmachines": (
        "azure-mgmt-compute", "azure.mgmt.compute.models", "2026-04-01",
        "specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2026-04-01/virtualMachine.json",
        "VirtualMachine", "VirtualMachineUpdate"),
    "microsoft.compute/virtualmachines/extensions": (
        "azure-mgmt-compute", "azure.mgmt.compute.models", "2026-04-01",
        "specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2026-04-01/virtualMachine.json",
        "VirtualMachineExtension", "VirtualMachineExtensionUpdate"),
    "microsoft.compute/disks": (
        "azure-mgmt-compute", "azure.mgmt.compute.models", "2026-03-02",
        "specification/compute/resource-manager/Microsoft.Compute/DiskRP/stable/2026-03-02/disk.json",
        "Disk", "DiskUpdate"),
    "microsoft.security/pricings": (
        "azure-mgmt-security", "azure.mgmt.security.v2024_01_01.models", "2024-01-01",
        "specification/security/resource-manager/Microsoft.Security/stable/2024-01-01/pricings.json",
        "Pricing", None),
    "microsoft.security/defenderforstoragesettings": (
        "azure-mgmt-security", "azure.mgmt.security.v2022_12_01_preview.models", "2022-12-01-preview",
        "specification/security/resource-manager/Microsoft.Security/preview/2022-12-01-preview/defenderForStorageSettings.json",
        "DefenderForStorageSetting", None),
    "microsoft.security/locations/jitnetworkaccesspolicies": (
        "azure-mgmt-security", "azure.mgmt.security.v2020_01_01.models", "2020-01-01",
        "specification/security/resource-manager/Microsoft.Security/stable/2020-01-01/jitNetworkAccessPolicies.json",
        "JitNetworkAccessPolicy", None),
    "microsoft.authorization/roledefinitions": (
        "azure-mgmt-authorization", "azure.mgmt.authorization.v2022_04_01.models", "2022-04-01",
        "specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json",
        "RoleDefinition", None),
    "microsoft.authorization/roleassignments": (
        "azure-mgmt-authorization", "azure.mgmt.authorization.v2022_04_01.models", "2022-04-01",
        "specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json",
        "RoleAssignmentCreateParameters", None),
    "microsoft.insights/diagnosticsettings": (
        "azure-mgmt-monitor", "azure.mgmt.monitor.v2021_05_01_preview.models", "2021-05-01-preview",
        "specification/monitor/resource-manager/Microsoft.Insights/preview/2021-05-01-preview/diagnosticsSettings_API.json",
        "DiagnosticSettingsResource", None),
}

PRIMITIVES = {str: "string", bool: "boolean", int: "integer", float: "number", dt.datetime: "string",
              dt.timedelta: "string", dt.date: "string", bytes: "string"}


class Deriver:
    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def hint(self, tp: Any, mod: Any) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if origin is typing.Union:
            enums = [a for a in args if inspect.isclass(a) and issubclass(a, enum.Enum)]
            if enums:
                return {"t": "string", "enum": sorted({str(v.value) for e in enums for v in e})}
            if len(args) == 1:
                return self.hint(args[0], mod)
            return {"t": "any"}
        if origin in (list, typing.List):  # noqa: UP006
            return {"t": "array", "items": self.hint(args[0], mod) if args else {"t": "any"}}
        if origin in (dict, typing.Dict):  # noqa: UP006
            return {"t": "object"}
        if inspect.isclass(tp) and issubclass(tp, enum.Enum):
            return {"t": "string", "enum": sorted(str(v.value) for v in tp)}
        if tp in PRIMITIVES:
            return {"t": PRIMITIVES[tp]}
        if inspect.isclass(tp) and (hasattr(tp, "_attribute_map") or hasattr(tp, "_is_model")):
            return self.model(tp)
        return {"t": "any"}

    def model(self, cls: Any) -> dict[str, Any]:
        name = f"{cls.__module__.split('.')[2]}.{cls.__name__}"
        if name not in self.defs:
            self.defs[name] = None  # recursion guard
            self.defs[name] = self._fields(cls)
        return {"ref": name}

    def _fields(self, cls: Any) -> dict[str, Any]:
        mod = sys.modules[cls.__module__]
        ns = {**vars(mod), "_models": sys.modules[mod.__name__.rsplit(".", 1)[0]]}
        node: dict[str, Any] = {"t": "object", "p": {}, "req": []}
        if hasattr(cls, "_attribute_map"):  # msrest-style model (multi-api SDKs)
            try:
                hints = typing.get_type_hints(cls.__init__, globalns=ns)
            except Exception:  # noqa: BLE001 - a hint we cannot resolve is typed from the map
                hints = {}
            validation = getattr(cls, "_validation", {})
            for attr, spec in cls._attribute_map.items():
                path = [p.replace("\\.", ".") for p in spec["key"].replace("\\.", "\0").split(".")]
                path = [p.replace("\0", ".") for p in path]
                sub = self._msrest_type(spec["type"], cls) if attr not in hints else self.hint(hints[attr], mod)
                rules = validation.get(attr, {})
                if rules.get("readonly"):
                    sub = {**sub, "ro": True}
                self._place(node, path, sub, bool(rules.get("required")))
            return node
        cls()  # the hybrid model builds its field table on first use
        hints = typing.get_type_hints(cls, globalns=ns)
        for attr, field in cls._attr_to_rest_field.items():
            sub = self.hint(hints.get(attr, Any), mod)
            if field._visibility == ["read"]:
                sub = {**sub, "ro": True}
            if field._is_discriminator:
                node["disc"] = field._rest_name
            self._place(node, [field._rest_name], sub, not field._is_optional and field._visibility != ["read"])
        mapping = {k: v for k, v in (cls.__dict__.get("__mapping__") or {}).items() if v is not cls}
        if mapping and "disc" in node:  # a polymorphic base: each kind has its own properties
            node["kinds"] = {value: self.model(sub_cls) for value, sub_cls in sorted(mapping.items())}
        return node

    def _msrest_type(self, t: str, cls: Any) -> dict[str, Any]:
        if t.startswith("["):
            return {"t": "array", "items": self._msrest_type(t[1:-1], cls)}
        if t.startswith("{"):
            return {"t": "object"}
        simple = {"str": "string", "bool": "boolean", "int": "integer", "float": "number", "iso-8601": "string",
                  "duration": "string", "object": "any", "date": "string"}
        if t in simple:
            return {"t": simple[t]}
        models = sys.modules[cls.__module__.rsplit(".", 1)[0]]
        other = getattr(models, t, None)
        return self.model(other) if other is not None else {"t": "any"}

    @staticmethod
    def _place(node: dict[str, Any], path: list[str], sub: dict[str, Any], required: bool) -> None:
        for part in path[:-1]:
            nxt = node["p"].setdefault(part, {"t": "object", "p": {}, "req": []})
            node = nxt
        node["p"][path[-1]] = sub
        if required:
            node["req"].append(path[-1])


def main() -> None:
    d = Deriver()
    types: dict[str, Any] = {}
    for rtype, (dist, module, version, source, put, patch) in TYPES.items():
        models = importlib.import_module(module)
        entry = {"api_version": version, "source": source,
                 "derived_from": f"{dist} {importlib.metadata.version(dist)} {module}",
                 "PUT": d.model(getattr(models, put))}
        if patch:
            entry["PATCH"] = d.model(getattr(models, patch))
        types[rtype] = entry
    json.dump({"format": "ztwizard.sandbox.schemas/v1", "types": types, "defs": d.defs}, sys.stdout,
              sort_keys=True, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
