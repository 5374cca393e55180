"""VM power state and the changes ARM allows only on a deallocated VM, through the real
azure-mgmt-compute and Features clients: each rule refuses, and the allowed path works."""

from __future__ import annotations

import json
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.features import FeatureClient

from ztwizard.estate import load_estate_file

SUB = "00000000-0000-0000-0000-0000000000d4"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-vm/providers/Microsoft.Compute"


def _estate(**power: str) -> list[dict]:
    """Three VMs: vm-gen2 (Gen2 OS disk, D2s_v5), vm-gen1 (Gen1 OS disk), vm-small (A2_v2: no
    encryption at host, no Trusted Launch). `power` gives a VM's estate power state."""
    out: list[dict] = []
    for name, size, gen in (("vm-gen2", "Standard_D2s_v5", "V2"), ("vm-gen1", "Standard_D2s_v5", "V1"),
                            ("vm-small", "Standard_A2_v2", "V2")):
        disk = f"{RG}/disks/{name}-os"
        vm = {"id": f"{RG}/virtualMachines/{name}", "location": "westeurope",
              "properties": {"hardwareProfile": {"vmSize": size},
                             "storageProfile": {"osDisk": {"name": f"{name}-os", "createOption": "FromImage",
                                                           "managedDisk": {"id": disk}}}}}
        if name in power:
            vm["properties"]["instanceView"] = {"statuses": [{"code": "ProvisioningState/succeeded"},
                                                             {"code": power[name]}]}
        out.append(vm)
        out.append({"id": disk, "location": "westeurope", "sku": {"name": "Premium_LRS"},
                    "managedBy": vm["id"],
                    "properties": {"hyperVGeneration": gen, "diskSizeGB": 64, "osType": "Linux",
                                   "encryption": {"type": "EncryptionAtRestWithPlatformKey"}}})
    out.append({"id": f"{RG}/diskEncryptionSets/des-1", "location": "westeurope",
                "properties": {"encryptionType": "EncryptionAtRestWithCustomerKey"}})
    return out


@pytest.fixture
def clients(sandbox, arm_client):
    def make(knobs: dict | None = None, **power: str):
        sb = sandbox(estate=_estate(**power), **(knobs or {}))
        cmp = arm_client(ComputeManagementClient, sb, SUB)
        feats = FeatureClient(cmp._config.credential, SUB, transport=sb.transport())
        return sb, cmp, feats
    return make


def _power(cmp: ComputeManagementClient, name: str) -> str:
    codes = [s.code for s in cmp.virtual_machines.instance_view("rg-vm", name).statuses]
    assert "ProvisioningState/succeeded" in codes
    return next(c for c in codes if c.startswith("PowerState/"))


def _refused(call, status: int, code: str) -> str:
    with pytest.raises(HttpResponseError) as err:
        call()
    assert err.value.status_code == status and err.value.error.code == code, err.value.message
    return str(err.value.error.message)


def test_power_state_moves_with_the_lro_actions(clients):
    sb, cmp, _ = clients({"lro_seconds": 1.0})  # long enough to be seen running on a loaded machine
    assert _power(cmp, "vm-gen2") == "PowerState/running"  # the default
    view = cmp.virtual_machines.instance_view("rg-vm", "vm-gen2")
    assert view.hyper_v_generation == "V2"  # read from the OS disk, as ARM reports it
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-gen2", polling=False).result()
    assert sb.request_log[-1][0] == "POST" and sb.request_log[-1][2] == 202
    assert _power(cmp, "vm-gen2") == "PowerState/deallocating"  # while the operation runs
    deadline = time.monotonic() + 30
    while _power(cmp, "vm-gen2") == "PowerState/deallocating" and time.monotonic() < deadline:
        time.sleep(0.05)  # the operation settles once lro_seconds have passed
    assert _power(cmp, "vm-gen2") == "PowerState/deallocated"
    got = cmp.virtual_machines.get("rg-vm", "vm-gen2", expand="instanceView")
    assert "PowerState/deallocated" in [s.code for s in got.instance_view.statuses]
    assert cmp.virtual_machines.get("rg-vm", "vm-gen2").instance_view is None  # not a property
    _refused(lambda: cmp.virtual_machines.begin_restart("rg-vm", "vm-gen2").result(), 409, "OperationNotAllowed")
    cmp.virtual_machines.begin_start("rg-vm", "vm-gen2").result()
    assert _power(cmp, "vm-gen2") == "PowerState/running"
    cmp.virtual_machines.begin_power_off("rg-vm", "vm-gen2").result()
    assert _power(cmp, "vm-gen2") == "PowerState/stopped"
    cmp.virtual_machines.begin_start("rg-vm", "vm-gen2").result()
    cmp.virtual_machines.begin_restart("rg-vm", "vm-gen2").result()
    assert _power(cmp, "vm-gen2") == "PowerState/running"


