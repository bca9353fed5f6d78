"""The two dispatchers: validating webhooks concurrently, mutating webhooks in order.

``k8s.io/apiserver/pkg/admission/plugin/webhook/{validating,mutating}/dispatcher.go`` and
``errors/``:

* each matching webhook (:mod:`.matching`) gets an AdmissionReview (:mod:`.review`) for the
  resource it matched, with the object converted to that version; matchConditions that are
  false skip it, and ones that fail to evaluate refuse the request (403) under ``failurePolicy:
  Fail``, skip it under ``Ignore``;
* on a dry run, a webhook whose ``sideEffects`` is neither ``None`` nor ``NoneOnDryRun`` is not
  called and the request fails: 400 ``admission webhook "x" does not support dry run``;
* a webhook that cannot be called or answers something that is no valid AdmissionReview
  response (down, refused, TLS, timeout, garbage) fails open under ``Ignore`` and, under
  ``Fail``, fails the request as Kubernetes does: 500 ``Internal error occurred: failed
  calling webhook "x": ...``;
* a denial is ``admission webhook "x" denied the request: <message>`` with the webhook's code
  (at least 400), reason and details; warnings go to the client's Warning headers and audit
  annotations are kept as ``<webhook>/<key>``, with ``mutation.webhook.admission.k8s.io/
  round_<r>_index_<i>`` for every mutating call, as Kubernetes' annotator records them;
* a mutating webhook's JSON patch is applied to the object, the result decoded as into its Go
  type (unknown fields dropped, custom resources pruned, a wrong type a 500) and defaulted again
  (then the store validates it as usual); a patch that changed the object asks for the
  chain's second round, in which webhooks with ``reinvocationPolicy: IfNeeded`` that ran before
  the change are called again (Kubernetes' reinvocation context).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from kybernetes import errors
from kybernetes.api import decode as typed
from kybernetes.api.obj import Obj
from kybernetes.api.patch.json_patch import apply_json_patch
from kybernetes.api.patch.jsonvalues import json_equal
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.api.structural.pruning import prune_custom_object
from kybernetes.apiserver.admission.chain import Attributes
from kybernetes.apiserver.admission.webhook.client import CallError, WebhookClient
from kybernetes.apiserver.admission.webhook.matching import Invocation, Matcher
from kybernetes.apiserver.admission.webhook.review import (
    InvalidResponse,
    Response,
    admission_request,
    admission_review,
    review_version,
    verify_response,
)
from kybernetes.apiserver.admission.webhook.source import Webhook, WebhookSource
from kybernetes.apiserver.authz.authorizer import Chain as AuthorizerChain
from kybernetes.apiserver.registry.conversion import replace_in_place
from kybernetes.apiserver.registry.store import Registry

if TYPE_CHECKING:
    from kybernetes.apiserver.admission.metrics import AdmissionMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_SIDE_EFFECTS = ("None", "NoneOnDryRun")


def denied(name: str, result: dict[str, Any] | None) -> errors.StatusError:
    """``webhookerrors.ToStatusErr``: the webhook's Status, code at least 400, message prefixed."""
    result = result or {}
    denied_by = f'admission webhook "{name}" denied the request'
    code = result.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    message, reason = str(result.get("message") or ""), str(result.get("reason") or "")
    text = f"{denied_by}: {message}" if message else f"{denied_by}: {reason}" if reason else (
        f"{denied_by} without explanation")
    details = result.get("details") if isinstance(result.get("details"), dict) else None
    return Denied(text, details=details, reason=reason, code=code)


class Denied(errors.StatusError):
    """A webhook's denial (``ErrWebhookRejection``), as the client sees it."""


class CallFailed(Exception):
    """A call that failed (``ErrCallingWebhook``): its reason and the HTTP code the metrics record."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def conditions_failed(attrs: Attributes, error: str) -> errors.Forbidden:
    """``apierrors.NewForbidden`` of the request's resource and name (no generateName fallback)."""
    what = attrs.group_resource
    text = f'{what} "{attrs.name}" is forbidden: ' if attrs.name else f"{what} is forbidden: "
    details: dict[str, Any] = {"name": attrs.name} if attrs.name else {}
    if attrs.group:
        details["group"] = attrs.group
    details["kind"] = attrs.resource
    return errors.Forbidden(text + error, details=details)


