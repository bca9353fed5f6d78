"""PodSecurity's checks and levels: Kubernetes' own pass/fail pods for every level and version
(``tests/unit/data/podsecurity_fixtures.json``, from pod-security-admission's testdata), and the
wording of each check's reason and detail (the expectations of its ``policy/check_*_test.go``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kybernetes.api.defaults import default_pod_spec
from kybernetes.apiserver.admission.podsecurity import checks_baseline as b
from kybernetes.apiserver.admission.podsecurity import checks_restricted as r
from kybernetes.apiserver.admission.podsecurity.evaluator import MAX_VERSION, checks_for, evaluate
from kybernetes.apiserver.admission.podsecurity.levels import (
    BASELINE,
    LATEST,
    PRIVILEGED,
    RESTRICTED,
    LevelVersion,
    Policy,
    parse_version,
    policy_to_evaluate,
    v1,
)

FIXTURES = json.loads((Path(__file__).parent / "data" / "podsecurity_fixtures.json").read_text())


@pytest.mark.parametrize("level_version", sorted(FIXTURES["cases"]))
def test_kubernetes_fixtures(level_version: str) -> None:
    """Every pass pod is allowed and every fail pod refused at its level and version (the pods
    defaulted first, as the API server has them by then: a volume without a source is emptyDir)."""
    level, version_text = level_version.split(":")
    version, err = parse_version(version_text)
    assert err is None
    wrong = []
    for expected in ("pass", "fail"):
        for i in FIXTURES["cases"][level_version].get(expected, ()):
            pod: dict[str, Any] = json.loads(json.dumps(FIXTURES["pods"][i]))
            default_pod_spec(pod["spec"], pod=True)
            result = evaluate(LevelVersion(level, version), pod["metadata"], pod["spec"])
            if result.allowed != (expected == "pass"):
                wrong.append((expected, pod["metadata"]["name"], result.forbidden_detail()))
    assert wrong == []


def _c(name: str, **sc: Any) -> dict[str, Any]:
    return {"name": name, "image": "i", **({"securityContext": sc} if sc else {})}


def _spec(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"containers": list(containers), **fields}


WORDING: list[tuple[Any, dict[str, Any], dict[str, Any], str, str]] = [
    (b.host_namespaces_1_0, {}, _spec(_c("a"), hostNetwork=True, hostPID=True, hostIPC=True),
     "host namespaces", "hostNetwork=true, hostPID=true, hostIPC=true"),
    (b.privileged_1_0, {}, _spec(_c("a", privileged=False), _c("d", privileged=True), _c("e", privileged=True)),
     "privileged", 'containers "d", "e" must not set securityContext.privileged=true'),
    (b.capabilities_baseline_1_0, {}, _spec(_c("a", capabilities={"add": ["FOO", "BAR", "CHOWN"]}),
                                            _c("b", capabilities={"add": ["BAZ", "FOO"]})),
     "non-default capabilities", 'containers "a", "b" must not include "BAR", "BAZ", "FOO" in '
                                 "securityContext.capabilities.add"),
    (b.host_path_volumes_1_0, {}, {"volumes": [{"name": "a", "hostPath": {}}, {"name": "b", "hostPath": {}},
                                              {"name": "c", "emptyDir": {}}]},
     "hostPath volumes", 'volumes "a", "b"'),
    (b.host_ports_1_0, {}, _spec({"name": "a", "ports": [{"containerPort": 1}]},
                                 {"name": "b", "ports": [{"hostPort": 20}]}),
     "hostPort", 'container "b" uses hostPort 20'),
    (b.host_ports_1_0, {}, _spec({"name": "b", "ports": [{"hostPort": 20}, {"hostPort": 10}]},
                                 {"name": "c", "ports": [{"hostPort": 30}]}),
     "hostPort", 'containers "b", "c" use hostPorts 10, 20, 30'),
    (b.app_armor_profile_1_0, {}, {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": []},
     "forbidden AppArmor profile", 'pod must not set AppArmor profile type to "Unconfined"'),
    (b.app_armor_profile_1_0, {"annotations": {"container.apparmor.security.beta.kubernetes.io/a": "unconfined",
                                               "container.apparmor.security.beta.kubernetes.io/b": "runtime/default"}},
     _spec(_c("a"), _c("b")), "forbidden AppArmor profile",
     'annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/a='
     '"unconfined""'),
    (b.se_linux_options_1_0, {}, {"securityContext": {"seLinuxOptions": {"type": "foo", "user": "u", "role": "r"}},
                                  "containers": [_c("e", seLinuxOptions={"type": "bar"}),
                                                 _c("f", seLinuxOptions={"user": "x"}),
                                                 _c("g", seLinuxOptions={"role": "x"})]},
     "seLinuxOptions", 'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: types '
                       '"bar", "foo"; user may not be set; role may not be set'),
    (b.proc_mount_1_0, {}, _spec(_c("a", procMount="Default"), _c("d", procMount="Unmasked"),
                                 _c("e", procMount="other")),
     "procMount", 'containers "d", "e" must not set securityContext.procMount to "Unmasked", "other"'),
    (b.seccomp_profile_baseline_1_0, {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
                                                      "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
                                                      "container.seccomp.security.alpha.kubernetes.io/b": "unknown"}},
     _spec(_c("a"), _c("b")), "seccompProfile",
     'forbidden annotations container.seccomp.security.alpha.kubernetes.io/a="unconfined", '
     'container.seccomp.security.alpha.kubernetes.io/b="unknown", seccomp.security.alpha.kubernetes.io/pod='
     '"unconfined"'),
    (b.seccomp_profile_baseline_1_19, {}, {"securityContext": {"seccompProfile": {"type": "Unconfined"}},
                                           "containers": [_c("c", seccompProfile={"type": "Unconfined"}),
                                                          _c("d", seccompProfile={"type": "Unconfined"})]},
     "seccompProfile", 'pod and containers "c", "d" must not set securityContext.seccompProfile.type to '
                       '"Unconfined"'),
    (b.sysctls_1_0, {}, {"securityContext": {"sysctls": [{"name": "a"}, {"name": "kernel.shm_rmid_forced"},
                                                         {"name": "b"}]}},
     "forbidden sysctls", "a, b"),
    (b.sysctls_1_29, {}, {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem"}]}},
     "forbidden sysctls", "net.ipv4.tcp_rmem"),
    (b.host_process_1_0, {}, {"securityContext": {"windowsOptions": {"hostProcess": True}},
                              "containers": [_c("e", windowsOptions={"hostProcess": True}),
                                             _c("f", windowsOptions={"hostProcess": True})]},
     "hostProcess", 'pod and containers "e", "f" must not set securityContext.windowsOptions.hostProcess=true'),
    (r.allow_privilege_escalation_1_8, {}, _spec(_c("a"), _c("b", allowPrivilegeEscalation=True),
                                                 _c("c", allowPrivilegeEscalation=False)),
     "allowPrivilegeEscalation != false", 'containers "a", "b" must set securityContext.allowPrivilegeEscalation=false'),
    (r.capabilities_restricted_1_22, {}, _spec(_c("a", capabilities={"add": ["FOO", "BAR"]}),
                                               _c("b", capabilities={"add": ["BAZ", "CHOWN"]}),
                                               _c("c", capabilities={"add": ["NET_BIND_SERVICE", "FOO"],
                                                                     "drop": ["ALL"]})),
     "unrestricted capabilities", 'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; '
                                  'containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in '
                                  "securityContext.capabilities.add"),
    (r.restricted_volumes_1_0, {}, {"volumes": [{"name": "a", "nfs": {}}, {"name": "b", "emptyDir": {}},
                                                {"name": "c", "hostPath": {}}, {"name": "d", "image": {}}]},
     "restricted volume types", 'volumes "a", "c", "d" use restricted volume types "hostPath", "nfs", "unknown"'),
    (r.run_as_non_root_1_0, {}, _spec(_c("a"), _c("b", runAsNonRoot=True)),
     "runAsNonRoot != true", 'pod or container "a" must set securityContext.runAsNonRoot=true'),
    (r.run_as_non_root_1_0, {}, {"securityContext": {"runAsNonRoot": False},
                                 "containers": [_c("c", runAsNonRoot=False), _c("d", runAsNonRoot=False)]},
     "runAsNonRoot != true", 'pod and containers "c", "d" must not set securityContext.runAsNonRoot=false'),
    (r.run_as_user_1_23, {}, {"securityContext": {"runAsUser": 0},
                              "containers": [_c("a", runAsUser=1), _c("c", runAsUser=0), _c("d", runAsUser=0)]},
     "runAsUser=0", 'pod and containers "c", "d" must not set runAsUser=0'),
    (r.seccomp_profile_restricted_1_19, {}, _spec(_c("a"), _c("b", seccompProfile={"type": "Localhost"})),
     "seccompProfile", 'pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
                       '"Localhost"'),
]


@pytest.mark.parametrize(("check", "meta", "spec", "reason", "detail"), WORDING,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(WORDING)])
def test_check_wording(check: Any, meta: dict[str, Any], spec: dict[str, Any], reason: str, detail: str) -> None:
    result = check(meta, spec)
    assert (result.allowed, result.forbidden_reason, result.forbidden_detail) == (False, reason, detail)


def test_windows_pods_skip_linux_only_restricted_checks_from_1_25() -> None:
    spec = _spec(_c("a"), os={"name": "windows"}, securityContext={"runAsNonRoot": True})
    assert evaluate(LevelVersion(RESTRICTED, v1(25)), {}, spec).allowed
    assert evaluate(LevelVersion(RESTRICTED, v1(24)), {}, spec).reasons == [
        "allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"]


def test_checks_by_level_and_version() -> None:
    """Baseline first, then restricted, each by ID; overridden baseline checks dropped; a version
    newer than every check, and latest, run as the newest; privileged runs nothing."""
    assert v1(32) == MAX_VERSION
    assert checks_for(PRIVILEGED, LATEST) == ()
    assert checks_for(RESTRICTED, LATEST) == checks_for(RESTRICTED, v1(40)) == (
        b.app_armor_profile_1_0, b.host_namespaces_1_0, b.host_ports_1_0, b.privileged_1_0, b.proc_mount_1_0,
        b.se_linux_options_1_31, b.sysctls_1_32, b.host_process_1_0, r.allow_privilege_escalation_1_25,
        r.capabilities_restricted_1_25, r.restricted_volumes_1_0, r.run_as_non_root_1_0, r.run_as_user_1_23,
        r.seccomp_profile_restricted_1_25)
    assert checks_for(RESTRICTED, v1(0)) == (
        b.app_armor_profile_1_0, b.capabilities_baseline_1_0, b.host_namespaces_1_0, b.host_ports_1_0,
        b.privileged_1_0, b.proc_mount_1_0, b.se_linux_options_1_0, b.seccomp_profile_baseline_1_0, b.sysctls_1_0,
        b.host_process_1_0, r.restricted_volumes_1_0, r.run_as_non_root_1_0)
    assert b.sysctls_1_27 in checks_for(BASELINE, v1(28))
    assert r.run_as_user_1_23 not in checks_for(RESTRICTED, v1(22))


def _lv(text: str) -> LevelVersion:
    level, version = text.split(":")
    return LevelVersion(level, parse_version(version)[0])


@pytest.mark.parametrize(("labels", "policy", "errors"), [
    ({}, ("privileged:latest", "privileged:latest", "privileged:latest"), []),
    ({"pod-security.kubernetes.io/enforce": "restricted"},
     ("restricted:latest", "privileged:latest", "restricted:latest"), []),
    ({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30",
      "pod-security.kubernetes.io/warn-version": "v1.25"},
     ("baseline:v1.30", "privileged:latest", "baseline:v1.25"), []),
    ({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "privileged"},
     ("baseline:latest", "privileged:latest", "privileged:latest"), []),
    ({"pod-security.kubernetes.io/enforce": "bogus", "pod-security.kubernetes.io/audit": "bogus",
      "pod-security.kubernetes.io/warn-version": "v2.1"},
     ("restricted:latest", "privileged:latest", "privileged:latest"),
     ['metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": must be one of privileged, '
      "baseline, restricted",
      'metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "bogus": must be one of privileged, '
      "baseline, restricted",
      'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "v2.1": must be "latest" or "v1.x"']),
    ({"pod-security.kubernetes.io/enforce-version": "v1.01"},
     ("privileged:latest", "privileged:latest", "privileged:latest"),
     ['metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "v1.01": must be "latest" or '
      '"v1.x"']),
])
def test_policy_from_labels(labels: dict[str, str], policy: tuple[str, str, str], errors: list[str]) -> None:
    got, errs = policy_to_evaluate(labels)
    assert got == Policy(*(_lv(t) for t in policy))
    assert [str(e) for e in errs] == errors
