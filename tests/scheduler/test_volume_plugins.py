"""VolumeBinding, VolumeRestrictions and NodeVolumeLimits against Kubernetes' semantics and messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kybernetes.scheduler.config import build_profile
from kybernetes.scheduler.explain import explain_pod
from kybernetes.scheduler.framework import Code, CycleState
from kybernetes.scheduler.nodeinfo import PodInfo
from kybernetes.scheduler.volumes import VolumeStore

from .util import Env, node, only, pod

Obj = dict[str, Any]
NODES = [node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"})]
WFFC = "local-path"
BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
NODE_CONFLICT = "node(s) had volume node affinity conflict"
PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"


def sc(name: str, mode: str = "WaitForFirstConsumer", provisioner: str = "kybernetes.io/local-path",
       topologies: list[Obj] | None = None) -> Obj:
    out: Obj = {"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode}
    if topologies is not None:
        out["allowedTopologies"] = topologies
    return out


def pvc(name: str, cls: str | None = WFFC, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",),
        volume: str = "", bound: bool = False, ann: dict[str, str] | None = None, ns: str = "default") -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    anns = dict(ann or {})
    if bound:
        anns["pv.kubernetes.io/bind-completed"] = "yes"
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": "1",
                         "annotations": anns}, "spec": spec, "status": {"phase": "Bound" if bound else "Pending"}}


def pv(name: str, size: str = "1Gi", cls: str = WFFC, node_name: str | None = None, claim: str = "",
       phase: str = "Available", modes: tuple[str, ...] = ("ReadWriteOnce",), csi: Obj | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
                 "local": {"path": f"/data/{name}"}}
    if node_name:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}}
    if claim:
        spec["claimRef"] = {"namespace": "default", "name": claim, "uid": f"uid-{claim}"}
    if csi:
        spec["csi"] = csi
        del spec["local"]
    return {"metadata": {"name": name, "resourceVersion": "1"}, "spec": spec, "status": {"phase": phase}}


def with_claims(p: Obj, *claims: str) -> Obj:
    p["spec"]["volumes"] = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]
    return p


VOLUME_PLUGINS = only("VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding")


def env(pvs: list[Obj] = (), pvcs: list[Obj] = (), classes: list[Obj] = (), pods: list[Obj] = (),  # type: ignore[assignment]
        csinodes: list[Obj] = ()) -> Env:  # type: ignore[assignment]
    store = VolumeStore.from_objects(list(pvs), list(pvcs), list(classes) or [sc(WFFC), sc("fast", "Immediate")],
                                     list(csinodes))
    return Env(NODES, list(pods), VOLUME_PLUGINS, volumes=store)


# --- VolumeBinding: filter verdicts --------------------------------------------------------------

@pytest.mark.parametrize(("case", "pvs", "pvcs", "classes", "expected"), [
    # VolumeRestrictions' PreFilter runs first (Kubernetes' order) and reports it.
    ("no claim found", [], [], [], dict.fromkeys(("n1", "n2"), 'VolumeRestrictions: persistentvolumeclaim "data" not found')),
    ("unbound immediate", [], [pvc("data", "fast")], [],
     dict.fromkeys(("n1", "n2"), "VolumeBinding: pod has unbound immediate PersistentVolumeClaims")),
    ("no class at all is immediate", [pv("p1", cls="")], [pvc("data", None)], [],
     dict.fromkeys(("n1", "n2"), "VolumeBinding: pod has unbound immediate PersistentVolumeClaims")),
    ("pre-bound claim counts as immediate", [], [pvc("data", volume="p1")], [],
     dict.fromkeys(("n1", "n2"), "VolumeBinding: pod has unbound immediate PersistentVolumeClaims")),
    ("missing class", [], [pvc("data", "gold")], [sc(WFFC)],
     dict.fromkeys(("n1", "n2"), 'VolumeBinding: storageclass.storage.k8s.io "gold" not found')),
    ("bound pv with node affinity", [pv("p1", node_name="n2", claim="data", phase="Bound")],
     [pvc("data", volume="p1", bound=True)], [], {"n1": f"VolumeBinding: {NODE_CONFLICT}", "n2": None}),
    ("bound pv gone", [], [pvc("data", volume="p1", bound=True)], [],
     dict.fromkeys(("n1", "n2"), f"VolumeBinding: {PV_NOT_EXIST}")),
    ("wffc static pv on one node", [pv("p1", node_name="n1")], [pvc("data")], [sc(WFFC, provisioner="kubernetes.io/no-provisioner")],
     {"n1": None, "n2": f"VolumeBinding: {BIND_CONFLICT}"}),
    ("wffc static pv too small", [pv("p1", "500Mi", node_name="n1")], [pvc("data")],
     [sc(WFFC, provisioner="kubernetes.io/no-provisioner")], dict.fromkeys(("n1", "n2"), f"VolumeBinding: {BIND_CONFLICT}")),
    ("wffc pv of another class or mode or claimed", [pv("p1", cls="x", node_name="n1"),
                                                     pv("p2", modes=("ReadOnlyMany",), node_name="n1"),
                                                     pv("p3", claim="other", node_name="n1")],
     [pvc("data")], [sc(WFFC, provisioner="kubernetes.io/no-provisioner")],
     dict.fromkeys(("n1", "n2"), f"VolumeBinding: {BIND_CONFLICT}")),
    ("wffc provisioning anywhere", [], [pvc("data")], [], {"n1": None, "n2": None}),
    ("wffc provisioning by allowedTopologies", [], [pvc("data")],
     [sc(WFFC, topologies=[{"matchLabelExpressions": [{"key": "zone", "values": ["b"]}]}])],
     {"n1": f"VolumeBinding: {BIND_CONFLICT}", "n2": None}),
    ("wffc already given a node", [], [pvc("data", ann={"volume.kubernetes.io/selected-node": "n1"})], [],
     {"n1": None, "n2": f"VolumeBinding: {BIND_CONFLICT}"}),
    ("both conflicts in Kubernetes' order", [pv("p1", node_name="n2", claim="a", phase="Bound")],
     [pvc("a", volume="p1", bound=True), pvc("b")],
     [sc(WFFC, topologies=[{"matchLabelExpressions": [{"key": "zone", "values": ["a"]}]}])],
     {"n1": f"VolumeBinding: {NODE_CONFLICT}", "n2": f"VolumeBinding: {BIND_CONFLICT}"}),
])
def test_volume_binding_filter(case: str, pvs: list[Obj], pvcs: list[Obj], classes: list[Obj],
                               expected: dict[str, str | None]) -> None:
    claims = [c["metadata"]["name"] for c in pvcs] or ["data"]
    e = env(pvs, pvcs, classes)
    assert e.filter(with_claims(pod("p"), *claims)) == expected, case


def test_both_node_reasons_on_one_node() -> None:
    e = env([pv("p1", node_name="n2", claim="a", phase="Bound")], [pvc("a", volume="p1", bound=True), pvc("b")],
            [sc(WFFC, provisioner="kubernetes.io/no-provisioner")])
    assert e.filter(with_claims(pod("p"), "a", "b"))["n1"] == f"VolumeBinding: {NODE_CONFLICT}, {BIND_CONFLICT}"


def test_plain_pod_skips_every_volume_plugin() -> None:
    e = env()
    state = CycleState()
    assert e.fw.run_pre_filter(state, PodInfo(pod("plain"))) is None
    assert state.skip_filter == {"VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding"}
    cm = pod("cm")
    cm["spec"]["volumes"] = [{"name": "c", "configMap": {"name": "x"}}]
    state = CycleState()
    assert e.fw.run_pre_filter(state, PodInfo(cm)) is None
    assert state.skip_filter == {"VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding"}


def test_ephemeral_claim_waits_for_its_controller_and_owner() -> None:
    p = pod("web")
    p["spec"]["volumes"] = [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]
    assert env().filter(p)["n1"] == ('VolumeBinding: waiting for ephemeral volume controller to create the '
                                     'persistentvolumeclaim "web-scratch"')
    assert env(pvcs=[pvc("web-scratch")]).filter(p)["n1"] == (
        "VolumeBinding: PVC default/web-scratch was not created for pod default/web (pod is not owner)")
    owned = pvc("web-scratch")
    owned["metadata"]["ownerReferences"] = [{"kind": "Pod", "name": "web", "uid": "uid-default-web", "controller": True}]
    assert env(pvcs=[owned]).filter(p) == {"n1": None, "n2": None}


def test_smallest_matching_pv_is_chosen_and_assumed() -> None:
    e = env([pv("big", "10Gi", node_name="n1"), pv("small", "2Gi", node_name="n1"), pv("tiny", "1Gi", node_name="n2")],
            [pvc("data", size="2Gi"), pvc("data2", size="2Gi")], [sc(WFFC, provisioner="kubernetes.io/no-provisioner")])
    plugin = e.fw.plugins["VolumeBinding"]
    pi = PodInfo(with_claims(pod("p"), "data"))
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n1"]) is None
    assert plugin.reserve(state, pi, "n1") is None
    assumed = e.handle.volumes.pv("small")
    assert assumed is not None and assumed["spec"]["claimRef"]["name"] == "data"
    # The next pod's cycle sees "small" taken and gets "big"; after Unreserve "small" is free again.
    pi2 = PodInfo(with_claims(pod("q"), "data2"))
    s2 = CycleState()
    assert e.fw.run_pre_filter(s2, pi2) is None
    assert e.fw.run_filter(s2, pi2, e.cache.snapshot.nodes["n1"]) is None
    assert [b[0]["metadata"]["name"] for b in s2.data["VolumeBinding"].by_node["n1"].bindings] == ["big"]
    plugin.unreserve(state, pi, "n1")
    assert e.handle.volumes.pv("small")["spec"].get("claimRef") is None  # type: ignore[index]


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Obj]] = []

    async def update(self, api: str, plural: str, obj: Obj, namespace: str = "") -> Obj:
        self.calls.append((plural, obj))
        return obj


async def test_pre_bind_writes_selected_node_then_waits_for_the_binder() -> None:
    e = env(pvcs=[pvc("data")])
    e.handle.client = client = _Recorder()
    plugin = e.fw.plugins["VolumeBinding"]
    plugin.bind_timeout = 5.0
    pi = PodInfo(with_claims(pod("p"), "data"))
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n2"]) is None
    e.cache.assume(pi, "n2")
    assert e.fw.run_reserve(state, pi, "n2") is None
    task = asyncio.ensure_future(e.fw.run_pre_bind(state, pi, "n2"))
    await asyncio.sleep(0.05)
    assert not task.done()
    [(plural, written)] = client.calls
    assert plural == "persistentvolumeclaims"
    assert written["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "n2"
    # The provisioner and the PV controller do their part (here: the informer delivers the result).
    done = pvc("data", volume="pvc-1", bound=True, ann={"volume.kubernetes.io/selected-node": "n2"})
    done["metadata"]["resourceVersion"] = "3"
    e.handle.volumes.set_pv(pv("pvc-1", node_name="n2", claim="data", phase="Bound"))
    e.handle.volumes.set_pvc(done)
    assert await asyncio.wait_for(task, 5) is None


async def test_pre_bind_fails_when_provisioning_gives_up_or_times_out() -> None:
    e = env(pvcs=[pvc("data")])
    e.handle.client = _Recorder()
    plugin = e.fw.plugins["VolumeBinding"]
    pi = PodInfo(with_claims(pod("p"), "data"))
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n1"]) is None
    e.cache.assume(pi, "n1")
    assert e.fw.run_reserve(state, pi, "n1") is None
    task = asyncio.ensure_future(e.fw.run_pre_bind(state, pi, "n1"))
    await asyncio.sleep(0.05)
    gave_up = pvc("data")
    gave_up["metadata"]["resourceVersion"] = "4"
    e.handle.volumes.set_pvc(gave_up)  # the annotation is gone: the provisioner rescheduled it
    st = await asyncio.wait_for(task, 5)
    assert st is not None and st.code == Code.ERROR
    assert st.message == 'binding volumes: provisioning failed for PVC "data"'
    e2 = env(pvcs=[pvc("data")])
    e2.handle.client = _Recorder()
    e2.fw.plugins["VolumeBinding"].bind_timeout = 0.2
    s2 = CycleState()
    assert e2.fw.run_pre_filter(s2, pi) is None
    assert e2.fw.run_filter(s2, pi, e2.cache.snapshot.nodes["n1"]) is None
    pi = PodInfo(with_claims(pod("p"), "data"))
    e2.cache.assume(pi, "n1")
    assert e2.fw.run_reserve(s2, pi, "n1") is None
    st = await asyncio.wait_for(e2.fw.run_pre_bind(s2, pi, "n1"), 5)
    assert st is not None and st.message == "binding volumes: context deadline exceeded"
    del plugin


# --- VolumeRestrictions --------------------------------------------------------------------------

RWOP = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"


@pytest.mark.parametrize(("modes", "used", "expected"), [
    (("ReadWriteOncePod",), True, f"VolumeRestrictions: {RWOP}"),
    (("ReadWriteOncePod",), False, None),
    (("ReadWriteOnce",), True, None),
])
def test_read_write_once_pod(modes: tuple[str, ...], used: bool, expected: str | None) -> None:
    claim = pvc("data", volume="p1", bound=True, modes=modes)
    others = [with_claims(pod("holder", node_name="n2"), "data")] if used else []
    e = Env(NODES, others, only("VolumeRestrictions"),
            volumes=VolumeStore.from_objects([pv("p1", claim="data", phase="Bound", modes=modes)], [claim]))
    assert e.filter(with_claims(pod("p"), "data")) == dict.fromkeys(("n1", "n2"), expected)
    missing = Env(NODES, [], only("VolumeRestrictions"), volumes=VolumeStore())
    assert missing.filter(with_claims(pod("p"), "nope"))["n1"] == \
        'VolumeRestrictions: persistentvolumeclaim "nope" not found'


# --- NodeVolumeLimits ----------------------------------------------------------------------------

def test_csi_volume_limits() -> None:
    csi = "ebs.example.com"
    pvs = [pv(f"p{i}", csi={"driver": csi, "volumeHandle": f"h{i}"}, claim=f"c{i}", phase="Bound") for i in range(3)]
    pvcs = [pvc(f"c{i}", volume=f"p{i}", bound=True) for i in range(3)]
    limits = [{"metadata": {"name": "n1"}, "spec": {"drivers": [{"name": csi, "nodeID": "n1",
                                                                 "allocatable": {"count": 2}}]}},
              {"metadata": {"name": "n2"}, "spec": {"drivers": []}}]
    running = [with_claims(pod("a", node_name="n1"), "c0"), with_claims(pod("b", node_name="n1"), "c1"),
               with_claims(pod("c", node_name="n2"), "c0", "c1")]
    e = Env(NODES, running, only("NodeVolumeLimits"), volumes=VolumeStore.from_objects(pvs, pvcs, [], limits))
    assert e.filter(with_claims(pod("p"), "c2")) == {"n1": "NodeVolumeLimits: node(s) exceed max volume count",
                                                      "n2": None}
    # A volume already attached to the node does not count again.
    assert e.filter(with_claims(pod("p"), "c0"))["n1"] is None
    # Local volumes are not CSI volumes: never limited.
    local = Env(NODES, [], only("NodeVolumeLimits"), volumes=VolumeStore.from_objects(
        [pv("l", claim="d", phase="Bound")], [pvc("d", volume="l", bound=True)], [], limits))
    assert local.filter(with_claims(pod("p"), "d")) == {"n1": None, "n2": None}


def test_default_profile_runs_the_volume_plugins() -> None:
    store = VolumeStore.from_objects([pv("p1", node_name="n2", claim="data", phase="Bound")],
                                     [pvc("data", volume="p1", bound=True)], [sc(WFFC)])
    e = Env(NODES, [], build_profile({}), volumes=store)
    assert e.fits(with_claims(pod("p", "100m"), "data")) == ["n2"]


# --- explain -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pvs", "pvcs", "message", "suggestion"), [
    ([], [], '0/2 nodes are available: 2 persistentvolumeclaim "data" not found.',
     "create PersistentVolumeClaim 'data' in namespace 'default'"),
    ([], [pvc("data", "fast")], "0/2 nodes are available: 2 pod has unbound immediate PersistentVolumeClaims.",
     "claim 'data' is not bound and is bound only by the PV controller: create a PersistentVolume for it "
     "(storageClassName 'fast', accessModes ReadWriteOnce, capacity >= 1Gi)"),
    ([pv("p1", node_name="gone", claim="data", phase="Bound")], [pvc("data", volume="p1", bound=True)],
     f"0/2 nodes are available: 2 {NODE_CONFLICT}.",
     "claim 'data' is bound to PersistentVolume 'p1', whose node affinity allows only nodes that do not exist: "
     "make one of those nodes available to the pod"),
    ([], [pvc("data", "manual")], f"0/2 nodes are available: 2 {BIND_CONFLICT}.",
     "create a PersistentVolume for claim 'data' (storageClassName 'manual', accessModes ReadWriteOnce, "
     "capacity >= 1Gi) with node affinity to a node the pod fits, or let its StorageClass provision on such a "
     "node (provisioner, allowedTopologies)"),
])
def test_explain_names_volume_reasons(pvs: list[Obj], pvcs: list[Obj], message: str, suggestion: str) -> None:
    store = VolumeStore.from_objects(pvs, pvcs, [sc(WFFC), sc("fast", "Immediate"),
                                                 sc("manual", provisioner="kubernetes.io/no-provisioner")])
    exp = explain_pod(with_claims(pod("p"), "data"), NODES, [], volumes=store)
    assert exp.message == message
    assert suggestion in exp.suggestions, exp.suggestions


def test_pv_pre_bound_to_the_claim_wins_and_needs_no_write() -> None:
    prebound = pv("mine", "5Gi", node_name="n1", claim="data")
    prebound["status"]["phase"] = "Available"
    e = env([pv("small", "1Gi", node_name="n1"), prebound], [pvc("data")],
            [sc(WFFC, provisioner="kubernetes.io/no-provisioner")])
    pi = PodInfo(with_claims(pod("p"), "data"))
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n1"]) is None
    pv_for_node = state.data["VolumeBinding"].by_node["n1"]
    assert [b[0]["metadata"]["name"] for b in pv_for_node.bindings] == ["mine"]
    assert e.fw.run_reserve(state, pi, "n1") is None
    assert pv_for_node.writes == [] and not state.data["VolumeBinding"].all_bound


def test_a_users_pre_binding_without_uid_gets_the_uid_not_bound_by_controller() -> None:
    # GetBindVolumeToClaim: the user chose this volume, so unbinding it later keeps their claimRef.
    prebound = pv("mine", node_name="n1", claim="data")
    del prebound["spec"]["claimRef"]["uid"]
    e = env([prebound], [pvc("data")], [sc(WFFC, provisioner="kubernetes.io/no-provisioner")])
    pi = PodInfo(with_claims(pod("p"), "data"))
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n1"]) is None
    assert e.fw.run_reserve(state, pi, "n1") is None
    [written] = state.data["VolumeBinding"].by_node["n1"].writes
    assert written["spec"]["claimRef"]["uid"] == "uid-data"
    assert "pv.kubernetes.io/bound-by-controller" not in written["metadata"].get("annotations", {})


def test_a_pv_pre_bound_to_the_claim_elsewhere_rules_out_the_other_pvs() -> None:
    # FindMatchingVolume with a node: a pre-bound volume whose node affinity misses the node is
    # no match at all there, even with another volume free on that node.
    e = env([pv("free", node_name="n1"), pv("mine", node_name="n2", claim="data")], [pvc("data")],
            [sc(WFFC, provisioner="kubernetes.io/no-provisioner")])
    pi = PodInfo(with_claims(pod("p"), "data"))
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    st = e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n1"])
    assert st is not None and list(st.reasons) == [BIND_CONFLICT]
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n2"]) is None


async def test_pre_bind_writes_the_pv_claim_ref_and_fails_if_the_binder_drops_it() -> None:
    e = env([pv("p1", node_name="n1")], [pvc("data")], [sc(WFFC, provisioner="kubernetes.io/no-provisioner")])
    e.handle.client = client = _Recorder()
    pi = PodInfo(with_claims(pod("p"), "data"))
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n1"]) is None
    e.cache.assume(pi, "n1")
    assert e.fw.run_reserve(state, pi, "n1") is None
    task = asyncio.ensure_future(e.fw.run_pre_bind(state, pi, "n1"))
    await asyncio.sleep(0.05)
    [(plural, written)] = client.calls
    assert plural == "persistentvolumes"
    assert written["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data",
                                           "uid": "uid-data", "apiVersion": "v1", "resourceVersion": "1"}
    assert written["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert not task.done()
    unbound = pv("p1", node_name="n1")
    unbound["metadata"]["resourceVersion"] = "7"
    e.handle.volumes.set_pv(unbound)  # the PV controller rolled the binding back
    st = await asyncio.wait_for(task, 5)
    assert st is not None and st.message == 'binding volumes: ClaimRef got reset for pv "p1"'


async def test_pre_bind_stops_waiting_when_the_pod_is_deleted() -> None:
    e = env(pvcs=[pvc("data")])
    e.handle.client = _Recorder()
    p = with_claims(pod("p"), "data")
    pi = PodInfo(p)
    state = CycleState()
    assert e.fw.run_pre_filter(state, pi) is None
    assert e.fw.run_filter(state, pi, e.cache.snapshot.nodes["n1"]) is None
    e.cache.assume(pi, "n1")
    assert e.fw.run_reserve(state, pi, "n1") is None
    task = asyncio.ensure_future(e.fw.run_pre_bind(state, pi, "n1"))
    await asyncio.sleep(0.05)
    e.cache.remove_pod(p)  # the informer's delete
    e.handle.volumes.notify()
    st = await asyncio.wait_for(task, 5)
    assert st is not None and st.message == 'binding volumes: pod does not exist any more: pods "p" not found'


def _disk(**source: Obj) -> Obj:
    p = pod("p")
    p["spec"]["volumes"] = [{"name": "d", **source}]
    return p


@pytest.mark.parametrize(("mine", "theirs", "conflict"), [
    ({"gcePersistentDisk": {"pdName": "a"}}, {"gcePersistentDisk": {"pdName": "a"}}, True),
    ({"gcePersistentDisk": {"pdName": "a", "readOnly": True}}, {"gcePersistentDisk": {"pdName": "a", "readOnly": True}},
     False),
    ({"gcePersistentDisk": {"pdName": "a"}}, {"gcePersistentDisk": {"pdName": "b"}}, False),
    ({"awsElasticBlockStore": {"volumeID": "v", "readOnly": True}},
     {"awsElasticBlockStore": {"volumeID": "v", "readOnly": True}}, True),
    ({"iscsi": {"iqn": "q", "targetPortal": "x", "lun": 0}}, {"iscsi": {"iqn": "q", "targetPortal": "y", "lun": 1}},
     True),
    ({"rbd": {"monitors": ["m1", "m2"], "image": "i"}}, {"rbd": {"monitors": ["m2"], "pool": "rbd", "image": "i"}}, True),
    ({"rbd": {"monitors": ["m1"], "image": "i"}}, {"rbd": {"monitors": ["m2"], "image": "i"}}, False),
])
def test_legacy_disk_conflicts(mine: Obj, theirs: Obj, conflict: bool) -> None:
    other = _disk(**theirs)
    other["metadata"]["name"] = "other"
    other["spec"]["nodeName"] = "n1"
    e = Env(NODES, [other], only("VolumeRestrictions"), volumes=VolumeStore())
    assert e.filter(_disk(**mine)) == {
        "n1": "VolumeRestrictions: node(s) had no available disk" if conflict else None, "n2": None}
