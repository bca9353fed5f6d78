"""apps/v1 and batch/v1 strategies: defaults as a real cluster returns them, and the main 422 causes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kybernetes.apiserver.registry import apps, batch
from kybernetes.apiserver.registry.strategy import Strategy

UID = "6f1c2a9e-0000-4000-8000-000000000001"


def create(strategy: Strategy, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What the generic store does on create, minus storage: uid, prepare, default, validate."""
    obj = copy.deepcopy(obj)
    obj.setdefault("metadata", {})["uid"] = UID
    strategy.prepare_for_create(obj)
    strategy.default(obj)
    return obj, [str(e) for e in strategy.validate(obj)]


def update(strategy: Strategy, old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    new = copy.deepcopy(new)
    strategy.prepare_for_update(new, old)
    strategy.default(new)
    return new, [str(e) for e in strategy.validate_update(new, old)]


def container(name: str = "nginx") -> dict[str, Any]:
    return {"name": name, "image": "nginx"}


def deployment(**spec: Any) -> dict[str, Any]:
    """What ``kubectl create deployment nginx --image=nginx`` sends."""
    base: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [container()]}},
    }
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}}, "spec": base}


DEPLOY = apps.STRATEGIES[("apps", "Deployment")]
RS = apps.STRATEGIES[("apps", "ReplicaSet")]
STS = apps.STRATEGIES[("apps", "StatefulSet")]
DS = apps.STRATEGIES[("apps", "DaemonSet")]
CR = apps.STRATEGIES[("apps", "ControllerRevision")]
JOB = batch.STRATEGIES[("batch", "Job")]
CRON = batch.STRATEGIES[("batch", "CronJob")]


# --- Deployment --------------------------------------------------------------------------------


def test_deployment_defaults_match_a_real_cluster() -> None:
    obj, errs = create(DEPLOY, deployment())
    assert errs == []
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["dnsPolicy"] == "ClusterFirst"
    assert pod["schedulerName"] == "default-scheduler"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert obj["status"] == {}
    assert DEPLOY.has_status and DEPLOY.tracks_generation


def test_deployment_replicas_default_when_absent() -> None:
    d = deployment()
    del d["spec"]["replicas"]
    obj, _ = create(DEPLOY, d)
    assert obj["spec"]["replicas"] == 1


def test_deployment_selector_must_match_template() -> None:
    _, errs = create(DEPLOY, deployment(selector={"matchLabels": {"app": "other"}}))
    assert errs == ["spec.template.metadata.labels: Invalid value: {...}: `selector` does not match template `labels`"]


def test_deployment_missing_selector_is_required_and_mismatched() -> None:
    d = deployment()
    del d["spec"]["selector"]
    _, errs = create(DEPLOY, d)
    assert "spec.selector: Required value" in errs
    assert any(e.startswith("spec.template.metadata.labels: Invalid value") for e in errs)


def test_deployment_empty_selector() -> None:
    _, errs = create(DEPLOY, deployment(selector={}))
    assert errs == ["spec.selector: Invalid value: {...}: empty selector is invalid for deployment"]


def test_deployment_selector_is_immutable() -> None:
    old, _ = create(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "nginx", "tier": "web"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    _, errs = update(DEPLOY, old, new)
    assert errs == ["spec.selector: Invalid value: {...}: field is immutable"]


def test_deployment_negative_replicas_and_restart_policy() -> None:
    d = deployment(replicas=-1)
    d["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    _, errs = create(DEPLOY, d)
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in errs
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"' in errs


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
         "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
         'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0'),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "20Percent", "maxUnavailable": 1}},
         'spec.strategy.rollingUpdate.maxSurge: Invalid value: "20Percent": a valid percent string must be a numeric '
         "string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "150%"}},
         'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater than 100%'),
        ({"type": "BlueGreen"},
         'spec.strategy.type: Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"'),
    ],
)
def test_deployment_bad_strategy(strategy: dict[str, Any], expected: str) -> None:
    _, errs = create(DEPLOY, deployment(strategy=strategy))
    assert errs == [expected]


