"""PodSecurity (Kubernetes' ``plugin/pkg/admission/security/podsecurity`` over
``k8s.io/pod-security-admission/admission``; on by default; validating, CREATE and UPDATE).

Each namespace's labels give its policy (:mod:`.levels`); kube-apiserver's default configuration
makes an unlabeled namespace ``privileged:latest`` in every mode and exempts nothing.

* **Pods** (create; an update only if it adds or removes a container or changes an image, an
  ephemeral container added through ``pods/ephemeralcontainers`` included; the status, binding,
  eviction, exec/attach/log/portforward/proxy subresources never): a pod violating the enforce
  level is refused, 403 ``pods "x" is forbidden: violates PodSecurity "restricted:latest":
  <reason (detail)>, ...``; one that passes but violates the warn level gets the warning
  ``would violate PodSecurity "<level:version>": ...``.
* **Pod controllers** (ReplicationControllers, PodTemplates, ReplicaSets, Deployments,
  StatefulSets, DaemonSets, Jobs, CronJobs; not their subresources): their pod template is
  checked against the warn and audit levels only, never refused.
* **Namespaces**: labels that do not parse are refused (422 ``Namespace "x" is invalid:
  metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "x": must be one of
  privileged, baseline, restricted``), on update only if the errors changed. A label change to a
  stricter enforce level warns about the existing pods that would violate it: up to 3000 pods,
  checked for at most a second, one pod per controller first, grouped by reasons.
* **Audit**: the decision's audit annotations (``pod-security.kubernetes.io/enforce-policy``,
  ``audit-violations``, ``exempt``, ``error``) go to the request's audit event
  (``attrs.add_annotation``) when the request is audited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.validation import FieldError
from kybernetes.apiserver.admission.chain import CREATE, UPDATE, Attributes, Handler, PluginInit
from kybernetes.apiserver.admission.podsecurity.evaluator import evaluate
from kybernetes.apiserver.admission.podsecurity.levels import (
    AUDIT_ANNOTATION_PREFIX,
    AUDIT_VIOLATIONS_ANNOTATION,
    DEFAULT_POLICY,
    ENFORCED_POLICY_ANNOTATION,
    EXEMPTION_REASON_ANNOTATION,
    PRIVILEGED,
    PRIVILEGED_LATEST,
    LevelVersion,
    Policy,
    compare_levels,
    policy_to_evaluate,
)
from kybernetes.apiserver.admission.podsecurity.namespaces import (
    evaluate_pods_in_namespace,
    exempt_namespace_warning,
)
from kybernetes.apiserver.admission.podsecurity.policy import AggregateResult, as_dict
from kybernetes.apiserver.registry.store import Registry

NAME = "PodSecurity"

POD_CONTROLLERS = frozenset({
    ("", "replicationcontrollers"), ("", "podtemplates"), ("apps", "replicasets"), ("apps", "deployments"),
    ("apps", "statefulsets"), ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs")})
"""The resources with a pod template (``DefaultPodSpecExtractor``)."""

IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward", "proxy",
                                      "status"})


@dataclass
class Configuration:
    """``PodSecurityConfiguration``: the defaults and the exemptions (none by default)."""

    defaults: Policy = DEFAULT_POLICY
    exempt_namespaces: frozenset[str] = frozenset()
    exempt_usernames: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()
    namespace_max_pods_to_check: int = 3000
    namespace_pod_check_timeout: float = 1.0


@dataclass
class Decision:
    """What one evaluation answers: a refusal (or None), warnings, audit annotations (unprefixed)."""

    error: errors.StatusError | None = None
    warnings: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)


def pod_template(group: str, resource: str, obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of a pod controller's template (``ExtractPodSpec``), None if it has none."""
    if (group, resource) == ("", "podtemplates"):
        template = obj.get("template")
    elif (group, resource) == ("batch", "cronjobs"):
        template = as_dict(as_dict(as_dict(obj.get("spec")).get("jobTemplate")).get("spec")).get("template")
    else:
        template = as_dict(obj.get("spec")).get("template")
        if template is None and (group, resource) != ("", "replicationcontrollers"):
            template = {}  # the other templates are values, never absent
    if not isinstance(template, dict):
        return None
    return as_dict(template.get("metadata")), as_dict(template.get("spec"))


def _containers_and_images(spec: Obj, kind: str) -> list[tuple[str, object]]:
    return [(str(c.get("name")), c.get("image")) for c in spec.get(kind) or () if isinstance(c, dict)]