def test_an_estate_gives_the_power_state_and_it_survives_a_restart(sandbox, arm_client, tmp_path):
    sb = sandbox(tmp_path, estate=_estate(**{"vm-gen1": "PowerState/deallocated"}))
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    assert _power(cmp, "vm-gen1") == "PowerState/deallocated"
    assert cmp.virtual_machines.get("rg-vm", "vm-gen1").instance_view is None  # not stored on the VM
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-gen2").result()
    again = arm_client(ComputeManagementClient, sandbox(tmp_path), SUB)
    assert _power(again, "vm-gen2") == "PowerState/deallocated"
    exported = {e["id"]: e for e in sb.export()}
    assert exported[f"{RG}/virtualMachines/vm-gen1"]["properties"]["instanceView"]["statuses"] == \
        [{"code": "PowerState/deallocated"}]
    assert "instanceView" not in exported[f"{RG}/virtualMachines/vm-small"]["properties"]  # running


def test_a_failed_action_leaves_the_power_state_as_it_was(sandbox, arm_client):
    sb = sandbox(estate=_estate(**{"vm-gen2": "PowerState/deallocated"}), faults="lro-fail:1")
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    with pytest.raises(HttpResponseError):
        cmp.virtual_machines.begin_start("rg-vm", "vm-gen2").result()
    assert _power(cmp, "vm-gen2") == "PowerState/deallocated"


@pytest.mark.parametrize("change", [
    {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}},
    {"encryptionAtHost": True},
])
@pytest.mark.parametrize("state", ["PowerState/running", "PowerState/stopped"])
def test_security_changes_need_a_deallocated_vm(clients, change, state):
    sb, cmp, feats = clients(**{"vm-gen2": state})
    feats.features.register("Microsoft.Compute", "EncryptionAtHost")
    patch = {"properties": {"securityProfile": change}}
    msg = _refused(lambda: cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", patch).result(),
                   409, "OperationNotAllowed")
    assert "must be deallocated" in msg and state.split("/")[1] in msg
    assert "securityProfile" not in sb.store.get(f"{RG}/virtualMachines/vm-gen2")["properties"]
    # a PUT of the whole VM is refused the same way
    vm = cmp.virtual_machines.get("rg-vm", "vm-gen2").as_dict()
    body = {"location": vm["location"], "properties": {**sb.store.get(f"{RG}/virtualMachines/vm-gen2")["properties"],
                                                       "securityProfile": change}}
    body["properties"].pop("provisioningState", None)
    _refused(lambda: cmp.virtual_machines.begin_create_or_update("rg-vm", "vm-gen2", body).result(),
             409, "OperationNotAllowed")
    # the allowed path: deallocate, change, start
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-gen2").result()
    done = cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", patch).result()
    assert done.security_profile.as_dict() != {}
    cmp.virtual_machines.begin_start("rg-vm", "vm-gen2").result()
    assert _power(cmp, "vm-gen2") == "PowerState/running"


def test_turning_encryption_at_host_off_also_needs_deallocation(clients):
    sb, cmp, feats = clients()
    feats.features.register("Microsoft.Compute", "EncryptionAtHost")
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-gen2").result()
    cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", {"properties": {"securityProfile": {
        "encryptionAtHost": True}}}).result()
    cmp.virtual_machines.begin_start("rg-vm", "vm-gen2").result()
    off = {"properties": {"securityProfile": {"encryptionAtHost": False}}}
    _refused(lambda: cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", off).result(), 409, "OperationNotAllowed")
    # other properties of a running VM can still change
    cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", {"tags": {"owner": "ops"}}).result()
    cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", {"properties": {"securityProfile": {
        "encryptionAtHost": True}}}).result()  # no change: allowed while running


def test_encryption_at_host_needs_the_feature_and_a_capable_size(clients):
    sb, cmp, feats = clients(**{"vm-gen2": "PowerState/deallocated", "vm-small": "PowerState/deallocated"})
    on = {"properties": {"securityProfile": {"encryptionAtHost": True}}}
    assert feats.features.get("Microsoft.Compute", "EncryptionAtHost").properties.state == "NotRegistered"
    msg = _refused(lambda: cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", on).result(),
                   400, "InvalidParameter")
    assert "Microsoft.Compute/EncryptionAtHost" in msg
    reg = feats.features.register("Microsoft.Compute", "EncryptionAtHost")
    assert reg.properties.state == "Registering" and reg.name == "Microsoft.Compute/EncryptionAtHost"
    assert feats.features.get("Microsoft.Compute", "EncryptionAtHost").properties.state == "Registered"
    assert "Microsoft.Compute/EncryptionAtHost" in [f.name for f in feats.features.list("Microsoft.Compute")]
    msg = _refused(lambda: cmp.virtual_machines.begin_update("rg-vm", "vm-small", on).result(),
                   400, "InvalidParameter")
    assert "Standard_A2_v2" in msg
    assert cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", on).result().security_profile.encryption_at_host
    with pytest.raises(HttpResponseError) as err:
        feats.features.get("Microsoft.Compute", "NoSuchFeature")
    assert err.value.status_code == 404


