"""Microsoft Defender for Cloud as its provider answers writes: a plan (pricing) PUT comes back
with fields the request did not send (enablement time, coverage, the plan's extensions with
their operation status), and a plan or Defender for Storage PUT can be applied yet answer 201
with a part that failed (`partial` fault), as PutPricingByNamePartialSuccess_example.json and
PutDefenderForStorageSettingsPartialSuccess_example.json document."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .faults import Faults
from .model import COVERAGE_BY_TIER, clone
from .persistence import Persistence
from .request import Request

# Extensions a plan turns on by itself at the Standard tier: plan (lower case) -> sub-plan
# (lower case, "" for any) -> extensions as the provider lists them.
PLAN_EXTENSIONS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "virtualmachines": {
        "p2": [{"name": "MdeDesignatedSubscription", "isEnabled": "False"},
               {"name": "AgentlessVmScanning", "isEnabled": "True",
                "additionalExtensionProperties": {"ExclusionTags": "[]"}}],
        "p1": [{"name": "MdeDesignatedSubscription", "isEnabled": "False"}],
    },
    "cloudposture": {"": [{"name": n, "isEnabled": "True"} for n in (
        "AgentlessVmScanning", "AgentlessDiscoveryForKubernetes", "SensitiveDataDiscovery",
        "ContainerRegistriesVulnerabilityAssessments")]},
    "storageaccounts": {"": [
        {"name": "OnUploadMalwareScanning", "isEnabled": "True",
         "additionalExtensionProperties": {"CapGBPerMonthPerStorageAccount": "5000"}},
        {"name": "SensitiveDataDiscovery", "isEnabled": "True"}]},
}
SUCCEEDED = {"code": "Succeeded", "message": "Successfully enabled extension"}
FAILED = {"code": "Failed", "message": "Failed assigning roles to the plan's identity for the extension"}
SCANNER_FAILED = {"code": "UnknownError", "message": "Failed to setup data scanner."}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Defender(Persistence):
    faults: Faults

    def _partial(self) -> bool:
        return bool(self.faults) and self.faults.for_partial()

    def _pricing_effects(self, ctx: Request, existing: dict[str, Any] | None, new: dict[str, Any]) -> int | None:
        props = new.setdefault("properties", {})
        old = (existing or {}).get("properties") or {}
        if str(props.get("pricingTier") or "").lower() != "standard":
            for computed in ("subPlan", "extensions", "enablementTime", "resourcesCoverageStatus"):
                props.pop(computed, None)
            # a Free plan still reports these (ListPricings_example.json, 2024-01-01: AppServices)
            props["freeTrialRemainingTime"] = "PT0S"
            props.setdefault("enforce", "False")
            props["resourcesCoverageStatus"] = COVERAGE_BY_TIER["free"]
            return None
        props.setdefault("freeTrialRemainingTime", "PT0S")
        was_on = str(old.get("pricingTier") or "").lower() == "standard"
        props["enablementTime"] = old.get("enablementTime") if was_on and old.get("enablementTime") else _now()
        props.setdefault("enforce", "False")
        props["resourcesCoverageStatus"] = COVERAGE_BY_TIER["standard"]
        plan = PLAN_EXTENSIONS.get(new["name"].lower(), {})
        defaults = plan.get(str(props.get("subPlan") or "").lower(), plan.get("", []))
        sent = [e for e in props.get("extensions") or [] if isinstance(e, dict) and isinstance(e.get("name"), str)]
        by_name = {e["name"].lower(): clone(e) for e in defaults}
        for e in sent:  # what the request says wins; the provider adds the rest
            by_name[e["name"].lower()] = {**by_name.get(e["name"].lower(), {}), **clone(e)}
        exts = list(by_name.values())
        enabled = [e for e in exts if str(e.get("isEnabled")).lower() == "true"]
        for e in exts:
            e.pop("operationStatus", None)
            if e in enabled:
                e["operationStatus"] = dict(SUCCEEDED)
        if exts:
            props["extensions"] = exts
        if enabled and self._partial():
            for e in enabled[:max(1, len(enabled) - 1)]:
                e["operationStatus"] = dict(FAILED)
            return 201
        return None

    def _storage_defender_effects(self, ctx: Request, existing: dict[str, Any] | None,
                                  new: dict[str, Any]) -> int | None:
        props = new.get("properties")
        if not isinstance(props, dict) or not props.get("isEnabled") or not self._partial():
            return None
        # the setting is saved, the scanners are not set up: they come back off, with why
        malware = props.setdefault("malwareScanning", {})
        if isinstance(malware, dict):
            malware.setdefault("onUpload", {})["isEnabled"] = False
            malware["operationStatus"] = dict(SCANNER_FAILED)
        discovery = props.setdefault("sensitiveDataDiscovery", {})
        if isinstance(discovery, dict):
            discovery["isEnabled"] = False
            discovery["operationStatus"] = dict(SCANNER_FAILED)
        return 201