def is_significant_pod_update(pod: Obj, old: Obj) -> bool:
    """Whether a pod update is checked at all (``isSignificantPodUpdate``): a container or init
    container added, removed or given another image; an ephemeral container added or changed."""
    spec, old_spec = as_dict(pod.get("spec")), as_dict(old.get("spec"))
    for kind in ("containers", "initContainers"):
        new_list, old_list = _containers_and_images(spec, kind), _containers_and_images(old_spec, kind)
        if len(new_list) != len(old_list) or any(n[1] != o[1] for n, o in zip(new_list, old_list, strict=True)):
            return True
    old_ephemeral = dict(_containers_and_images(old_spec, "ephemeralContainers"))
    return any(name not in old_ephemeral or old_ephemeral[name] != image
               for name, image in _containers_and_images(spec, "ephemeralContainers"))


def _forbidden(attrs: Attributes, message: str) -> errors.Forbidden:
    """``apierrors.NewForbidden`` for the request (the generated name, once there is one)."""
    name = attrs.name or str(as_dict(as_dict(attrs.object).get("metadata")).get("name") or "")
    what = attrs.group_resource
    details: dict[str, object] = {"name": name} if name else {}
    if attrs.group:
        details["group"] = attrs.group
    details["kind"] = attrs.resource
    text = f'{what} "{name}" is forbidden: {message}' if name else f"{what} is forbidden: {message}"
    return errors.Forbidden(text, details=details)


def _violation(verb: str, lv: LevelVersion, result: AggregateResult) -> str:
    return f'{verb} PodSecurity "{lv}": {result.forbidden_detail()}'


