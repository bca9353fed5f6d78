"""Pod defaulting and validation, checked against what a real Kubernetes 1.32 API server does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kybernetes.api.podutil import pod_qos_class
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.admission.defaulttolerationseconds import add_default_tolerations
from kybernetes.apiserver.registry.core import (
    POD_FIELD_SELECTORS,
    STRATEGIES,
    default_pod_spec,
    default_pod_template,
    validate_pod_spec,
    validate_pod_template,
)

POD = STRATEGIES[("", "Pod")]


def create(obj: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """The create path of the generic store, minus storage: prepare, default, the
    DefaultTolerationSeconds admission plugin's change, validate."""
    obj = copy.deepcopy(obj)
    POD.prepare_for_create(obj)
    POD.default(obj)
    add_default_tolerations(obj["spec"])
    return obj, POD.validate(obj)


def update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """The update path: prepare, default, DefaultTolerationSeconds (it handles updates), validate."""
    new = copy.deepcopy(new)
    POD.prepare_for_update(new, old)
    POD.default(new)
    add_default_tolerations(new["spec"])
    return POD.validate_update(new, old)


def pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "nginx", "image": "nginx"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx", "namespace": "default"}, "spec": base}


def fields(errs: list[FieldError]) -> list[str]:
    return [e.field for e in errs]


