"""Which nodes a pod may run on: taints and tolerations, node selectors and node affinity.

The Python home of Kubernetes' ``k8s.io/component-helpers/scheduling/corev1`` (``helpers.go``:
``TolerationsTolerateTaint``, ``FindMatchingUntoleratedTaint``; ``nodeaffinity/nodeaffinity.go``:
``GetRequiredNodeAffinity``, ``NodeSelector.Match``) and of ``Toleration.ToleratesTaint``
(``k8s.io/api/core/v1/toleration.go``). The scheduler, the DaemonSet controller and node
lifecycle's taint eviction all decide with these, so they cannot disagree.

**Tolerations.** A toleration tolerates a taint when its effect is empty or equal, its key is
empty or equal, and its operator is ``Exists``, or ``Equal`` (the default) with an equal value;
any other operator tolerates nothing. The rule has one implementation over the compiled form
:data:`TolerationTuple` ``(key, operator, value, effect)`` (the scheduler compiles each pod's
tolerations once and checks thousands of taints against them); the dict form
(:func:`tolerates`, :func:`tolerations_tolerate_taint`) compiles and calls it.

**Node affinity.** ``nodeSelector`` (every label equal) AND the required
``nodeSelectorTerms``, ORed; within a term, ``matchExpressions`` (on labels) and
``matchFields`` (``metadata.name`` only) are ANDed, and a term with neither matches nothing.
Operators: In, NotIn (true when the label is absent), Exists, DoesNotExist, and Gt/Lt, which
compare integers (a non-integer label or a value list that is not one integer never matches);
matchFields takes only In and NotIn. Terms are compiled once into matchers over a
:class:`NodeLike` (the scheduler's ``NodeInfo``, or :func:`node_view` of a Node object).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

TolerationTuple = tuple[str, str, str, str]
"""A compiled toleration: (key, operator, value, effect), absent fields as ``""``, operator
defaulted to ``Equal``."""


# --- taints and tolerations ----------------------------------------------------------------------


def toleration_tuple(t: Mapping[str, Any]) -> TolerationTuple:
    """Compile one toleration for :func:`tuples_tolerate_taint`."""
    return (t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "")


def tuples_tolerate_taint(tolerations: Iterable[TolerationTuple], taint: Mapping[str, Any]) -> bool:
    """Whether any compiled toleration tolerates ``taint`` (``ToleratesTaint``, the one rule)."""
    tkey = taint.get("key") or ""
    teffect = taint.get("effect") or ""
    tvalue = taint.get("value") or ""
    for key, op, value, effect in tolerations:
        if effect and effect != teffect:
            continue
        if key and key != tkey:
            continue
        if op == "Exists" or (op == "Equal" and value == tvalue):
            return True
    return False


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """``Toleration.ToleratesTaint`` for one toleration object."""
    return tuples_tolerate_taint((toleration_tuple(toleration),), taint)


def tolerations_tolerate_taint(tolerations: Iterable[Any], taint: Mapping[str, Any]) -> bool:
    """``TolerationsTolerateTaint``: some toleration (non-dict entries ignored) tolerates ``taint``."""
    return tuples_tolerate_taint((toleration_tuple(t) for t in tolerations if isinstance(t, dict)), taint)


def find_untolerated_taint(taints: Iterable[Any], tolerations: Iterable[Any],
                           effects: Sequence[str] = ("NoSchedule", "NoExecute")) -> dict[str, Any] | None:
    """``FindMatchingUntoleratedTaint``: the first taint with one of ``effects`` that no toleration tolerates."""
    compiled = [toleration_tuple(t) for t in tolerations if isinstance(t, dict)]
    for taint in taints:
        if isinstance(taint, dict) and taint.get("effect") in effects and not tuples_tolerate_taint(compiled, taint):
            return taint
    return None


# --- node selectors and node affinity ------------------------------------------------------------


class NodeLike(Protocol):
    """What node matching reads: the node's name and labels."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


class NodeView:
    """:class:`NodeLike` over a Node object."""

    __slots__ = ("labels", "name")

    def __init__(self, name: str, labels: Mapping[str, str]) -> None:
        self.name = name
        self.labels = labels


def node_view(node: Mapping[str, Any]) -> NodeView:
    meta = node.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    labels = meta.get("labels")
    return NodeView(str(meta.get("name") or ""), labels if isinstance(labels, dict) else {})


