"""What a request to the generic store carries, and what a list returns.

The requesting :class:`User` and :class:`RequestContext` (dry run, field manager, field validation,
warnings), the options of a list or watch (:class:`ListOptions`) and of a delete
(:class:`DeleteOptions`), a list's :class:`ListResult`, and the two strings a client sends back:
continue tokens (:func:`encode_continue`, :func:`decode_continue`) and resourceVersions
(:func:`parse_rv`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes import errors
from kybernetes.api import gobytes
from kybernetes.api.field_selectors import FieldSelector
from kybernetes.api.label_selectors import LabelSelector
from kybernetes.api.obj import Obj


@dataclass
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RequestContext:
    user: User = field(default_factory=lambda: User("system:admin", ("system:masters",)))
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"
    """Strict, Warn or Ignore (what to do with unknown and duplicate fields)."""
    warnings: list[str] = field(default_factory=list)
    user_agent: str = ""
    audit_annotations: dict[str, str] | None = None
    """The request's audit event's annotations, when the request is audited (None otherwise): what
    a step wants in the audit log (``pod-security.kubernetes.io/audit-violations``) goes here
    through :meth:`add_audit_annotation`."""

    def add_audit_annotation(self, key: str, value: str) -> None:
        """``audit.AddAuditAnnotation``: recorded when the request is audited; the first value of a key stays."""
        if self.audit_annotations is not None:
            self.audit_annotations.setdefault(key, value)
    impersonator: User | None = None
    """The authenticated user when the request impersonates ``user`` (``Impersonate-User``), for audit."""


@dataclass
class ListOptions:
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    preconditions: dict[str, Any] | None = None
    dry_run: bool = False


@dataclass
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


def encode_continue(rev: int, start_after: str) -> str:
    """The continue token of a list cut short after key ``start_after`` at revision ``rev``."""
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": start_after})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """(revision, last key) of a continue token; 400 BadRequest if it is not one."""
    try:
        raw = gobytes.decode(token, alphabet=gobytes.URL_ALPHABET, padded=False)  # RawURLEncoding
        d = orjson.loads(raw)
        rev, start = int(d["rv"]), str(d["start"])
    except Exception:
        rev, start = 0, ""
    if rev == 0:  # -1: "from the current revision", handed out when the token's own had expired
        raise errors.BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    return max(rev, 0), start


def parse_rv(rv: str, what: str = "resourceVersion") -> int:
    """A resourceVersion a client sent, as a revision; 400 BadRequest if it is not one."""
    try:
        n = int(rv)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise errors.BadRequest(f"invalid {what}: {rv!r}") from None
