"""What a Pod Security check is and what it answers (``pod-security-admission/policy``:
``checks.go``, ``helpers.go``, ``visitor.go``).

A :class:`Check` has an ID, a level and one or more :class:`VersionedCheck` (the check as it
applies from a minimum version on; a restricted one may replace baseline checks by ID). Each
check function takes the pod's metadata and spec (plain dicts, as stored) and returns a
:class:`CheckResult`; :func:`aggregate` folds the results of one evaluation into the reasons and
details the admission messages are made of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.podsecurity.levels import Version


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    forbidden_reason: str = ""
    forbidden_detail: str = ""


ALLOWED = CheckResult(True)

CheckFn = Callable[[Obj, Obj], CheckResult]
"""``(pod metadata, pod spec) -> CheckResult``."""


@dataclass(frozen=True)
class VersionedCheck:
    minimum_version: Version
    check_pod: CheckFn
    override_check_ids: tuple[str, ...] = ()
    """Baseline checks this restricted one replaces from this version on."""


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    versions: tuple[VersionedCheck, ...]
    """In strictly increasing minimum version."""


UNKNOWN_FORBIDDEN_REASON = "unknown forbidden reason"


@dataclass
class AggregateResult:
    allowed: bool = True
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def forbidden_reason(self) -> str:
        """The reasons, comma-separated (what namespace-label warnings group pods by)."""
        return ", ".join(self.reasons)

    def forbidden_detail(self) -> str:
        """``reason (detail), reason (detail), ...`` (a detail-less reason stands alone)."""
        return ", ".join(f"{r} ({d})" if d else r for r, d in zip(self.reasons, self.details, strict=True))


def aggregate(results: list[CheckResult]) -> AggregateResult:
    """``AggregateCheckResults``: the failed results' reasons and details, in order."""
    out = AggregateResult()
    for result in results:
        if not result.allowed:
            out.reasons.append(result.forbidden_reason or UNKNOWN_FORBIDDEN_REASON)
            out.details.append(result.forbidden_detail)
    out.allowed = not out.reasons
    return out


# --- helpers the checks share ---------------------------------------------------------------

def as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, then containers, then ephemeral containers (``visitContainers``)."""
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(kind) or ():
            if isinstance(container, dict):
                yield container


def security_context(container: Obj) -> Obj | None:
    """The container's (or pod spec's) securityContext, or None when unset."""
    sc = container.get("securityContext")
    return sc if isinstance(sc, dict) else None


def name_of(container: Obj) -> str:
    return str(container.get("name") or "")


def pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def join_quote(items: list[str]) -> str:
    """``"a", "b"`` (``joinQuote``; no escaping, as there)."""
    return '"' + '", "'.join(items) + '"' if items else ""


def containers_phrase(names: list[str]) -> str:
    """``container "a"`` / ``containers "a", "b"``."""
    return f'{pluralize("container", "containers", len(names))} {join_quote(names)}'


def is_windows(spec: Obj) -> bool:
    """Whether the pod declares ``spec.os.name: windows`` (restricted checks skip Linux-only rules)."""
    return as_dict(spec.get("os")).get("name") == "windows"
