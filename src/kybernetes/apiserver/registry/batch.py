"""The strategies of the ``batch/v1`` kinds: Job and CronJob, and the checks of a CronJob's schedule.

A Job owns its pods through a selector the API server generates: unless ``spec.manualSelector`` is
true, :meth:`JobStrategy.prepare_for_create` writes ``batch.kubernetes.io/controller-uid: <uid>``
into the selector and four labels (the prefixed and legacy ``controller-uid`` / ``job-name``)
into the pod template. The uid exists by then because the generic store assigns it before calling
``prepare_for_create``. Defaulting runs after that, so ``SetDefaults_Job`` copying the template
labels to an unlabelled Job gives the Job those labels too, exactly as on a real cluster (where the
copy happens when the object is decoded from storage).

A CronJob's ``schedule`` is checked by :func:`kybernetes.api.cron.parse_cron` (robfig/cron's
``ParseStandard``, with its error texts, since those are what ``kubectl`` shows), which the CronJob
controller parses with too. Time zones are checked against the IANA database through
:mod:`zoneinfo`, after the same character rules Kubernetes applies first.

Job templates inside a CronJob are validated like a Job spec, minus selector generation.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.cron import CronError, parse_cron, zone_exists
from kybernetes.api.label_selectors import from_label_selector_object, validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, is_int, validate_nonneg
from kybernetes.apiserver.registry.apps import spec_of
from kybernetes.apiserver.registry.core import default_pod_template, validate_pod_template
from kybernetes.apiserver.registry.core.podvalidation import RESTART_POLICIES
from kybernetes.apiserver.registry.strategy import Obj, Strategy

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"

COMPLETION_MODES = ("NonIndexed", "Indexed")
POD_REPLACEMENT_POLICIES = ("Failed", "TerminatingOrFailed")
FAILURE_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
EXIT_CODE_OPERATORS = ("In", "NotIn")
CONDITION_STATUSES = ("False", "True", "Unknown")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
MAX_PARALLELISM_INDEXED = 100_000
MAX_FAILURE_RULES = 20
MAX_ON_POD_CONDITIONS = 20
MAX_EXIT_CODE_VALUES = 255
CRONJOB_NAME_MAX = 52  # 63 minus the 11 characters of "-<timestamp>" the controller appends


# --- Job ---------------------------------------------------------------------------------------


def generate_selector(job: Obj) -> None:
    """``generateSelector``: label the template with the Job's uid and name and select the uid.

    Labels the user already set are left alone; validation then reports them if they conflict.
    """
    meta = as_dict(job.get("metadata"))
    uid, name = str(meta.get("uid") or ""), str(meta.get("name") or "")
    spec = job.setdefault("spec", {})
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    if not isinstance(tmeta.get("labels"), dict):
        tmeta["labels"] = {}
    labels = tmeta["labels"]
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, name)
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, uid)
    if not isinstance(spec.get("selector"), dict):
        spec["selector"] = {}
    sel = spec["selector"]
    if not isinstance(sel.get("matchLabels"), dict):
        sel["matchLabels"] = {}
    sel["matchLabels"].setdefault(CONTROLLER_UID, uid)


def default_job_spec(spec: dict[str, Any]) -> None:
    """``SetDefaults_Job`` for the spec (the part that also applies nowhere else)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        # With a per-index limit the global one is effectively unlimited.
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    pfp = spec.get("podFailurePolicy")
    if isinstance(pfp, dict):
        for rule in as_list(pfp.get("rules")):
            for pattern in as_list(as_dict(rule).get("onPodConditions")):
                if isinstance(pattern, dict) and not pattern.get("status"):
                    pattern["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if isinstance(pfp, dict) else "TerminatingOrFailed"
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False


def _restart_policy_errors(spec: dict[str, Any], tpath: Path) -> list[FieldError]:
    policy = as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy")
    rp = tpath.child("spec", "restartPolicy")
    if policy in (None, "", "Always"):
        # Defaulting makes an unset policy "Always", so both mean "you forgot to choose".
        return [v.required(rp, 'valid values: "OnFailure", "Never"')]
    if policy not in ("OnFailure", "Never"):
        return [v.not_supported(rp, policy, ("OnFailure", "Never"))]
    if spec.get("podFailurePolicy") is not None and policy != "Never":
        return [v.invalid(rp, policy, 'only "Never" is supported when podFailurePolicy is specified')]
    return []


def validate_job_spec_body(spec: dict[str, Any], path: Path) -> list[FieldError]:
    """``validateJobSpec``: everything but the selector (shared with CronJob job templates)."""
    errs: list[FieldError] = []
    for f in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
              "backoffLimitPerIndex", "maxFailedIndexes"):
        errs += validate_nonneg(spec.get(f), path.child(f))
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(v.required(path.child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
    mode = spec.get("completionMode")
    if mode is not None and mode not in COMPLETION_MODES:
        errs.append(v.not_supported(path.child("completionMode"), mode, COMPLETION_MODES))
    if mode == "Indexed":
        completions, parallelism = spec.get("completions"), spec.get("parallelism")
        if completions is None:
            errs.append(v.required(path.child("completions"), "when completion mode is Indexed"))
        if is_int(parallelism) and parallelism > MAX_PARALLELISM_INDEXED:
            errs.append(v.invalid(path.child("parallelism"), parallelism,
                                  f"must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"))
        mfi = spec.get("maxFailedIndexes")
        if is_int(completions) and is_int(mfi) and mfi > completions:
            errs.append(v.invalid(path.child("maxFailedIndexes"), mfi, "must be less than or equal to completions"))
    else:
        for f in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(f) is not None:
                errs.append(v.invalid(path.child(f), spec[f], "requires indexed completion mode"))
    if spec.get("podFailurePolicy") is not None:
        errs += _validate_pod_failure_policy(spec, path.child("podFailurePolicy"))
    if spec.get("successPolicy") is not None and mode != "Indexed":
        errs.append(v.invalid(path.child("successPolicy"), spec["successPolicy"], "requires indexed completion mode"))
    prp = spec.get("podReplacementPolicy")
    if prp is not None:
        if spec.get("podFailurePolicy") is not None:
            if prp != "Failed":
                errs.append(v.not_supported(path.child("podReplacementPolicy"), prp, ("Failed",)))
        elif prp not in POD_REPLACEMENT_POLICIES:
            errs.append(v.not_supported(path.child("podReplacementPolicy"), prp, POD_REPLACEMENT_POLICIES))
    tpath = path.child("template")
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errs, v.required(tpath)]
    # The Job-specific restart rule below gives Kubernetes' own messages; let the shared
    # template check accept any valid policy so the two never both complain.
    errs += validate_pod_template(template, tpath, restart_policies=RESTART_POLICIES)
    errs += _restart_policy_errors(spec, tpath)
    return errs


def _omit_value_invalid(path: Path, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", str(path), detail=detail)


def _validate_pod_failure_policy(spec: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    rules = as_list(as_dict(spec.get("podFailurePolicy")).get("rules"))
    rules_path = path.child("rules")
    if len(rules) > MAX_FAILURE_RULES:
        errs.append(v.too_many(rules_path, len(rules), MAX_FAILURE_RULES))
    tspec = as_dict(as_dict(spec.get("template")).get("spec"))
    names = {as_dict(c).get("name") for f in ("containers", "initContainers") for c in as_list(tspec.get(f))}
    for i, rule in enumerate(rules):
        rule, rp = as_dict(rule), rules_path.index(i)
        action = rule.get("action")
        if not action:
            errs.append(v.required(rp.child("action"), "valid values: " + _go_quoted_list(FAILURE_ACTIONS)))
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errs.append(v.invalid(rp.child("action"), action, "requires the backoffLimitPerIndex to be set"))
        elif action not in FAILURE_ACTIONS:
            errs.append(v.not_supported(rp.child("action"), action, FAILURE_ACTIONS))
        on_exit = rule.get("onExitCodes")
        on_cond = as_list(rule.get("onPodConditions"))
        if on_exit is not None:
            errs += _validate_on_exit_codes(as_dict(on_exit), rp.child("onExitCodes"), names)
        if on_cond:
            cp = rp.child("onPodConditions")
            if len(on_cond) > MAX_ON_POD_CONDITIONS:
                errs.append(v.too_many(cp, len(on_cond), MAX_ON_POD_CONDITIONS))
            for j, pattern in enumerate(on_cond):
                pattern, pp = as_dict(pattern), cp.index(j)
                ctype = str(pattern.get("type") or "")
                errs += [v.invalid(pp.child("type"), ctype, m) for m in v.is_qualified_name(ctype)]
                status = pattern.get("status")
                if not status:
                    errs.append(v.required(pp.child("status"), "valid values: " + _go_quoted_list(CONDITION_STATUSES)))
                elif status not in CONDITION_STATUSES:
                    errs.append(v.not_supported(pp.child("status"), status, CONDITION_STATUSES))
        if on_exit is not None and on_cond:
            errs.append(_omit_value_invalid(rp, "specifying both OnExitCodes and OnPodConditions is not supported"))
        if on_exit is None and not on_cond:
            errs.append(_omit_value_invalid(rp, "specifying one of OnExitCodes and OnPodConditions is required"))
    return errs


def _validate_on_exit_codes(req: dict[str, Any], path: Path, names: set[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    op = req.get("operator")
    if not op:
        errs.append(v.required(path.child("operator"), "valid values: " + _go_quoted_list(EXIT_CODE_OPERATORS)))
    elif op not in EXIT_CODE_OPERATORS:
        errs.append(v.not_supported(path.child("operator"), op, EXIT_CODE_OPERATORS))
    container = req.get("containerName")
    if container is not None and container not in names:
        errs.append(v.invalid(path.child("containerName"), container,
                              "must be one of the container or initContainer names in the pod template"))
    values = as_list(req.get("values"))
    vp = path.child("values")
    if not values:
        errs.append(v.invalid(vp, values, "at least one value is required"))
    elif len(values) > MAX_EXIT_CODE_VALUES:
        errs.append(v.too_many(vp, len(values), MAX_EXIT_CODE_VALUES))
    seen: set[Any] = set()
    ordered = True
    for j, code in enumerate(values):
        if op == "In" and code == 0:
            errs.append(v.invalid(vp.index(j), code, "must not be 0 for the In operator"))
        if code in seen:
            errs.append(v.duplicate(vp.index(j), code))
        seen.add(code)
        if j > 0 and is_int(code) and is_int(values[j - 1]) and values[j - 1] > code:
            ordered = False
    if not ordered:
        errs.append(v.invalid(vp, values, "must be ordered"))
    return errs


def _go_quoted_list(values: tuple[str, ...]) -> str:
    """How Go's ``%q`` prints a []string: ``["a" "b"]``."""
    return "[" + " ".join(f'"{x}"' for x in values) + "]"


def _scheduling_mutable_view(template: Any, other: Any) -> Any:
    """``template`` with the fields a suspended, unstarted Job may change replaced by ``other``'s."""
    out = copy.deepcopy(as_dict(template))
    src = as_dict(other)
    out_meta = out.setdefault("metadata", {})
    src_meta = as_dict(src.get("metadata"))
    for f in ("labels", "annotations"):
        _copy_key(src_meta, out_meta, f)
    out_spec = out.setdefault("spec", {})
    src_spec = as_dict(src.get("spec"))
    for f in ("nodeSelector", "tolerations", "schedulingGates"):
        _copy_key(src_spec, out_spec, f)
    src_aff, out_aff = src_spec.get("affinity"), out_spec.get("affinity")
    if src_aff is None and isinstance(out_aff, dict):
        out_aff.pop("nodeAffinity", None)
        if not out_aff:
            out_spec.pop("affinity")
    elif isinstance(src_aff, dict):
        if not isinstance(out_aff, dict):
            out_aff = out_spec["affinity"] = {}
        _copy_key(src_aff, out_aff, "nodeAffinity")
    return out


def _copy_key(src: dict[str, Any], dst: dict[str, Any], key: str) -> None:
    if key in src:
        dst[key] = src[key]
    else:
        dst.pop(key, None)


class JobStrategy(Strategy):
    kind = "Job"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("manualSelector") is True:
            return
        generate_selector(obj)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        default_job_spec(spec)
        template = spec.get("template")
        if isinstance(template, dict):
            default_pod_template(template)
            labels = as_dict(template.get("metadata")).get("labels")
            meta = obj.setdefault("metadata", {})
            if isinstance(labels, dict) and not meta.get("labels"):
                meta["labels"] = dict(labels)

    def _validate(self, obj: Obj, *, prefixed_labels: bool) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = self._validate_generated_selector(obj, prefixed_labels)
        errs += validate_job_spec_body(spec, p)
        sel = spec.get("selector")
        sel_ok = True
        if sel is None:
            errs.append(v.required(p.child("selector")))
        else:
            sel_errs = validate_label_selector_object(sel, p.child("selector"))
            errs += sel_errs
            sel_ok = not sel_errs
        if sel_ok and (sel is None or isinstance(sel, dict)):
            labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
            if not from_label_selector_object(sel, none_matches=False).matches(labels):
                errs.append(v.invalid(p.child("template", "metadata", "labels"), labels,
                                      "`selector` does not match template `labels`"))
        meta = as_dict(obj.get("metadata"))
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed" and is_int(completions) and completions > 0:
            # Pod hostnames are "<job>-<index>": the largest must still be a DNS label.
            hostname = f"{meta.get('name', '')}-{completions - 1}"
            if v.is_dns1123_label(hostname):
                errs.append(v.invalid(Path("metadata", "name"), meta.get("name", ""),
                                      f"will not able to create pod with invalid DNS label: {hostname}"))
        return errs

    @staticmethod
    def _validate_generated_selector(obj: Obj, prefixed_labels: bool) -> list[FieldError]:
        spec = spec_of(obj)
        if spec.get("manualSelector") is True or spec.get("selector") is None:
            return []
        meta = as_dict(obj.get("metadata"))
        uid, name = str(meta.get("uid") or ""), str(meta.get("name") or "")
        errs: list[FieldError] = []
        if not uid:
            errs.append(v.required(Path("metadata", "uid")))
        tmeta_path = Path("spec", "template", "metadata")
        labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
        expected = {LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name}
        checks = [(LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name)]
        if prefixed_labels:
            checks += [(CONTROLLER_UID, uid), (JOB_NAME, name)]
            expected.update({CONTROLLER_UID: uid, JOB_NAME: name})
        for key, want in checks:
            lp = tmeta_path.child("labels").key(key)
            if key not in labels:
                errs.append(v.required(lp))
            elif labels[key] != want:
                errs.append(v.invalid(lp, labels, f"must be '{want}'"))
        sel = spec.get("selector")
        if not validate_label_selector_object(sel, Path("spec", "selector")) \
                and not from_label_selector_object(sel).matches(expected):
            errs.append(v.invalid(Path("spec", "selector"), sel, "`selector` not auto-generated"))
        return errs

    def validate(self, obj: Obj) -> list[FieldError]:
        return self._validate(obj, prefixed_labels=True)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        old_spec = spec_of(old)
        old_labels = as_dict(as_dict(as_dict(old_spec.get("template")).get("metadata")).get("labels"))
        # Jobs created before the prefixed labels existed are not required to grow them.
        errs = self._validate(new, prefixed_labels=CONTROLLER_UID in old_labels)
        spec, p = spec_of(new), Path("spec")
        completions, old_completions = spec.get("completions"), old_spec.get("completions")
        if spec.get("completionMode") != "Indexed":
            errs += v.immutable(completions, old_completions, p.child("completions"))
        elif completions != old_completions and completions is not None and completions != spec.get("parallelism"):
            # Elastic Indexed Jobs: completions may change only together with parallelism.
            errs.append(v.invalid(p.child("completions"), completions,
                                  "can only be modified in tandem with spec.parallelism"))
        errs += v.immutable(spec.get("selector"), old_spec.get("selector"), p.child("selector"))
        old_template = old_spec.get("template")
        suspended = old_spec.get("suspend") is True and not as_dict(old.get("status")).get("startTime")
        if suspended:
            old_template = _scheduling_mutable_view(old_template, spec.get("template"))
        errs += v.immutable(spec.get("template"), old_template, p.child("template"))
        for f in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"):
            errs += v.immutable(spec.get(f), old_spec.get(f), p.child(f))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs: list[FieldError] = []
        for f in ("active", "succeeded", "failed", "ready", "terminating"):
            errs += validate_nonneg(status.get(f), p.child(f))
        uncounted = as_dict(status.get("uncountedTerminatedPods"))
        seen: set[str] = set()
        for f in ("succeeded", "failed"):
            for i, uid in enumerate(as_list(uncounted.get(f))):
                up = p.child("uncountedTerminatedPods", f).index(i)
                if not uid:
                    errs.append(v.invalid(up, uid, "must not be empty"))
                elif uid in seen:
                    errs.append(v.duplicate(up, uid))
                else:
                    seen.add(uid)
        return errs


# --- cron schedules ----------------------------------------------------------------------------

_TZ_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


def validate_time_zone(tz: Any, path: Path) -> list[FieldError]:
    if tz is None:
        return []
    if not isinstance(tz, str) or tz == "":
        return [v.invalid(path, tz, "timeZone must be nil or non-empty string")]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.match(part):
            return [v.invalid(path, tz, f"unknown time zone {tz}")]
    errs: list[FieldError] = []
    if tz.lower() == "local":
        errs.append(v.invalid(path, tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
    elif not zone_exists(tz):
        errs.append(v.invalid(path, tz, f"unknown time zone {tz}"))
    return errs


def validate_schedule(schedule: str, path: Path, *, allow_tz: bool, time_zone: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    try:
        parse_cron(schedule)
    except CronError as e:
        errs.append(v.invalid(path, schedule, str(e)))
    if "TZ" in schedule:
        if not allow_tz:
            errs.append(v.invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
        elif time_zone is not None:
            errs.append(v.invalid(path, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    return errs


# --- CronJob -----------------------------------------------------------------------------------


class CronJobStrategy(Strategy):
    kind = "CronJob"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("concurrencyPolicy"):
            spec["concurrencyPolicy"] = "Allow"
        if spec.get("suspend") is None:
            spec["suspend"] = False
        if spec.get("successfulJobsHistoryLimit") is None:
            spec["successfulJobsHistoryLimit"] = 3
        if spec.get("failedJobsHistoryLimit") is None:
            spec["failedJobsHistoryLimit"] = 1
        # Only the pod template inside the job template is defaulted, not the Job spec around it.
        template = as_dict(as_dict(spec.get("jobTemplate")).get("spec")).get("template")
        if isinstance(template, dict):
            default_pod_template(template)

    def _validate_spec(self, spec: dict[str, Any], old_spec: dict[str, Any] | None) -> list[FieldError]:
        p = Path("spec")
        errs: list[FieldError] = []
        schedule = spec.get("schedule")
        if not schedule:
            errs.append(v.required(p.child("schedule")))
        elif not isinstance(schedule, str):
            errs.append(v.type_invalid(p.child("schedule"), schedule, "must be a string"))
        else:
            allow_tz = old_spec is not None and "TZ" in str(old_spec.get("schedule") or "")
            errs += validate_schedule(schedule, p.child("schedule"), allow_tz=allow_tz,
                                      time_zone=spec.get("timeZone"))
        errs += validate_nonneg(spec.get("startingDeadlineSeconds"), p.child("startingDeadlineSeconds"))
        if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
            errs += validate_time_zone(spec.get("timeZone"), p.child("timeZone"))
        policy = spec.get("concurrencyPolicy")
        if not policy:
            errs.append(v.required(p.child("concurrencyPolicy")))
        elif policy not in CONCURRENCY_POLICIES:
            errs.append(v.not_supported(p.child("concurrencyPolicy"), policy, CONCURRENCY_POLICIES))
        jt_path = p.child("jobTemplate")
        jt = as_dict(spec.get("jobTemplate"))
        jt_meta = as_dict(jt.get("metadata"))
        errs += v.validate_labels(jt_meta.get("labels"), jt_path.child("metadata", "labels"))
        errs += v.validate_annotations(jt_meta.get("annotations"), jt_path.child("metadata", "annotations"))
        jspec = as_dict(jt.get("spec"))
        errs += validate_job_spec_body(jspec, jt_path.child("spec"))
        if jspec.get("selector") is not None:
            errs.append(v.invalid(jt_path.child("spec", "selector"), jspec["selector"],
                                  "`selector` will be auto-generated"))
        if jspec.get("manualSelector") is True:
            errs.append(v.not_supported(jt_path.child("spec", "manualSelector"), True, ("nil", "false")))
        for f in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            errs += validate_nonneg(spec.get(f), p.child(f))
        return errs

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = self._validate_spec(spec_of(obj), None)
        name = as_dict(obj.get("metadata")).get("name")
        if isinstance(name, str) and len(name) > CRONJOB_NAME_MAX:
            errs.append(v.invalid(Path("metadata", "name"), name, f"must be no more than {CRONJOB_NAME_MAX} characters"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        # No name-length check on update, so old long-named CronJobs can still be changed.
        return self._validate_spec(spec_of(new), spec_of(old))


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("batch", "Job"): JobStrategy(),
    ("batch", "CronJob"): CronJobStrategy(),
}

__all__ = ["STRATEGIES", "CronError", "generate_selector", "parse_cron", "validate_time_zone"]
