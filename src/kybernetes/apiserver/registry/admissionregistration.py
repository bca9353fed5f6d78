"""``admissionregistration.k8s.io/v1``: MutatingWebhookConfiguration and ValidatingWebhookConfiguration.

Defaults are Kubernetes 1.32's ``pkg/apis/admissionregistration/v1/defaults.go``: per webhook
``failurePolicy: Fail``, ``matchPolicy: Equivalent``, empty ``namespaceSelector`` and
``objectSelector`` (everything), ``timeoutSeconds: 10``, a mutating webhook's
``reinvocationPolicy: Never``; per rule ``scope: "*"``; a service reference's ``port: 443``.

Validation is ``pkg/apis/admissionregistration/validation`` with its wording: webhook names are
fully qualified (three dot-separated segments at least) and unique; rules name operations,
apiGroups, apiVersions and resources (``*`` alone, ``x/*`` and ``*/x`` subresource forms);
``sideEffects`` is required and must be ``None`` or ``NoneOnDryRun``; ``timeoutSeconds`` is
1..30; exactly one of ``url`` (https, a host, no user, query or fragment) and ``service``;
``admissionReviewVersions`` must include ``v1`` or ``v1beta1``; at most 64 ``matchConditions``,
each with a qualified name and an expression that compiles (:mod:`kybernetes.apiserver.admission.
webhook.conditions`). On update, rules that the old object already broke (side effects, unknown
review versions, duplicate names) are not enforced again, as in Kubernetes, so that stored
objects stay updatable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, is_int, port_num_msgs
from kybernetes.api.validation.govalues import go_strings
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Equivalent", "Exact")
SIDE_EFFECT_CLASSES = ("None", "NoneOnDryRun", "Some", "Unknown")
NO_SIDE_EFFECT_CLASSES = ("None", "NoneOnDryRun")
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
REINVOCATION_POLICIES = ("IfNeeded", "Never")
SCOPES = ("*", "Cluster", "Namespaced")
REVIEW_VERSIONS = ("v1", "v1beta1")
MAX_MATCH_CONDITIONS = 64
DEFAULT_TIMEOUT_SECONDS = 10


# --- defaults -----------------------------------------------------------------------------------

def default_webhook(hook: dict[str, Any], *, mutating: bool) -> None:
    """``SetDefaults_ValidatingWebhook`` / ``SetDefaults_MutatingWebhook`` and their rules and service."""
    hook.setdefault("failurePolicy", "Fail")
    hook.setdefault("matchPolicy", "Equivalent")
    if hook.get("namespaceSelector") is None:
        hook["namespaceSelector"] = {}
    if hook.get("objectSelector") is None:
        hook["objectSelector"] = {}
    if hook.get("timeoutSeconds") is None:
        hook["timeoutSeconds"] = DEFAULT_TIMEOUT_SECONDS
    if mutating and hook.get("reinvocationPolicy") is None:
        hook["reinvocationPolicy"] = "Never"
    for rule in as_list(hook.get("rules")):
        if isinstance(rule, dict) and rule.get("scope") is None:
            rule["scope"] = "*"
    service = as_dict(as_dict(hook.get("clientConfig")).get("service"))
    if service and service.get("port") is None:
        service["port"] = 443


# --- validation ---------------------------------------------------------------------------------

def is_fully_qualified_name(path: Path, name: Any) -> list[FieldError]:
    """``utilvalidation.IsFullyQualifiedName``."""
    if not name:
        return [v.required(path)]
    msgs = v.is_dns1123_subdomain(str(name))
    if msgs:
        return [v.invalid(path, name, ",".join(msgs))]
    if len(str(name).split(".")) < 3:
        return [v.invalid(path, name, "should be a domain with at least three segments separated by dots")]
    return []


def _validate_resources(resources: list[Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = [] if resources else [v.required(path)]
    with_wild_sub: set[str] = set()    # x/*
    sub_of_wild_res: set[str] = set()  # */x
    double = single = plain = False
    for i, res_sub in enumerate(resources):
        if res_sub == "":
            errs.append(v.required(path.index(i)))
            continue
        double |= res_sub == "*/*"
        single |= res_sub == "*"
        parts = str(res_sub).split("/", 1)
        if len(parts) == 1:
            plain = res_sub != "*"
            continue
        res, sub = parts
        if res in with_wild_sub:
            errs.append(v.invalid(path.index(i), res_sub, f"if '{res}/*' is present, must not specify {res_sub}"))
        if sub in sub_of_wild_res:
            errs.append(v.invalid(path.index(i), res_sub, f"if '*/{sub}' is present, must not specify {res_sub}"))
        if sub == "*":
            with_wild_sub.add(res)
        if res == "*":
            sub_of_wild_res.add(sub)
    if len(resources) > 1 and double:
        errs.append(v.invalid(path, resources, "if '*/*' is present, must not specify other resources"))
    if single and plain:
        errs.append(v.invalid(path, resources, "if '*' is present, must not specify other resources without "
                                               "subresources"))
    return errs


def validate_rule(rule: dict[str, Any], path: Path) -> list[FieldError]:
    """``validateRuleWithOperations`` (subresources allowed)."""
    errs: list[FieldError] = []
    ops = as_list(rule.get("operations"))
    if not ops:
        errs.append(v.required(path.child("operations")))
    if len(ops) > 1 and "*" in ops:
        errs.append(v.invalid(path.child("operations"), ops, "if '*' is present, must not specify other operations"))
    for i, op in enumerate(ops):
        if op not in OPERATIONS:
            errs.append(v.not_supported(path.child("operations").index(i), op, OPERATIONS))
    groups, versions = as_list(rule.get("apiGroups")), as_list(rule.get("apiVersions"))
    if not groups:
        errs.append(v.required(path.child("apiGroups")))
    if len(groups) > 1 and "*" in groups:
        errs.append(v.invalid(path.child("apiGroups"), groups, "if '*' is present, must not specify other API groups"))
    if not versions:
        errs.append(v.required(path.child("apiVersions")))
    if len(versions) > 1 and "*" in versions:
        errs.append(v.invalid(path.child("apiVersions"), versions,
                              "if '*' is present, must not specify other API versions"))
    errs += [v.required(path.child("apiVersions").index(i)) for i, ver in enumerate(versions) if ver == ""]
    errs += _validate_resources(as_list(rule.get("resources")), path.child("resources"))
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        errs.append(v.not_supported(path.child("scope"), scope, SCOPES))
    return errs


def validate_url(url: Any, path: Path) -> list[FieldError]:
    """``webhook.ValidateWebhookURL`` with https forced."""
    form = "; desired format: https://host[/path]"
    try:
        u = urlsplit(str(url))
    except ValueError as e:
        return [v.required(path, f"url must be a valid URL: {e}{form}")]
    errs: list[FieldError] = []
    if u.scheme != "https":
        errs.append(v.invalid(path, u.scheme, "'https' is the only allowed URL scheme" + form))
    if not u.netloc:
        errs.append(v.invalid(path, u.netloc, "host must be specified" + form))
    if "@" in u.netloc:
        errs.append(v.invalid(path, u.netloc.rsplit("@", 1)[0], "user information is not permitted in the URL"))
    if u.fragment:
        errs.append(v.invalid(path, u.fragment, "fragments are not permitted in the URL"))
    if u.query:
        errs.append(v.invalid(path, u.query, "query parameters are not permitted in the URL"))
    return errs


def validate_service(service: dict[str, Any], path: Path) -> list[FieldError]:
    """``webhook.ValidateWebhookService``."""
    errs: list[FieldError] = []
    if not service.get("name"):
        errs.append(v.required(path.child("name")))
    if not service.get("namespace"):
        errs.append(v.required(path.child("namespace")))
    port = service.get("port", 443)
    if msgs := port_num_msgs(port):
        errs.append(v.invalid(path.child("port"), port, "port is not valid: " + ", ".join(msgs)))
    url_path = service.get("path")
    if url_path is None or url_path in ("/", ""):
        return errs
    p = path.child("path")
    if url_path == "//":
        return errs + [v.invalid(p, url_path, "segment[0] may not be empty")]
    if not url_path.startswith("/"):
        errs.append(v.invalid(p, url_path, "must start with a '/'"))
    steps = url_path[1:].removesuffix("/").split("/")
    for i, step in enumerate(steps):
        if not step:
            errs.append(v.invalid(p, url_path, f"segment[{i}] may not be empty"))
            continue
        errs += [v.invalid(p, url_path, f"segment[{i}]: {m}") for m in v.is_dns1123_subdomain(step)]
    return errs


def validate_match_conditions(conditions: list[Any], path: Path) -> list[FieldError]:
    """``validateMatchConditions``: at most 64, named uniquely, each expression compiling."""
    from kybernetes.apiserver.admission.webhook import conditions as cel

    errs: list[FieldError] = []
    if len(conditions) > MAX_MATCH_CONDITIONS:
        errs.append(v.too_many(path, len(conditions), MAX_MATCH_CONDITIONS))
    names: set[str] = set()
    for i, cond in enumerate(conditions):
        cond = as_dict(cond)
        expression, name = str(cond.get("expression") or "").strip(), cond.get("name") or ""
        if not expression:
            errs.append(v.required(path.index(i).child("expression")))
        elif problem := cel.compile_error(expression):
            errs.append(v.invalid(path.index(i).child("expression"), expression, problem))
        if not name:
            errs.append(v.required(path.index(i).child("name")))
        else:
            errs += [v.invalid(path.index(i).child("name"), name, m) for m in v.is_qualified_name(name)]
            if name in names:
                errs.append(v.duplicate(path.index(i).child("name"), name))
            names.add(name)
    return errs


def _validate_client_config(cc: dict[str, Any], path: Path) -> list[FieldError]:
    url, service = cc.get("url"), cc.get("service")
    if (url is None) == (service is None):
        return [v.required(path, "exactly one of url or service is required")]
    if url is not None:
        return validate_url(url, path.child("url"))
    return validate_service(as_dict(service), path.child("service"))


def validate_webhook(hook: dict[str, Any], path: Path, *, mutating: bool, side_effects: tuple[str, ...],
                     check_conditions: bool) -> list[FieldError]:
    """``validateValidatingWebhook`` / ``validateMutatingWebhook``."""
    errs = is_fully_qualified_name(path.child("name"), hook.get("name"))
    for i, rule in enumerate(as_list(hook.get("rules"))):
        errs += validate_rule(as_dict(rule), path.child("rules").index(i))
    for key, allowed in (("failurePolicy", FAILURE_POLICIES), ("matchPolicy", MATCH_POLICIES)):
        if hook.get(key) is not None and hook[key] not in allowed:
            errs.append(v.not_supported(path.child(key), hook[key], allowed))
    effects = hook.get("sideEffects")
    if effects is None:
        errs.append(v.required(path.child("sideEffects"), f"must specify one of {', '.join(side_effects)}"))
    elif effects not in side_effects:
        errs.append(v.not_supported(path.child("sideEffects"), effects, side_effects))
    timeout = hook.get("timeoutSeconds")
    if is_int(timeout) and not 1 <= timeout <= 30:
        errs.append(v.invalid(path.child("timeoutSeconds"), timeout, "the timeout value must be between 1 and 30 "
                                                                     "seconds"))
    for key in ("namespaceSelector", "objectSelector"):
        errs += validate_label_selector_object(hook.get(key), path.child(key))
    policy = hook.get("reinvocationPolicy")
    if mutating and policy is not None and policy not in REINVOCATION_POLICIES:
        errs.append(v.not_supported(path.child("reinvocationPolicy"), policy, REINVOCATION_POLICIES))
    errs += _validate_client_config(as_dict(hook.get("clientConfig")), path.child("clientConfig"))
    if check_conditions:
        errs += validate_match_conditions(as_list(hook.get("matchConditions")), path.child("matchConditions"))
    return errs


def validate_review_versions(versions: list[Any], path: Path, *, require_known: bool,
                             required_detail: str = f"must specify one of {', '.join(REVIEW_VERSIONS)}"
                             ) -> list[FieldError]:
    """``validateAdmissionReviewVersions`` and the CRD conversion's ``validateConversionReviewVersions``
    (the same rules; only the detail of a missing list differs)."""
    if not versions:
        return [v.required(path, required_detail) if required_detail else v.required(path)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, ver in enumerate(versions):
        if ver in seen:
            errs.append(v.invalid(path.index(i), ver, "duplicate version"))
            continue
        seen.add(ver)
        errs += [v.invalid(path.index(i), ver, m) for m in v.is_dns1035_label(str(ver))]
    if require_known and not seen & set(REVIEW_VERSIONS):
        errs.append(v.invalid(path, go_strings(versions), f"must include at least one of {', '.join(REVIEW_VERSIONS)}"))
    return errs


class WebhookConfigurationStrategy(ClusterScoped):
    """Both webhook configuration kinds; ``mutating`` says which."""

    mutating: bool = False

    def default(self, obj: Obj) -> None:
        for hook in as_list(obj.get("webhooks")):
            if isinstance(hook, dict):
                default_webhook(hook, mutating=self.mutating)

    def validate(self, obj: Obj) -> list[FieldError]:
        return self._validate(obj, None)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self._validate(new, old)

    def _validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        hooks = [as_dict(h) for h in as_list(obj.get("webhooks"))]
        old_hooks = None if old is None else [as_dict(h) for h in as_list(old.get("webhooks"))]
        loose = old_hooks is not None
        strict_effects = not loose or all(h.get("sideEffects") in NO_SIDE_EFFECT_CLASSES for h in old_hooks or [])
        known_versions = not loose or all(
            not h.get("admissionReviewVersions") or set(as_list(h["admissionReviewVersions"])) & set(REVIEW_VERSIONS)
            for h in old_hooks or [])
        old_names = [h.get("name") for h in old_hooks or []]
        unique_names = not loose or len(old_names) == len(set(old_names))
        same_conditions = old_hooks is not None and len(old_hooks) == len(hooks) and all(
            h.get("matchConditions") == o.get("matchConditions") for h, o in zip(hooks, old_hooks, strict=True))
        effects = NO_SIDE_EFFECT_CLASSES if strict_effects else SIDE_EFFECT_CLASSES
        errs: list[FieldError] = []
        names: set[str] = set()
        for i, hook in enumerate(hooks):
            path = Path("webhooks").index(i)
            errs += validate_webhook(hook, path, mutating=self.mutating, side_effects=effects,
                                     check_conditions=not same_conditions)
            errs += validate_review_versions(as_list(hook.get("admissionReviewVersions")),
                                             path.child("admissionReviewVersions"), require_known=known_versions)
            name = hook.get("name")
            if unique_names and name:
                if name in names:
                    errs.append(v.duplicate(path.child("name"), name))
                names.add(name)
        return errs


class ValidatingWebhookConfigurationStrategy(WebhookConfigurationStrategy):
    kind = "ValidatingWebhookConfiguration"


class MutatingWebhookConfigurationStrategy(WebhookConfigurationStrategy):
    kind = "MutatingWebhookConfiguration"
    mutating = True


GROUP = "admissionregistration.k8s.io"

STRATEGIES: dict[tuple[str, str], Strategy] = {
    (GROUP, "ValidatingWebhookConfiguration"): ValidatingWebhookConfigurationStrategy(),
    (GROUP, "MutatingWebhookConfiguration"): MutatingWebhookConfigurationStrategy(),
}