def test_trusted_launch_needs_gen2_and_a_capable_size(clients):
    _, cmp, _ = clients(**{n: "PowerState/deallocated" for n in ("vm-gen1", "vm-gen2", "vm-small")})
    tl = {"properties": {"securityProfile": {"securityType": "TrustedLaunch",
                                             "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}}}
    msg = _refused(lambda: cmp.virtual_machines.begin_update("rg-vm", "vm-gen1", tl).result(), 400, "InvalidParameter")
    assert "Generation 2" in msg and "'V1'" in msg
    msg = _refused(lambda: cmp.virtual_machines.begin_update("rg-vm", "vm-small", tl).result(), 400, "InvalidParameter")
    assert "Standard_A2_v2" in msg
    done = cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", tl).result()
    assert done.security_profile.security_type == "TrustedLaunch"
    back = {"properties": {"securityProfile": {"securityType": "Standard"}}}
    msg = _refused(lambda: cmp.virtual_machines.begin_update("rg-vm", "vm-gen2", back).result(), 400,
                   "InvalidParameter")
    assert "UseStandardSecurityType" in msg


def test_disk_encryption_changes_need_the_vm_deallocated(clients):
    sb, cmp, _ = clients()
    des = f"{RG}/diskEncryptionSets/des-1"
    cmk = {"properties": {"encryption": {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": des}}}
    msg = _refused(lambda: cmp.disks.begin_update("rg-vm", "vm-gen2-os", cmk).result(), 409, "OperationNotAllowed")
    assert "vm-gen2" in msg and "deallocated" in msg
    assert sb.store.get(f"{RG}/disks/vm-gen2-os")["properties"]["encryption"]["type"] == \
        "EncryptionAtRestWithPlatformKey"
    cmp.disks.begin_update("rg-vm", "vm-gen2-os", {"tags": {"a": "b"}}).result()  # other changes are fine
    cmp.virtual_machines.begin_deallocate("rg-vm", "vm-gen2").result()
    done = cmp.disks.begin_update("rg-vm", "vm-gen2-os", cmk).result()
    assert done.encryption.disk_encryption_set_id.lower() == des.lower()
    # a disk no VM holds can be re-encrypted at any time
    sb.store.get(f"{RG}/disks/vm-gen1-os").pop("managedBy")
    cmp.disks.begin_update("rg-vm", "vm-gen1-os", cmk).result()


def test_skus_list_the_capabilities_the_platform_checks(clients):
    _, cmp, _ = clients()
    skus = {s.name: {c.name: c.value for c in s.capabilities} for s in cmp.resource_skus.list(filter="location eq 'westeurope'")}
    assert skus["Standard_D2s_v5"]["EncryptionAtHostSupported"] == "True"
    assert skus["Standard_D2s_v5"]["HyperVGenerations"] == "V1,V2"
    assert skus["Standard_A2_v2"]["TrustedLaunchDisabled"] == "True"
    assert skus["Standard_A2_v2"]["EncryptionAtHostSupported"] == "False"


def test_feature_registrations_survive_an_export_and_reload(sandbox, arm_client, tmp_path):
    sb, _, feats = clients_for(sandbox, arm_client)
    feats.features.register("Microsoft.Compute", "EncryptionAtHost")
    path = tmp_path / "export.json"
    path.write_text(json.dumps(sb.export()))
    again = sandbox(estate=load_estate_file(path))
    cmp = arm_client(ComputeManagementClient, again, SUB)
    reloaded = FeatureClient(cmp._config.credential, SUB, transport=again.transport())
    assert reloaded.features.get("Microsoft.Compute", "EncryptionAtHost").properties.state == "Registered"
    assert again.export() == sb.export()


def clients_for(sandbox, arm_client):
    sb = sandbox(estate=_estate())
    cmp = arm_client(ComputeManagementClient, sb, SUB)
    return sb, cmp, FeatureClient(cmp._config.credential, SUB, transport=sb.transport())


def test_status_only_lists_every_vm_with_its_instance_view_and_nothing_else(clients):
    """VirtualMachines_ListAll with statusOnly=true: one list carries each VM's run-time status,
    the instance view GET {vm}/instanceView returns, and none of its model."""
    _sb, cmp, _ = clients(**{"vm-gen1": "PowerState/deallocated"})
    listed = {vm.name: vm for vm in cmp.virtual_machines.list_all(status_only="true")}
    assert sorted(listed) == ["vm-gen1", "vm-gen2", "vm-small"]
    for name, vm in listed.items():
        assert vm.instance_view.as_dict() == cmp.virtual_machines.instance_view("rg-vm", name).as_dict()
        assert vm.hardware_profile is None and vm.storage_profile is None
    assert "PowerState/deallocated" in [s.code for s in listed["vm-gen1"].instance_view.statuses]
    assert listed["vm-gen2"].instance_view.vm_agent is not None and listed["vm-gen1"].instance_view.vm_agent is None
    full = next(iter(cmp.virtual_machines.list_all()))  # without it: the model, no status
    assert full.storage_profile is not None and full.instance_view is None
    _refused(lambda: list(cmp.virtual_machines.list_all(status_only="yes")), 400, "InvalidParameter")