def test_deployment_recreate_gets_no_rolling_update_defaults() -> None:
    obj, errs = create(DEPLOY, deployment(strategy={"type": "Recreate"}))
    assert errs == []
    assert obj["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_progress_deadline_must_exceed_min_ready() -> None:
    _, errs = create(DEPLOY, deployment(minReadySeconds=700))
    assert errs == ["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]


def test_deployment_annotation_change_is_a_new_generation() -> None:
    old, _ = create(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {"note": "x"}
    new, errs = update(DEPLOY, old, new)
    assert errs == []
    assert DEPLOY.generation_changed(new, old)
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"other": "x"}
    assert not DEPLOY.generation_changed(relabelled, old)


def test_deployment_update_keeps_status_and_status_counters_checked() -> None:
    old, _ = create(DEPLOY, deployment())
    old["status"] = {"replicas": 1}
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 99}
    new, _ = update(DEPLOY, old, new)
    assert new["status"] == {"replicas": 1}
    bad = copy.deepcopy(old)
    bad["status"] = {"replicas": 1, "availableReplicas": 2, "readyReplicas": 2}
    errs = [str(e) for e in DEPLOY.validate_status_update(bad, old)]
    assert "status.availableReplicas: Invalid value: 2: cannot be greater than status.replicas" in errs


# --- ReplicaSet, StatefulSet, DaemonSet, ControllerRevision ------------------------------------


def test_replicaset_defaults_and_empty_selector_message() -> None:
    d = deployment()
    d["kind"] = "ReplicaSet"
    del d["spec"]["replicas"]
    obj, errs = create(RS, d)
    assert errs == []
    assert obj["spec"]["replicas"] == 1
    assert obj["status"] == {"replicas": 0}
    d["spec"]["selector"] = {}
    _, errs = create(RS, d)
    # Kubernetes' own wording, "deployment" included.
    assert errs == ["spec.selector: Invalid value: {...}: empty selector is invalid for deployment"]


def statefulset(**spec: Any) -> dict[str, Any]:
    d = deployment(**spec)
    d["kind"] = "StatefulSet"
    d["spec"]["serviceName"] = "nginx"
    return d


def test_statefulset_defaults() -> None:
    s = statefulset(volumeClaimTemplates=[{
        "metadata": {"name": "www"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }])
    obj, errs = create(STS, s)
    assert errs == []
    spec = obj["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    claim = spec["volumeClaimTemplates"][0]
    assert claim["apiVersion"] == "v1" and claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}
    assert obj["status"] == {"availableReplicas": 0, "replicas": 0}


def test_statefulset_containers_mount_the_claim_templates() -> None:
    """Kubernetes validates no volume of a StatefulSet's template: a mount may name a claim template
    (the controller adds the volume to each pod). A mount naming nothing is still refused."""
    s = statefulset(volumeClaimTemplates=[{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }])
    s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    obj, errs = create(STS, s)
    assert errs == []
    assert "volumes" not in obj["spec"]["template"]["spec"]  # nothing added to the stored template
    s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"].append({"name": "nothing", "mountPath": "/x"})
    assert create(STS, s)[1] == [
        'spec.template.spec.containers[0].volumeMounts[1].name: Not found: "nothing"']


def test_statefulset_service_name_is_optional() -> None:
    s = statefulset()
    del s["spec"]["serviceName"]
    assert create(STS, s)[1] == []


def test_statefulset_forbidden_spec_update() -> None:
    old, _ = create(STS, statefulset())
    new = copy.deepcopy(old)
    new["spec"]["serviceName"] = "other"
    new["spec"]["replicas"] = 5  # allowed on its own
    _, errs = update(STS, old, new)
    assert errs == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
        "are forbidden"
    ]
    ok = copy.deepcopy(old)
    ok["spec"]["replicas"] = 3
    ok["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert update(STS, old, ok)[1] == []


def test_statefulset_bad_claim_template_and_policy() -> None:
    s = statefulset(podManagementPolicy="Random", volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}])
    _, errs = create(STS, s)
    assert "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'" in errs
    assert "spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required" in errs
    assert "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value" in errs


