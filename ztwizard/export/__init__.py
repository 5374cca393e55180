"""Exports that make a hardening session's decisions stick (`ztwizard export`):

* `policy` / `policy-bicep`: an Azure Policy initiative for the selected checks (built-in
  definitions where the catalog names one, custom definitions for the rest), deployed at
  management-group scope with an assignment that has a managed identity for remediation, and the
  waivers as policy exemptions (`initiative.py`, `mapping.py`, `builtins.py`);
* `arm` / `bicep`: a deployment template of the end state a session applied (`template.py`).

`bicep.py` renders any of these ARM templates as Bicep text. Headless and offline: nothing here
talks to Azure."""

from __future__ import annotations

FORMATS = ("policy", "policy-bicep", "arm", "bicep")