NodeMatcher = Callable[[NodeLike], bool]


def _never(node: NodeLike) -> bool:
    return False


def _int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def _compile_field(key: str, op: str, vset: frozenset[str]) -> NodeMatcher:
    if key != "metadata.name":
        return (lambda n: True) if op == "NotIn" else _never
    if op == "In":
        return lambda n: n.name in vset
    if op == "NotIn":
        return lambda n: n.name not in vset
    return _never


def compile_requirement(req: Mapping[str, Any], field: bool = False) -> NodeMatcher:
    """One ``NodeSelectorRequirement`` (a label expression, or with ``field`` a matchFields one)."""
    key = req.get("key") or ""
    op = req.get("operator") or ""
    values = [str(v) for v in req.get("values") or ()]
    vset = frozenset(values)
    if field:
        return _compile_field(key, op, vset)
    if op == "In":
        return lambda n: n.labels.get(key) in vset
    if op == "NotIn":
        return lambda n: n.labels.get(key) not in vset
    if op == "Exists":
        return lambda n: key in n.labels
    if op == "DoesNotExist":
        return lambda n: key not in n.labels
    if op in ("Gt", "Lt") and len(values) == 1 and _int(values[0]) is not None:
        bound = int(values[0])
        gt = op == "Gt"

        def compare(n: NodeLike) -> bool:
            v = _int(n.labels.get(key))
            return v is not None and (v > bound if gt else v < bound)
        return compare
    return _never


def compile_term(term: Mapping[str, Any]) -> NodeMatcher:
    """One ``NodeSelectorTerm``: every expression and field requirement; an empty term matches nothing."""
    parts = [compile_requirement(r) for r in term.get("matchExpressions") or ()]
    parts += [compile_requirement(r, field=True) for r in term.get("matchFields") or ()]
    if not parts:
        return _never
    if len(parts) == 1:
        return parts[0]
    return lambda n: all(p(n) for p in parts)


def compile_terms(terms: Sequence[Mapping[str, Any]]) -> NodeMatcher:
    """A ``NodeSelector``: any of its terms (none: nothing matches)."""
    compiled = [compile_term(t) for t in terms]
    return lambda n: any(m(n) for m in compiled)


def _names_from_terms(terms: Sequence[Mapping[str, Any]]) -> set[str] | None:
    """Node names when every term restricts metadata.name with In; else None (no restriction)."""
    out: set[str] = set()
    for t in terms:
        names: set[str] | None = None
        for f in t.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In":
                vals = set(f.get("values") or ())
                names = vals if names is None else names & vals
        if names is None:
            return None
        out |= names
    return out


def required_terms(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec's ``requiredDuringSchedulingIgnoredDuringExecution`` node selector, if set."""
    affinity = spec.get("affinity") or {}
    req = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    return req if isinstance(req, dict) else None


class RequiredNodeAffinity:
    """``nodeaffinity.GetRequiredNodeAffinity``: a pod's ``nodeSelector`` AND its required terms.

    ``names`` is the set of node names the required terms allow when every term pins
    ``metadata.name In [...]`` (the scheduler's PreFilter narrows to them), else ``None``.
    """

    __slots__ = ("names", "selector", "terms")

    def __init__(self, pod: Mapping[str, Any]) -> None:
        self._init_spec(pod.get("spec") or {})

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RequiredNodeAffinity:
        self = cls.__new__(cls)
        self._init_spec(spec)
        return self

    def _init_spec(self, spec: Mapping[str, Any]) -> None:
        self.selector: dict[str, str] = dict(spec.get("nodeSelector") or {})
        req = required_terms(spec)
        terms = (req or {}).get("nodeSelectorTerms") or []
        self.terms: NodeMatcher | None = compile_terms(terms) if req is not None else None
        self.names: set[str] | None = _names_from_terms(terms) if req is not None else None

    @property
    def empty(self) -> bool:
        return not self.selector and self.terms is None

    def matches(self, node: NodeLike) -> bool:
        labels = node.labels
        for k, v in self.selector.items():
            if labels.get(k) != v:
                return False
        return self.terms is None or self.terms(node)


def node_matches_pod(node: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> bool:
    """Whether a Node object satisfies a pod spec's node selector and required node affinity."""
    return RequiredNodeAffinity.from_spec(pod_spec).matches(node_view(node))
