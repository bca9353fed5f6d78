"""Impersonation: ``Impersonate-User``, ``-Group``, ``-Uid`` and ``-Extra-<key>`` headers, as
kube-apiserver's ``WithImpersonation`` filter reads and authorizes them.

:func:`impersonate` runs after authentication and before API Priority and Fairness. A request
without impersonation headers is left as it is (None). Otherwise every thing asked for is
authorized for the authenticated user with the verb ``impersonate``, in this order: the user
(resource ``users``, or ``serviceaccounts`` in its namespace for ``system:serviceaccount:NS:NAME``),
each group (``groups``), each extra value (``userextras/<key>`` in ``authentication.k8s.io``)
and the uid (``uids`` in ``authentication.k8s.io``). The first refusal is a 403 in Kubernetes'
words, e.g. ``users "jane" is forbidden: User "bob" cannot impersonate resource "users" in API
group "" at the cluster scope``. Groups, extras or a uid without a user are a 400.

The impersonated user gets the groups asked for, plus ``system:authenticated`` unless
``system:authenticated`` or ``system:unauthenticated`` is among them (``system:unauthenticated``
for ``system:anonymous``); a service account impersonated without groups gets its own
(``system:serviceaccounts``, ``system:serviceaccounts:NS``). The caller keeps the authenticated
user as the impersonator (for audit).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from kybernetes import errors
from kybernetes.api import validation as v
from kybernetes.apiserver.authz.authorizer import Attributes, Chain, Decision, forbidden
from kybernetes.apiserver.registry.request import User

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ANONYMOUS = "system:anonymous"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
_AUTHENTICATION_V1 = "authentication.k8s.io/v1"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Wanted:
    """One thing asked for (Kubernetes uses an ``ObjectReference`` per thing): kind ``User``,
    ``ServiceAccount``, ``Group``, ``UserExtra`` (``field_path`` is the key) or ``UID``."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""
    field_path: str = ""

    def go_string(self) -> str:
        """The reference as Go's ``%v`` prints an ObjectReference (seven fields, empty ones too)."""
        return "{" + " ".join((self.kind, self.namespace, self.name, "", self.api_version, "", self.field_path)) + "}"


def split_service_account(username: str) -> tuple[str, str] | None:
    """``serviceaccount.SplitUsername``: (namespace, name) of ``system:serviceaccount:NS:NAME``."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_PREFIX):].split(":")
    if len(parts) != 2 or v.is_dns1123_label(parts[0]) or v.is_dns1123_subdomain(parts[1]):
        return None
    return parts[0], parts[1]


def _extra_key(header: str) -> str:
    """The key of an ``Impersonate-Extra-<key>`` header: lower-cased, then %-decoded (kept as sent
    when it is not valid %-encoding)."""
    key = header[len(EXTRA_PREFIX):].lower()
    return key if _BAD_ESCAPE.search(key) else urllib.parse.unquote(key)


def wanted(headers: Mapping[str, str]) -> list[Wanted]:
    """``buildImpersonationRequests``: what the headers ask for, in the order it is authorized."""
    out: list[Wanted] = []
    user = headers.get(USER_HEADER, "")
    if user:
        sa = split_service_account(user)
        out.append(Wanted("ServiceAccount", sa[1], sa[0]) if sa else Wanted("User", user))
    getall = getattr(headers, "getall", None)
    groups = getall(GROUP_HEADER, []) if getall else ([headers[GROUP_HEADER]] if GROUP_HEADER in headers else [])
    out += [Wanted("Group", g) for g in groups]
    extra_names = {k.lower(): k for k in headers if k.lower().startswith(EXTRA_PREFIX)}  # one per key, any case
    for name in extra_names.values():
        values = getall(name, []) if getall else [headers[name]]
        out += [Wanted("UserExtra", value, api_version=_AUTHENTICATION_V1, field_path=_extra_key(name))
                for value in values]
    uid = headers.get(UID_HEADER, "")
    if uid:
        out.append(Wanted("UID", uid, api_version=_AUTHENTICATION_V1))
    if out and not user:
        raise errors.BadRequest(f"requested [{' '.join(w.go_string() for w in out)}] without impersonating a user")
    return out


def asks_to_impersonate(headers: Mapping[str, str]) -> bool:
    return any(k[:12].lower() == "impersonate-" for k in headers)


def _attributes(requestor: User, w: Wanted) -> Attributes:
    """What impersonating ``w`` asks of the authorizer."""
    if w.kind == "ServiceAccount":
        return Attributes(requestor, "impersonate", True, "", "v1", w.namespace, "serviceaccounts", name=w.name)
    if w.kind in ("User", "Group"):
        return Attributes(requestor, "impersonate", True, "", "v1", "", "users" if w.kind == "User" else "groups",
                          name=w.name)
    if w.kind == "UserExtra":
        return Attributes(requestor, "impersonate", True, "authentication.k8s.io", "v1", "", "userextras",
                          w.field_path, w.name)
    return Attributes(requestor, "impersonate", True, "authentication.k8s.io", "v1", "", "uids", name=w.name)


def _with_default_group(name: str, groups: list[str]) -> tuple[str, ...]:
    """``system:authenticated`` added unless (un)authenticated is already there;
    ``system:unauthenticated`` for the anonymous user."""
    if name == ANONYMOUS:
        return tuple(groups) if UNAUTHENTICATED in groups else (*groups, UNAUTHENTICATED)
    if AUTHENTICATED in groups or UNAUTHENTICATED in groups:
        return tuple(groups)
    return (*groups, AUTHENTICATED)


def impersonate(headers: Mapping[str, str], requestor: User, chain: Chain | None) -> User | None:
    """The user the request acts as, or None when it asks to impersonate no one. Raises the 400
    or 403 Kubernetes answers. ``chain`` None allows every impersonation (AlwaysAllow)."""
    if not asks_to_impersonate(headers):
        return None
    asked = wanted(headers)
    if not asked:
        return None
    groups_given = any(w.kind == "Group" for w in asked)
    name, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for w in asked:
        attrs = _attributes(requestor, w)
        if chain is not None:
            decision, reason = chain.authorize(attrs)
            if decision is not Decision.ALLOW:
                raise forbidden(attrs, reason)
        if w.kind == "ServiceAccount":
            name = f"{SERVICE_ACCOUNT_PREFIX}{w.namespace}:{w.name}"
            if not groups_given:
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{w.namespace}"]
        elif w.kind == "User":
            name = w.name
        elif w.kind == "Group":
            groups.append(w.name)
        elif w.kind == "UserExtra":
            extra.setdefault(w.field_path, []).append(w.name)
        else:
            uid = w.name
    return User(name, _with_default_group(name, groups), uid, extra)