def test_kubectl_run_nginx_is_defaulted_like_a_real_server() -> None:
    obj, errs = create(
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "nginx", "namespace": "default", "labels": {"run": "nginx"}},
         "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}],
                  "dnsPolicy": "ClusterFirst", "restartPolicy": "Always"},
         "status": {}}
    )
    assert errs == []
    assert obj["spec"] == {
        "containers": [{
            "name": "nginx",
            "image": "nginx",
            "imagePullPolicy": "Always",
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists",
             "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "tolerationSeconds": 300},
        ],
    }
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_nested_defaults() -> None:
    spec: dict[str, Any] = {
        "serviceAccount": "builder",
        "containers": [{
            "name": "app", "image": "registry.local:5000/app:1.2",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
        }],
        "volumes": [{"name": "a", "configMap": {"name": "cm"}}, {"name": "b", "secret": {"secretName": "s"}},
                    {"name": "c"}],
    }
    default_pod_spec(spec)
    ctr = spec["containers"][0]
    assert ctr["imagePullPolicy"] == "IfNotPresent"
    assert ctr["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert ctr["env"][0]["valueFrom"]["fieldRef"] == {"apiVersion": "v1", "fieldPath": "spec.nodeName"}
    assert ctr["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"] == "0"
    assert ctr["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                    "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert ctr["readinessProbe"]["periodSeconds"] == 5
    assert spec["volumes"] == [
        {"name": "a", "configMap": {"name": "cm", "defaultMode": 420}},
        {"name": "b", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "c", "emptyDir": {}},
    ]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "builder"
    # Pod-only defaults stay out of templates, as on a real cluster.
    assert "enableServiceLinks" not in spec


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
    ("localhost:5000/nginx", "Always"), ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": image}]}
    default_pod_spec(spec)
    assert spec["containers"][0]["imagePullPolicy"] == policy


def test_limits_copied_to_requests_for_pods_only() -> None:
    res = {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}}
    obj, errs = create(pod(containers=[{"name": "c", "image": "x", "resources": copy.deepcopy(res)}]))
    assert errs == []
    assert obj["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert obj["status"]["qosClass"] == "Burstable"
    template: dict[str, Any] = {"spec": {"containers": [{"name": "c", "image": "x", "resources": copy.deepcopy(res)}]}}
    default_pod_template(template)
    assert template["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m"}
    assert "restartPolicy" in template["spec"] and "enableServiceLinks" not in template["spec"]


@pytest.mark.parametrize(("resources", "qos"), [
    ([{}], "BestEffort"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1"}}], "Burstable"),
    ([{"requests": {"memory": "10Mi"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Burstable"),
    ([{"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "1"}}], "BestEffort"),
])
def test_qos_class(resources: list[dict[str, Any]], qos: str) -> None:
    containers = [{"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)]
    obj, errs = create(pod(containers=containers))
    assert errs == []
    assert obj["status"]["qosClass"] == qos


def test_qos_of_raw_spec_without_defaults() -> None:
    assert pod_qos_class({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                        "requests": {"cpu": "1", "memory": "1Gi"}}}]}) == "Guaranteed"


def test_default_tolerations_added_once() -> None:
    obj, _ = create(pod())
    tolerations = obj["spec"]["tolerations"]
    assert len(tolerations) == 2
    add_default_tolerations(obj["spec"])  # a second pass (an update) adds nothing
    assert obj["spec"]["tolerations"] == tolerations


def test_default_tolerations_respect_existing_ones() -> None:
    own = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
    obj, _ = create(pod(tolerations=[own]))
    keys = [t["key"] for t in obj["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    assert obj["spec"]["tolerations"][0]["tolerationSeconds"] == 5
    obj, _ = create(pod(tolerations=[{"operator": "Exists"}]))
    assert obj["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_status_set_on_create_whatever_the_client_sent() -> None:
    raw = pod()
    raw["status"] = {"phase": "Running", "podIP": "10.0.0.1"}
    obj, _ = create(raw)
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


# --- validation -----------------------------------------------------------------------------


def test_image_required() -> None:
    _, errs = create(pod(containers=[{"name": "nginx"}]))
    assert fields(errs) == ["spec.containers[0].image"]
    assert errs[0].message() == "Required value"


def test_containers_required() -> None:
    _, errs = create(pod(containers=[]))
    assert fields(errs) == ["spec.containers"]


def test_bad_container_name() -> None:
    _, errs = create(pod(containers=[{"name": "Nginx_1", "image": "nginx"}]))
    assert fields(errs) == ["spec.containers[0].name"]
    assert errs[0].type == "FieldValueInvalid"
    assert str(errs[0]).startswith('spec.containers[0].name: Invalid value: "Nginx_1": a lowercase RFC 1123 label')


def test_duplicate_container_names_across_init_and_app_containers() -> None:
    _, errs = create(pod(initContainers=[{"name": "nginx", "image": "busybox"}]))
    assert [str(e) for e in errs] == ['spec.containers[0].name: Duplicate value: "nginx"']


@pytest.mark.parametrize(("port", "field", "kind"), [
    ({"containerPort": 0}, "spec.containers[0].ports[0].containerPort", "FieldValueRequired"),
    ({"containerPort": 70000}, "spec.containers[0].ports[0].containerPort", "FieldValueInvalid"),
    ({"containerPort": 80, "protocol": "HTTP"}, "spec.containers[0].ports[0].protocol", "FieldValueNotSupported"),
    ({"containerPort": 80, "name": "a-very-long-port-name"}, "spec.containers[0].ports[0].name", "FieldValueInvalid"),
    ({"containerPort": 80, "name": "8080"}, "spec.containers[0].ports[0].name", "FieldValueInvalid"),
])
def test_bad_port(port: dict[str, Any], field: str, kind: str) -> None:
    _, errs = create(pod(containers=[{"name": "c", "image": "x", "ports": [port]}]))
    assert [(e.field, e.type) for e in errs] == [(field, kind)]


def test_duplicate_port_names() -> None:
    ports = [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]
    _, errs = create(pod(containers=[{"name": "c", "image": "x", "ports": ports}]))
    assert [str(e) for e in errs] == ['spec.containers[0].ports[1].name: Duplicate value: "http"']


def test_bad_restart_policy() -> None:
    _, errs = create(pod(restartPolicy="Sometimes"))
    assert [str(e) for e in errs] == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    ]


def test_bad_dns_policy() -> None:
    _, errs = create(pod(dnsPolicy="Google"))
    assert fields(errs) == ["spec.dnsPolicy"]


def test_volume_mount_of_unknown_volume() -> None:
    ctr = {"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    _, errs = create(pod(containers=[ctr]))
    assert [str(e) for e in errs] == ['spec.containers[0].volumeMounts[0].name: Not found: "data"']


def test_volumes_unique_and_one_source() -> None:
    vols = [{"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"name": "a", "emptyDir": {}},
            {"name": "B", "emptyDir": {}}]
    _, errs = create(pod(volumes=vols))
    assert fields(errs) == ["spec.volumes[0].emptyDir", "spec.volumes[1].name", "spec.volumes[2].name"]


def test_requests_above_limits() -> None:
    res = {"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}}
    _, errs = create(pod(containers=[{"name": "c", "image": "x", "resources": res}]))
    assert [str(e) for e in errs] == [
        'spec.containers[0].resources.requests: Invalid value: "1500m": must be less than or equal to cpu limit of 1'
    ]


def test_invalid_quantity() -> None:
    res = {"limits": {"memory": "lots"}}
    _, errs = create(pod(containers=[{"name": "c", "image": "x", "resources": res}]))
    assert "spec.containers[0].resources.limits[memory]" in fields(errs)


def test_env_rules() -> None:
    env = [
        {"name": "1BAD=", "value": "x"},
        {"name": "A", "valueFrom": {}},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"},
                                    "secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "C", "value": "x", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
    ]
    _, errs = create(pod(containers=[{"name": "c", "image": "x", "env": env}]))
    assert fields(errs) == ["spec.containers[0].env[0].name", "spec.containers[0].env[1].valueFrom",
                            "spec.containers[0].env[2].valueFrom", "spec.containers[0].env[3].valueFrom"]


def test_probe_needs_exactly_one_handler() -> None:
    ctr = {"name": "c", "image": "x", "livenessProbe": {},
           "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}
    _, errs = create(pod(containers=[ctr]))
    assert [(e.field, e.type) for e in errs] == [
        ("spec.containers[0].livenessProbe", "FieldValueRequired"),
        ("spec.containers[0].readinessProbe.tcpSocket", "FieldValueForbidden"),
    ]


def test_tolerations_node_selector_and_names() -> None:
    _, errs = create(pod(
        tolerations=[{"key": "k", "operator": "Exists", "value": "v"}, {"operator": "Equal", "value": "v"},
                     {"key": "k", "effect": "Sometimes"}, {"key": "k", "tolerationSeconds": 5}],
        nodeSelector={"bad key!": "v"},
        hostname="Not_A_Label",
        terminationGracePeriodSeconds=-1,
    ))
    assert fields(errs) == [
        "spec.nodeSelector",
        "spec.tolerations[0].operator", "spec.tolerations[1].operator", "spec.tolerations[2].effect",
        "spec.tolerations[3].effect",
        "spec.hostname", "spec.terminationGracePeriodSeconds",
    ]


def test_security_context_and_affinity() -> None:
    affinity = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 0, "podAffinityTerm": {"topologyKey": "", "labelSelector": {"matchLabels": {"app": "x"}}}}]},
    }
    _, errs = create(pod(securityContext={"runAsUser": -1}, affinity=affinity))
    assert fields(errs) == [
        "spec.securityContext.runAsUser",
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
        ".matchExpressions[0].values",
        "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm"
        ".topologyKey",
    ]


def test_validate_pod_spec_and_template_paths() -> None:
    errs = validate_pod_spec({"containers": [{"name": "c"}], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
                             Path("spec", "template", "spec"))
    assert fields(errs) == ["spec.template.spec.containers[0].image"]
    template: dict[str, Any] = {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}
    default_pod_template(template)
    errs = validate_pod_template(template, Path("spec", "template"))
    assert [str(e) for e in errs] == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]
    assert validate_pod_template(template, Path("spec", "template"), restart_policies=("OnFailure", "Never")) == []


# --- updates ------------------------------------------------------------------------------------


def test_update_may_change_image() -> None:
    old, _ = create(pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.27"
    new["spec"]["activeDeadlineSeconds"] = 600
    new["spec"]["tolerations"].append({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"})
    assert update(new, old) == []


def test_update_may_not_change_other_spec_fields() -> None:
    old, _ = create(pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    errs = update(new, old)
    assert fields(errs) == ["spec"]
    assert errs[0].type == "FieldValueForbidden"
    assert errs[0].message().startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
        "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)"
    )


def test_update_may_not_remove_tolerations_or_extend_deadline() -> None:
    own = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    old, _ = create(pod(activeDeadlineSeconds=100, tolerations=[own]))
    new = copy.deepcopy(old)
    new["spec"]["tolerations"] = new["spec"]["tolerations"][1:]
    new["spec"]["activeDeadlineSeconds"] = 200
    assert fields(update(new, old)) == ["spec.activeDeadlineSeconds", "spec.tolerations"]


def test_update_keeps_status() -> None:
    old, _ = create(pod())
    old["status"] = {"phase": "Running"}
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Failed"}
    POD.prepare_for_update(new, old)
    assert new["status"] == {"phase": "Running"}


def test_status_update_validation() -> None:
    old, _ = create(pod())
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Exploded", "podIP": "nope"}
    POD.prepare_for_status_update(new, old)
    assert fields(POD.validate_status_update(new, old)) == ["status.phase", "status.podIP"]


def test_field_selectors() -> None:
    obj, _ = create(pod(nodeName="node-1", hostNetwork=True))
    assert POD.field_selectors is POD_FIELD_SELECTORS
    values = {k: f(obj) for k, f in POD_FIELD_SELECTORS.items()}
    assert values == {
        "spec.nodeName": "node-1", "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "", "spec.hostNetwork": "true", "status.phase": "Pending",
        "status.podIP": "", "status.nominatedNodeName": "",
    }


def test_host_network_pods_get_host_ports() -> None:
    obj, errs = create(pod(hostNetwork=True, containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 53}]}]))
    assert errs == []
    assert obj["spec"]["containers"][0]["ports"] == [{"containerPort": 53, "hostPort": 53, "protocol": "TCP"}]


def test_put_of_the_original_manifest_keeps_admission_defaults() -> None:
    old, _ = create(pod())
    new = pod()
    # (The new image keeps the pull policy Always, else that would be a forbidden change too.)
    new["spec"]["containers"][0]["image"] = "nginx:latest"
    assert update(new, old) == []


@pytest.mark.parametrize("spec", [
    {"containers": [{"name": "c", "image": "nginx"}]},
    {"hostNetwork": True, "serviceAccount": "sa",
     "containers": [{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}],
                     "resources": {"limits": {"cpu": "1"}},
                     "env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                             {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                     "livenessProbe": {"httpGet": {"port": 80}},
                     "lifecycle": {"preStop": {"grpc": {"port": 1}}}}],
     "initContainers": [{"name": "i", "image": "busybox@sha256:ab"}],
     "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]},
])
def test_pod_create_defaults_once(spec: dict[str, Any]) -> None:
    """A pod's create applies its defaults in prepare_for_create only (PodStrategy skips the
    second pass): that pass must find nothing left to do."""
    from kybernetes.apiserver.registry.core.pods import PodStrategy

    s = PodStrategy()
    once = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": copy.deepcopy(spec)}
    s.prepare_and_default_for_create(once)
    twice = copy.deepcopy(once)
    s.default(twice)
    assert twice == once
    assert once["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
