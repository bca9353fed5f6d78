"""The one error tree of kybernetes: Kubernetes ``Status`` errors.

Every failure a client can see is a :class:`StatusError`. It carries what the Kubernetes API
puts in a ``Status`` object (``code``, ``reason``, ``message``, ``details``) and renders itself
with :meth:`StatusError.status`. Lower layers (SQLite, etcd, gRPC, aiohttp) raise their own
exceptions; they are translated into this tree once, at the edge where they are caught.

::

    StatusError                      code  reason
    ├── BadRequest                   400   BadRequest
    ├── Unauthorized                 401   Unauthorized
    ├── Forbidden                    403   Forbidden
    ├── NotFound                     404   NotFound
    ├── MethodNotAllowed             405   MethodNotAllowed
    ├── NotAcceptable                406   NotAcceptable
    ├── AlreadyExists                409   AlreadyExists
    ├── Conflict                     409   Conflict
    ├── Gone / Expired               410   Gone / Expired
    ├── RequestEntityTooLarge        413   RequestEntityTooLarge
    ├── UnsupportedMediaType         415   UnsupportedMediaType
    ├── Invalid                      422   Invalid        (details.causes name the fields)
    ├── TooManyRequests              429   TooManyRequests
    ├── InternalError                500   InternalError
    ├── ServiceUnavailable           503   ServiceUnavailable
    └── Timeout                      504   Timeout
"""

from __future__ import annotations

from typing import Any


class StatusError(Exception):
    """An error that the API answers with a ``Status`` object.

    ``details`` is ``None`` where Kubernetes' constructor leaves ``Details`` nil (the field is
    then absent); an empty dict is a ``details`` of ``{}``, as Go writes a non-nil pointer to an
    empty ``StatusDetails``.
    """

    code: int = 500
    reason: str = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        reason: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.list_meta: dict[str, Any] = {}
        """The Status's own ``metadata`` (a ListMeta): set only where Kubernetes sets it, e.g. the
        fresh ``continue`` token of an expired one."""
        if reason is not None:
            self.reason = reason
        if code is not None:
            self.code = code

    def status(self) -> dict[str, Any]:
        """The ``meta.k8s.io/v1`` Status object for this error, fields in Kubernetes' order."""
        return status_object("Failure", self.message, self.reason, self.details, self.code, self.list_meta)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


_LIST_META_ORDER = ("selfLink", "resourceVersion", "continue", "remainingItemCount")