def test_daemonset_defaults_and_template_generation() -> None:
    d = deployment()
    d["kind"] = "DaemonSet"
    del d["spec"]["replicas"]
    obj, errs = create(DS, d)
    assert errs == []
    assert obj["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert obj["spec"]["revisionHistoryLimit"] == 10
    assert obj["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    new = copy.deepcopy(obj)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    new, errs = update(DS, obj, new)
    assert errs == []
    assert new["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    moved = copy.deepcopy(obj)
    moved["spec"]["selector"] = {"matchLabels": {"app": "nginx", "x": "y"}}
    moved["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert update(DS, obj, moved)[1] == ["spec.selector: Invalid value: {...}: field is immutable"]


def test_daemonset_rolling_update_needs_exactly_one_nonzero() -> None:
    d = deployment()
    d["spec"].pop("replicas")
    d["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}
    _, errs = create(DS, d)
    assert errs == ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]


def test_controller_revision() -> None:
    assert CR.tracks_generation is False
    _, errs = create(CR, {"metadata": {"name": "r"}, "revision": -1})
    assert errs == ["data: Required value: data is mandatory",
                    "revision: Invalid value: -1: must be greater than or equal to 0"]
    old, _ = create(CR, {"metadata": {"name": "r"}, "revision": 1, "data": {"a": 1}})
    new = copy.deepcopy(old)
    new["data"] = {"a": 2}
    assert update(CR, old, new)[1] == ["data: Invalid value: {...}: field is immutable"]


# --- Job ---------------------------------------------------------------------------------------


def job(**spec: Any) -> dict[str, Any]:
    """What ``kubectl create job pi --image=perl`` sends."""
    base: dict[str, Any] = {"template": {"metadata": {}, "spec": {"containers": [container("pi")],
                                                                   "restartPolicy": "Never"}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"}, "spec": base}


def test_job_defaults_and_generated_selector() -> None:
    obj, errs = create(JOB, job())
    assert errs == []
    spec = obj["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["manualSelector"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    expected = {"batch.kubernetes.io/controller-uid": UID, "batch.kubernetes.io/job-name": "pi",
                "controller-uid": UID, "job-name": "pi"}
    assert spec["template"]["metadata"]["labels"] == expected
    assert obj["metadata"]["labels"] == expected  # copied from the template by SetDefaults_Job
    assert obj["status"] == {}


def test_job_completions_only_defaults_parallelism() -> None:
    obj, _ = create(JOB, job(completions=5))
    assert (obj["spec"]["completions"], obj["spec"]["parallelism"]) == (5, 1)
    obj, _ = create(JOB, job(parallelism=3))
    assert "completions" not in obj["spec"]


def test_job_restart_policy_always_rejected() -> None:
    j = job()
    j["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    _, errs = create(JOB, j)
    assert errs == ['spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']
    del j["spec"]["template"]["spec"]["restartPolicy"]  # defaulted to Always: same error
    assert create(JOB, j)[1] == errs


def test_job_manual_selector() -> None:
    j = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    j["spec"]["template"]["metadata"]["labels"] = {"app": "pi"}
    obj, errs = create(JOB, j)
    assert errs == []
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "pi"}}
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app": "pi"}
    j["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert create(JOB, j)[1] == [
        "spec.template.metadata.labels: Invalid value: {...}: `selector` does not match template `labels`"]


def test_job_user_selector_without_manual_is_rejected() -> None:
    _, errs = create(JOB, job(selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "wrong"}}))
    assert "spec.selector: Invalid value: {...}: `selector` not auto-generated" in errs


def test_job_indexed_requires_completions() -> None:
    _, errs = create(JOB, job(completionMode="Indexed", parallelism=2))
    assert errs == ["spec.completions: Required value: when completion mode is Indexed"]


def test_job_update_immutability() -> None:
    old, _ = create(JOB, job())
    new = copy.deepcopy(old)
    new["spec"]["completions"] = 3
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:2"
    _, errs = update(JOB, old, new)
    assert "spec.completions: Invalid value: 3: field is immutable" in errs
    assert "spec.template: Invalid value: {...}: field is immutable" in errs
    ok = copy.deepcopy(old)
    ok["spec"]["parallelism"] = 4  # parallelism may change
    assert update(JOB, old, ok)[1] == []


def test_suspended_job_may_change_scheduling_directives() -> None:
    old, _ = create(JOB, job(suspend=True))
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert update(JOB, old, new)[1] == []
    running, _ = create(JOB, job())
    moved = copy.deepcopy(running)
    moved["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert update(JOB, running, moved)[1] == ["spec.template: Invalid value: {...}: field is immutable"]


def test_job_elastic_indexed_completions() -> None:
    old, _ = create(JOB, job(completionMode="Indexed", completions=4, parallelism=4))
    new = copy.deepcopy(old)
    new["spec"]["completions"] = 6
    assert update(JOB, old, new)[1] == [
        "spec.completions: Invalid value: 6: can only be modified in tandem with spec.parallelism"]
    new["spec"]["parallelism"] = 6
    assert update(JOB, old, new)[1] == []


def test_job_pod_failure_policy_shape() -> None:
    j = job(podFailurePolicy={"rules": [{"action": "Explode", "onExitCodes": {"operator": "In", "values": [0]}},
                                        {"action": "Ignore"}]})
    obj, errs = create(JOB, j)
    assert obj["spec"]["podReplacementPolicy"] == "Failed"
    assert ('spec.podFailurePolicy.rules[0].action: Unsupported value: "Explode": supported values: '
            '"Count", "FailIndex", "FailJob", "Ignore"') in errs
    assert "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator" in errs
    assert ("spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and OnPodConditions "
            "is required") in errs


# --- CronJob -----------------------------------------------------------------------------------


def cronjob(schedule: str = "*/5 * * * *", name: str = "hello", **spec: Any) -> dict[str, Any]:
    template = {"spec": {"template": {"spec": {"containers": [container("hello")], "restartPolicy": "OnFailure"}}}}
    body: dict[str, Any] = {"schedule": schedule, "jobTemplate": template}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": "default"},
            "spec": body}


def test_cronjob_defaults() -> None:
    obj, errs = create(CRON, cronjob())
    assert errs == []
    spec = obj["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    job_spec = spec["jobTemplate"]["spec"]
    assert "backoffLimit" not in job_spec  # only the pod template inside is defaulted
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


@pytest.mark.parametrize("schedule", ["0 * * * *", "*/15 9-17 * * mon-fri", "@hourly", "@every 1h30m",
                                      "0 0 1 jan,jul ?", "5 4 * * SUN", "0-30/10 0 1-31/2 * *"])
def test_good_cron_schedules(schedule: str) -> None:
    assert create(CRON, cronjob(schedule))[1] == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
    ],
)
def test_bad_cron_schedules(schedule: str, message: str) -> None:
    _, errs = create(CRON, cronjob(schedule))
    assert errs == [f'spec.schedule: Invalid value: "{schedule}": {message}']


def test_tz_in_schedule_is_forbidden() -> None:
    _, errs = create(CRON, cronjob("CRON_TZ=UTC 0 * * * *"))
    assert errs == ['spec.schedule: Invalid value: "CRON_TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, '
                    "use timeZone field instead"]


def test_time_zone() -> None:
    assert create(CRON, cronjob(timeZone="Europe/Berlin"))[1] == []
    assert create(CRON, cronjob(timeZone="Mars/Olympus"))[1] == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']
    assert create(CRON, cronjob(timeZone="Local"))[1] == [
        'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in '
        "https://www.iana.org/time-zones"]
    assert create(CRON, cronjob(timeZone=""))[1] == [
        'spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string']


def test_cronjob_name_limit_and_job_template_rules() -> None:
    long_name = "a" * 53
    _, errs = create(CRON, cronjob(name=long_name))
    assert errs == [f'metadata.name: Invalid value: "{long_name}": must be no more than 52 characters']
    c = cronjob()
    c["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    _, errs = create(CRON, c)
    assert "spec.jobTemplate.spec.selector: Invalid value: {...}: `selector` will be auto-generated" in errs
    assert ('spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
            in errs)
    # Updates skip the name-length check so old long-named CronJobs stay editable.
    old, _ = create(CRON, cronjob(name=long_name))
    assert update(CRON, old, copy.deepcopy(old))[1] == []


def test_bad_concurrency_policy() -> None:
    _, errs = create(CRON, cronjob(concurrencyPolicy="Sometimes"))
    assert errs == ['spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: '
                    '"Allow", "Forbid", "Replace"']


def test_parse_cron_sets() -> None:
    parsed = batch.parse_cron("*/20 1,2 * jan-mar sat")
    assert isinstance(parsed, list)
    minutes, hours, days, months, weekdays = parsed
    assert minutes == {0, 20, 40} and hours == {1, 2} and months == {1, 2, 3} and weekdays == {6}
    assert len(days) == 31