def dry_run_unsupported(name: str) -> errors.BadRequest:
    """``NewDryRunUnsupportedErr``."""
    return errors.BadRequest(f'admission webhook "{name}" does not support dry run')


@dataclass
class Prepared:
    invocation: Invocation
    request: dict[str, Any]
    resource: Resource
    """The catalogue resource of the invocation's target (for converting a patched object back)."""


class Dispatcher:
    """What both dispatchers share: matching, building the request, calling, reading the answer."""

    mutating = False
    metrics: AdmissionMetrics | None = None
    """Set by the API server when its metrics are on: every webhook call is counted and timed."""

    def __init__(self, source: WebhookSource, matcher: Matcher, client: WebhookClient, registry: Registry,
                 catalogue: Catalogue, authorizer: Callable[[], AuthorizerChain | None] = lambda: None) -> None:
        self.source = source
        self.authorizer = authorizer
        """The server's authorizer chain, for matchConditions' ``authorizer`` (see PluginInit)."""
        self.matcher = matcher
        self.client = client
        self.registry = registry
        self.catalogue = catalogue

    async def _convert(self, obj: Obj | None, src: Resource, dst: Resource) -> Obj | None:
        """``obj`` in ``dst``'s version (a custom resource's through its conversion webhook)."""
        if obj is None or src is dst:
            return obj
        return await self.registry.conversions.convert(src, dst, copy.deepcopy(obj))

    async def prepare(self, hook: Webhook, attrs: Attributes) -> Prepared | None:
        """The call of ``hook`` for ``attrs`` if it is to be made (rules, selectors, conditions);
        raises the refusal when the request must fail without calling it."""
        inv = await self.matcher.should_call(hook, attrs)
        if inv is None:
            return None
        src = self.catalogue.get(attrs.group, attrs.version, attrs.resource)
        dst = self.catalogue.get(inv.target.group, inv.target.version, inv.target.resource)
        if src is None or dst is None:
            raise errors.InternalError(f"Internal error occurred: unable to convert to {inv.target.resource}: "
                                       "unknown kind")
        request = admission_request(str(uuid.uuid4()), attrs, inv.target, await self._convert(attrs.object, src, dst),
                                    await self._convert(attrs.old_object, src, dst))
        if hook.conditions:
            from kybernetes.apiserver.cel import library_authz  # CEL: loaded with the first matchConditions

            authz = library_authz.variables(self.authorizer(), attrs.user, attrs.group, attrs.resource,
                                            attrs.subresource, attrs.namespace, attrs.name)
            outcome = hook.conditions.evaluate(request, authz)
            if outcome.error and not hook.failure_policy_ignore:
                raise conditions_failed(attrs, outcome.error)
            if not outcome.matches:
                return None
        return Prepared(inv, request, dst)

    async def invoke(self, hook: Webhook, attrs: Attributes, index: int, body: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``body``, the whole of one webhook's call: its result, None when it failed open
        (:class:`CallFailed` under ``failurePolicy: Ignore``); a failed call under ``Fail`` raises
        Kubernetes' 500, a denial or other error propagates. With metrics on, counted and timed
        as Kubernetes' dispatchers do."""
        m = self.metrics
        t0 = perf_counter()
        step = "admit" if self.mutating else "validating"
        try:
            result = await body()
        except CallFailed as e:
            if m is not None:
                ignore = hook.failure_policy_ignore
                m.webhook_call(hook.name, step, attrs.operation, perf_counter() - t0, e.code,
                               None if ignore else "calling_webhook_error", failed_open=ignore)
            self.failed(hook, e.reason, attrs, index)
            return None
        except Exception as e:
            if m is not None:
                if isinstance(e, Denied):
                    m.webhook_call(hook.name, step, attrs.operation, perf_counter() - t0, e.code, "no_error")
                else:
                    m.webhook_call(hook.name, step, attrs.operation, perf_counter() - t0, 0, "apiserver_internal_error")
            raise
        if m is not None:
            m.webhook_call(hook.name, step, attrs.operation, perf_counter() - t0, 200)
        return result

    async def call(self, hook: Webhook, request: dict[str, Any], attrs: Attributes) -> Response:
        """Call ``hook``: its allowing answer; raises a denial or :class:`CallFailed`. On a dry run,
        a webhook that may have side effects is not called: the request fails."""
        if attrs.dry_run and hook.spec.get("sideEffects") not in NO_SIDE_EFFECTS:
            raise dry_run_unsupported(hook.name)
        version = review_version(list(hook.spec.get("admissionReviewVersions") or []))
        if not version:
            raise CallFailed("could not create admission objects: webhook does not accept known AdmissionReview "
                             "versions (v1, v1beta1)", 400)
        try:
            raw = await self.client.call(hook, admission_review(request, version))
        except CallError as e:
            raise CallFailed(str(e), self._call_error_code(e)) from None
        try:
            response = verify_response(request["uid"], self.mutating, raw, version)
        except InvalidResponse as e:
            raise CallFailed(f"received invalid webhook response: {e}", 503) from None
        for key, value in response.audit_annotations.items():
            attrs.add_annotation(f"{hook.name}/{key}", value)
        attrs.warnings.extend(response.warnings)
        if not response.allowed:
            raise denied(hook.name, response.result)
        return response

    def _call_error_code(self, e: CallError) -> int:
        """The code of Kubernetes' ``ErrCallingWebhook`` for ``e``: the webhook's own HTTP code;
        else what each dispatcher sets (they differ: validating 400 and 400, mutating 500 for a
        client that could not be built and 503 for a call that failed)."""
        if e.status is not None:
            return e.status
        if not self.mutating:
            return 400
        return 500 if e.no_client else 503

    def failed(self, hook: Webhook, reason: str, attrs: Attributes, index: int) -> None:
        """A call that failed (``ErrCallingWebhook``): under ``failurePolicy: Ignore`` only the
        ``failed-open`` audit annotation, Kubernetes' 500 under ``Fail``."""
        message = f'failed calling webhook "{hook.name}": {reason}'
        if hook.failure_policy_ignore:
            log.warning("Failed calling webhook, failing open %s: %s", hook.name, message)
            phase = "mutation" if self.mutating else "validating"
            round_ = 1 if attrs.is_reinvoke and self.mutating else 0
            attrs.add_annotation(f"failed-open.{phase}.webhook.admission.k8s.io/round_{round_}_index_{index}", hook.name)
            return
        log.warning("Failed calling webhook, failing closed %s: %s", hook.name, message)
        raise errors.InternalError(f"Internal error occurred: {message}", details={"causes": [{"message": message}]})


class ValidatingDispatcher(Dispatcher):
    """Every matching validating webhook at once; the first refusal in webhook order wins."""

    async def dispatch(self, attrs: Attributes) -> None:
        calls = []
        for index, hook in enumerate(self.source.webhooks):
            prepared = await self.prepare(hook, attrs)
            if prepared is not None:
                calls.append(self.invoke(hook, attrs, index, partial(self.call, hook, prepared.request, attrs)))
        if not calls:
            return
        if len(calls) == 1:
            await calls[0]
            return
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def _annotate_mutation(attrs: Attributes, index: int, hook: Webhook, changed: bool) -> None:
    """The audit annotation Kubernetes' webhook annotator records for every mutating call."""
    key = f"mutation.webhook.admission.k8s.io/round_{1 if attrs.is_reinvoke else 0}_index_{index}"
    value = {"configuration": hook.configuration, "webhook": hook.name, "mutated": changed}
    attrs.add_annotation(key, orjson.dumps(value).decode())


@dataclass
class ReinvocationState:
    """The mutating webhooks' part of the reinvocation context (``webhookReinvokeContext``)."""

    last_output: Obj | None = None
    previously_invoked: set[str] = field(default_factory=set)
    to_reinvoke: set[str] = field(default_factory=set)

    def require_reinvoking_previously_invoked(self) -> None:
        self.to_reinvoke |= self.previously_invoked
        self.previously_invoked = set()


class MutatingDispatcher(Dispatcher):
    """The matching mutating webhooks one after another, each seeing the previous one's changes."""

    mutating = True
    STATE_KEY = "MutatingAdmissionWebhook"

    async def dispatch(self, attrs: Attributes) -> None:
        state = attrs.reinvocation.get(self.STATE_KEY)
        if state is None:
            state = attrs.reinvocation[self.STATE_KEY] = ReinvocationState()
        if attrs.is_reinvoke and state.last_output is not None and not json_equal(attrs.object, state.last_output):
            # In-tree plugins changed the object after the webhooks' last output: call them all again.
            state.require_reinvoking_previously_invoked()
        try:
            for index, hook in enumerate(self.source.webhooks):
                prepared = await self.prepare(hook, attrs)
                if prepared is None or (attrs.is_reinvoke and hook.uid not in state.to_reinvoke):
                    continue
                changed = bool(await self.invoke(hook, attrs, index, partial(self._mutate, hook, prepared, attrs)))
                _annotate_mutation(attrs, index, hook, changed)
                if changed:
                    state.require_reinvoking_previously_invoked()
                    attrs.should_reinvoke = True
                if hook.reinvoke_if_needed:
                    state.previously_invoked.add(hook.uid)
        finally:
            state.last_output = copy.deepcopy(attrs.object)

    async def _mutate(self, hook: Webhook, prepared: Prepared, attrs: Attributes) -> bool:
        """Call ``hook`` and apply its patch; whether the object changed."""
        response = await self.call(hook, prepared.request, attrs)
        patch = self._patch(hook, response)
        return bool(patch) and await self._apply(hook, prepared, patch, attrs)

    @staticmethod
    def _patch(hook: Webhook, response: Response) -> list[Any]:
        """The answer's JSON patch operations (none if it has no patch); an undecodable patch is
        a 500, a patch type other than JSONPatch a failed call."""
        if not response.patch:
            return []
        try:
            ops = orjson.loads(base64.b64decode(response.patch, validate=True))
        except (binascii.Error, ValueError) as e:
            raise errors.InternalError(f"Internal error occurred: {e}") from None
        if not isinstance(ops, list):
            raise errors.InternalError("Internal error occurred: json: cannot unmarshal object into Go value of "
                                       "type jsonpatch.Patch")
        if ops and response.patch_type != "JSONPatch":
            raise CallFailed(f'unsupported patch type "{response.patch_type}"', denied(hook.name, response.result).code)
        return ops

    def _decode(self, r: Resource, obj: Obj) -> None:
        """The patched object decoded as Kubernetes decodes it into its type: unknown fields
        dropped (pruned for a custom resource), a wrong type a 500."""
        schema = self.registry.schema(r)
        if schema is None:
            return
        if not r.builtin:
            prune_custom_object(obj, schema.raw)
            return
        problems = typed.check(obj, schema).type_errors
        if problems:
            raise errors.InternalError(f"Internal error occurred: {problems[0]}")

    async def _apply(self, hook: Webhook, prepared: Prepared, patch: list[Any], attrs: Attributes) -> bool:
        """Apply ``patch`` to the object; whether it changed. The object keeps its identity (the
        store holds it), decoded and defaulted as a new request's would be."""
        current = prepared.request["object"]
        if current is None or attrs.object is None:
            raise errors.InternalError(f'Internal error occurred: admission webhook "{hook.name}" attempted to '
                                       "modify the object, which is not supported for this operation")
        try:
            patched = apply_json_patch(copy.deepcopy(current), patch)
        except errors.StatusError as e:
            raise errors.InternalError(f"Internal error occurred: {e.message}") from None
        if not isinstance(patched, dict):
            raise errors.InternalError("Internal error occurred: the patched object is not a JSON object")
        self._decode(prepared.resource, patched)
        if json_equal(patched, current):
            return False
        src = self.catalogue.get(attrs.group, attrs.version, attrs.resource)
        assert src is not None
        back = await self._convert(patched, prepared.resource, src)
        assert back is not None
        self.registry.strategy(src).default(back)
        replace_in_place(attrs.object, back)
        return True