def status_object(status: str, message: str = "", reason: str = "", details: dict[str, Any] | None = None,
                  code: int = 0, list_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``Status`` exactly as Go's encoding/json writes ``metav1.Status``: fields in the order of
    the Go structs (Status, ListMeta, StatusDetails, StatusCause), empty ones left out
    (``omitempty``), ``metadata`` always there (a struct), ``details`` there when not ``None``."""
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": _ordered(list_meta or {}, _LIST_META_ORDER)}
    if status:
        out["status"] = status
    if message:
        out["message"] = message
    if reason:
        out["reason"] = reason
    if details is not None:
        out["details"] = _ordered(details, _DETAILS_ORDER, causes=True)
    if code:
        out["code"] = code
    return out


def _ordered(d: dict[str, Any], order: tuple[str, ...], causes: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in order:
        v = d.get(k)
        if v in (None, "", 0, []):
            continue
        if causes and k == "causes":
            v = [_ordered(c, _CAUSE_ORDER) for c in v]
        out[k] = v
    return out


def _details(kind: str | None, name: str | None, group: str | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    d.update({k: v for k, v in extra.items() if v is not None})
    return d


class BadRequest(StatusError):
    code = 400
    reason = "BadRequest"


class Unauthorized(StatusError):
    code = 401
    reason = "Unauthorized"


class Forbidden(StatusError):
    code = 403
    reason = "Forbidden"


class NotFound(StatusError):
    code = 404
    reason = "NotFound"

    @classmethod
    def of(cls, resource: str, name: str, group: str = "") -> NotFound:
        qualified = f"{resource}.{group}" if group else resource
        return cls(f'{qualified} "{name}" not found', details=_details(resource, name, group))

    @classmethod
    def no_resource(cls) -> NotFound:
        """NewGenericServerResponse's 404 for a path that names no resource (``details`` empty, not nil)."""
        return cls("the server could not find the requested resource", details={})


class MethodNotAllowed(StatusError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(StatusError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(StatusError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def of(cls, resource: str, name: str, group: str = "") -> AlreadyExists:
        qualified = f"{resource}.{group}" if group else resource
        return cls(f'{qualified} "{name}" already exists', details=_details(resource, name, group))


class Conflict(StatusError):
    code = 409
    reason = "Conflict"

    @classmethod
    def of(cls, resource: str, name: str, group: str = "", why: str = "") -> Conflict:
        qualified = f"{resource}.{group}" if group else resource
        why = why or "the object has been modified; please apply your changes to the latest version and try again"
        return cls(
            f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
            details=_details(resource, name, group),
        )


class Gone(StatusError):
    code = 410
    reason = "Gone"


class Expired(Gone):
    reason = "Expired"


class RequestEntityTooLarge(StatusError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(StatusError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(StatusError):
    """422: the object failed validation; ``causes`` name each field path."""

    code = 422
    reason = "Invalid"

    def __init__(
        self,
        kind: str,
        name: str,
        causes: list[dict[str, Any]],
        *,
        group: str = "",
        message: str | None = None,
    ) -> None:
        if message is None:
            # NewInvalid: the group-qualified kind, then the errors as utilerrors.Aggregate
            # prints them (duplicates once; brackets only around more than one).
            texts = list(dict.fromkeys(_cause_text(c) for c in causes))
            qualified = f"{kind}.{group}" if group else kind
            message = f'{qualified} "{name}" is invalid'
            if texts:
                message += ": " + (texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]")
        super().__init__(message, details=_details(kind, name, group, causes=causes or None))
        self.causes = causes


def _cause_text(cause: dict[str, Any]) -> str:
    field = cause.get("field")
    return f"{field}: {cause.get('message', '')}" if field else str(cause.get("message", ""))


class TooManyRequests(StatusError):
    """NewTooManyRequests always sets details (``retryAfterSeconds``, possibly none: ``{}``)."""

    code = 429
    reason = "TooManyRequests"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, retry_after: int = 0) -> None:
        details = dict(details or {})
        if retry_after:
            details["retryAfterSeconds"] = retry_after
        super().__init__(message, details=details)


class InternalError(StatusError):
    code = 500
    reason = "InternalError"

    @classmethod
    def store_out_of_space(cls, cause: str) -> InternalError:
        """The store had no room for a write (NewInternalError of the store's error, as
        kube-apiserver answers etcd's "mvcc: database space exceeded"): nothing was written."""
        return cls(f"Internal error occurred: {cause}", details={"causes": [{"message": cause}]})


class ServiceUnavailable(StatusError):
    code = 503
    reason = "ServiceUnavailable"

    STORE_RETRY_AFTER = 2
    """Seconds kube-apiserver tells a client to wait when its storage is unreachable."""

    @classmethod
    def store_unreachable(cls, resource: str = "", group: str = "", operation: str = "") -> ServiceUnavailable:
        """The datastore could not be reached. Kube-apiserver's words and retry hint
        (storage/errors InterpretXError -> NewServerTimeout(resource, operation, 2)), answered as a
        503 so that clients and load balancers see the server, not the request, is at fault."""
        if resource and operation:
            qualified = f"{resource}.{group}" if group else resource
            return cls(f"The {operation} operation against {qualified} could not be completed at this time, "
                       "please try again.",
                       details=_details(qualified, operation, retryAfterSeconds=cls.STORE_RETRY_AFTER))
        return cls("the datastore is unavailable, please try again",
                   details={"retryAfterSeconds": cls.STORE_RETRY_AFTER})


class Timeout(StatusError):
    code = 504
    reason = "Timeout"


__all__ = [
    "AlreadyExists",
    "BadRequest",
    "Conflict",
    "Expired",
    "Forbidden",
    "Gone",
    "InternalError",
    "Invalid",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "RequestEntityTooLarge",
    "ServiceUnavailable",
    "StatusError",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "status_object",
]