class PodSecurity(Handler):
    operations = frozenset({CREATE, UPDATE})
    resources = frozenset({("", "pods"), ("", "namespaces")}) | POD_CONTROLLERS

    def __init__(self, registry: Registry, config: Configuration | None = None) -> None:
        self.registry = registry
        self.config = config or Configuration()
        namespaces = registry.catalogue.get("", "v1", "namespaces")
        pods = registry.catalogue.get("", "v1", "pods")
        assert namespaces is not None and pods is not None
        self.namespaces, self.pods = namespaces, pods

    async def validate(self, attrs: Attributes) -> None:
        if attrs.resource == "namespaces" and not attrs.group:
            decision = await self.validate_namespace(attrs)
        elif attrs.resource == "pods" and not attrs.group:
            decision = await self.validate_pod(attrs)
        else:
            decision = await self.validate_pod_controller(attrs)
        attrs.warnings.extend(decision.warnings)
        for key, value in decision.annotations.items():
            attrs.add_annotation(AUDIT_ANNOTATION_PREFIX + key, value)
        if decision.error is not None:
            raise decision.error

    def _exemption(self, attrs: Attributes) -> Decision | None:
        if attrs.namespace and attrs.namespace in self.config.exempt_namespaces:
            return Decision(annotations={EXEMPTION_REASON_ANNOTATION: "namespace"})
        if attrs.user.name and attrs.user.name in self.config.exempt_usernames:
            return Decision(annotations={EXEMPTION_REASON_ANNOTATION: "user"})
        return None

    async def _namespace(self, name: str) -> Obj | None:
        cache = await self.registry.cacher.cache_for(self.namespaces.key_prefix)
        return cache.objects.get(self.namespaces.key("", name))

    async def validate_namespace(self, attrs: Attributes) -> Decision:
        """``ValidateNamespace``: label errors refused; a stricter enforce level checked against
        the namespace's pods."""
        if attrs.subresource or attrs.object is None:
            return Decision()
        labels = as_dict(as_dict(attrs.object.get("metadata")).get("labels"))
        policy, errs = policy_to_evaluate(labels, self.config.defaults)
        name = attrs.name or str(as_dict(attrs.object.get("metadata")).get("name") or "")
        invalid = Decision(errors.Invalid("Namespace", name, [e.cause() for e in errs]))
        if attrs.operation == CREATE:
            if errs:
                return invalid
            return Decision(warnings=self._exempt_warning(name, policy, labels))
        old_labels = as_dict(as_dict(as_dict(attrs.old_object).get("metadata")).get("labels"))
        old_policy, old_errs = policy_to_evaluate(old_labels, self.config.defaults)
        if errs and (not old_errs or errs != old_errs):
            return invalid
        if policy.enforce == old_policy.enforce or policy.enforce.level == PRIVILEGED:
            return Decision()
        if (policy.enforce.version == old_policy.enforce.version
                and compare_levels(policy.enforce.level, old_policy.enforce.level) < 1):
            return Decision()
        if name in self.config.exempt_namespaces:
            return Decision(warnings=self._exempt_warning(name, policy, labels))
        cache = await self.registry.cacher.cache_for(self.pods.key_prefix)
        pods = [obj for _key, obj in cache.list(self.pods.namespace_prefix(name))]
        return Decision(warnings=evaluate_pods_in_namespace(
            name, policy.enforce, pods, self.config.exempt_runtime_classes,
            self.config.namespace_max_pods_to_check, time.monotonic() + self.config.namespace_pod_check_timeout))

    def _exempt_warning(self, name: str, policy: Policy, labels: dict[str, str]) -> list[str]:
        if name not in self.config.exempt_namespaces:
            return []
        warning = exempt_namespace_warning(name, policy, labels, self.config.defaults)
        return [warning] if warning else []

    async def validate_pod(self, attrs: Attributes) -> Decision:
        """``ValidatePod``: enforce, audit and warn on pod creates and significant updates."""
        if attrs.subresource in IGNORED_POD_SUBRESOURCES:
            return Decision()
        exempt = self._exemption(attrs)
        if exempt is not None:
            return exempt
        namespace = await self._namespace(attrs.namespace)
        if namespace is None:
            message = f'failed to lookup namespace "{attrs.namespace}"'
            return Decision(errors.InternalError(f"Internal error occurred: {message}"),
                            annotations={"error": f"Internal error occurred: {message}"})
        policy, errs = policy_to_evaluate(as_dict(as_dict(namespace.get("metadata")).get("labels")),
                                          self.config.defaults)
        if not errs and policy.fully_privileged():
            return Decision(annotations={ENFORCED_POLICY_ANNOTATION: str(PRIVILEGED_LATEST)})
        pod = as_dict(attrs.object)
        if attrs.operation == UPDATE and not is_significant_pod_update(pod, as_dict(attrs.old_object)):
            return Decision()
        meta, spec = as_dict(pod.get("metadata")), as_dict(pod.get("spec"))
        return self.evaluate_pod(attrs, policy, errs_text(errs), meta, spec, enforce=True)

    async def validate_pod_controller(self, attrs: Attributes) -> Decision:
        """``ValidatePodController``: warn and audit on a controller's pod template; never refuses."""
        if attrs.subresource:
            return Decision()
        exempt = self._exemption(attrs)
        if exempt is not None:
            return exempt
        namespace = await self._namespace(attrs.namespace)
        if namespace is None:
            return Decision(annotations={"error": f'failed to lookup namespace "{attrs.namespace}": '
                                                  f'namespaces "{attrs.namespace}" not found'})
        policy, errs = policy_to_evaluate(as_dict(as_dict(namespace.get("metadata")).get("labels")),
                                          self.config.defaults)
        if not errs and policy.warn.level == PRIVILEGED and policy.audit.level == PRIVILEGED:
            return Decision()
        template = pod_template(attrs.group, attrs.resource, as_dict(attrs.object))
        if template is None:
            return Decision()
        return self.evaluate_pod(attrs, policy, errs_text(errs), *template, enforce=False)

    def evaluate_pod(self, attrs: Attributes, policy: Policy, policy_error: str, meta: Obj, spec: Obj,
                     *, enforce: bool) -> Decision:
        """``EvaluatePod``: the enforce (if asked), audit and warn decisions, each level evaluated once."""
        runtime_class = spec.get("runtimeClassName")
        if runtime_class and runtime_class in self.config.exempt_runtime_classes:
            return Decision(annotations={EXEMPTION_REASON_ANNOTATION: "runtimeClass"})
        decision = Decision()
        if policy_error:
            decision.annotations["error"] = f"Failed to parse policy: {policy_error}"
        results: dict[LevelVersion, AggregateResult] = {}

        def result(lv: LevelVersion) -> AggregateResult:
            if lv not in results:
                results[lv] = evaluate(lv, meta, spec)
            return results[lv]
        if enforce:
            decision.annotations[ENFORCED_POLICY_ANNOTATION] = str(policy.enforce)
            if not result(policy.enforce).allowed:
                decision.error = _forbidden(attrs, _violation("violates", policy.enforce, result(policy.enforce)))
        if not result(policy.audit).allowed:
            decision.annotations[AUDIT_VIOLATIONS_ANNOTATION] = _violation("would violate", policy.audit,
                                                                           result(policy.audit))
        if decision.error is None and not result(policy.warn).allowed:
            decision.warnings.append(_violation("would violate", policy.warn, result(policy.warn)))
        return decision


def errs_text(errs: list[FieldError]) -> str:
    """The label errors as ``ErrorList.ToAggregate()`` prints them ("" for none)."""
    texts = list(dict.fromkeys(str(e) for e in errs))
    if not texts:
        return ""
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


def new(init: PluginInit) -> PodSecurity:
    return PodSecurity(init.registry)
