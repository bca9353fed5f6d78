"""kybernetes.api.scheduling: taints/tolerations and node selector/affinity matching."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.scheduling import (
    RequiredNodeAffinity,
    compile_term,
    find_untolerated_taint,
    node_matches_pod,
    node_view,
    tolerates,
    toleration_tuple,
    tolerations_tolerate_taint,
    tuples_tolerate_taint,
)

Obj = dict[str, Any]
TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(("toleration", "taint", "want"), [
    ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, TAINT, True),
    ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, TAINT, True),  # operator defaults to Equal
    ({"key": "dedicated", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}, TAINT, False),
    ({"key": "dedicated", "operator": "Equal", "effect": "NoSchedule"}, TAINT, False),
    ({"key": "dedicated", "operator": "Equal"}, {"key": "dedicated", "effect": "NoExecute"}, True),
    ({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, TAINT, True),
    ({"key": "dedicated", "operator": "Exists"}, TAINT, True),  # empty effect: every effect
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, TAINT, False),
    ({"key": "other", "operator": "Exists"}, TAINT, False),
    ({"operator": "Exists"}, TAINT, True),  # empty key with Exists: everything
    ({"operator": "Exists", "effect": "PreferNoSchedule"}, TAINT, False),
    # Empty key with Equal (validation forbids it): ToleratesTaint compares only the value.
    ({"operator": "Equal", "value": "gpu"}, TAINT, True),
    ({"operator": "Equal", "value": "cpu"}, TAINT, False),
    # Unknown operators tolerate nothing.
    ({"key": "dedicated", "operator": "Gt", "value": "gpu"}, TAINT, False),
    ({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
     {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}, True),
])
def test_toleration(toleration: Obj, taint: Obj, want: bool) -> None:
    assert tolerates(toleration, taint) is want
    assert tuples_tolerate_taint([toleration_tuple(toleration)], taint) is want
    assert tolerations_tolerate_taint(["junk", toleration], taint) is want


def test_any_toleration_will_do_and_none_tolerates_nothing() -> None:
    tols = [{"key": "a", "operator": "Exists"}, {"key": "dedicated", "value": "gpu"}]
    assert tolerations_tolerate_taint(tols, TAINT)
    assert not tolerations_tolerate_taint([], TAINT)
    assert not tuples_tolerate_taint([], TAINT)


@pytest.mark.parametrize(("taints", "tolerations", "effects", "want"), [
    ([TAINT], [], ("NoSchedule", "NoExecute"), 0),
    ([TAINT], [{"key": "dedicated", "operator": "Exists"}], ("NoSchedule", "NoExecute"), None),
    ([{"key": "soft", "effect": "PreferNoSchedule"}, TAINT], [], ("NoSchedule", "NoExecute"), 1),
    ([{"key": "soft", "effect": "PreferNoSchedule"}], [], ("NoSchedule", "NoExecute"), None),
    ([TAINT, {"key": "x", "effect": "NoExecute"}], [], ("NoExecute",), 1),
])
def test_find_untolerated_taint(taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...],
                                want: int | None) -> None:
    got = find_untolerated_taint(taints, tolerations, effects)
    assert got is (None if want is None else taints[want])


NODE = {"metadata": {"name": "n1", "labels": {"zone": "a", "size": "8", "gpu": ""}}}


def _affinity(*terms: Obj) -> Obj:
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}


def _expr(key: str, op: str, *values: str) -> Obj:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


@pytest.mark.parametrize(("spec", "want"), [
    ({}, True),
    ({"nodeSelector": {"zone": "a"}}, True),
    ({"nodeSelector": {"zone": "b"}}, False),
    ({"nodeSelector": {"zone": "a", "missing": "x"}}, False),
    (_affinity(_expr("zone", "In", "a", "b")), True),
    (_affinity(_expr("zone", "In", "b")), False),
    (_affinity(_expr("zone", "NotIn", "b")), True),
    (_affinity(_expr("missing", "NotIn", "b")), True),  # NotIn holds for an absent label
    (_affinity(_expr("gpu", "Exists")), True),
    (_affinity(_expr("missing", "Exists")), False),
    (_affinity(_expr("missing", "DoesNotExist")), True),
    (_affinity(_expr("zone", "DoesNotExist")), False),
    (_affinity(_expr("size", "Gt", "4")), True),
    (_affinity(_expr("size", "Gt", "8")), False),
    (_affinity(_expr("size", "Lt", "9")), True),
    (_affinity(_expr("zone", "Gt", "1")), False),  # a non-integer label never compares
    (_affinity(_expr("size", "Gt", "x")), False),
    (_affinity(_expr("size", "Gt", "1", "2")), False),  # Gt takes exactly one value
    (_affinity(_expr("zone", "Bogus", "a")), False),
    # Terms are ORed, requirements within a term ANDed; an empty term matches nothing.
    (_affinity(_expr("zone", "In", "b"), _expr("size", "Gt", "1")), True),
    (_affinity({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                     {"key": "size", "operator": "Lt", "values": ["2"]}]}), False),
    (_affinity({}), False),
    (_affinity(), False),  # required but no terms: nothing
    # matchFields: metadata.name with In/NotIn only.
    (_affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}), True),
    (_affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}), False),
    (_affinity({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}), True),
    (_affinity({"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}), False),
    (_affinity({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}), False),
    # nodeSelector AND affinity.
    ({"nodeSelector": {"zone": "b"}, **_affinity(_expr("zone", "In", "a"))}, False),
])
def test_node_affinity(spec: Obj, want: bool) -> None:
    assert node_matches_pod(NODE, spec) is want
    assert RequiredNodeAffinity({"spec": spec}).matches(node_view(NODE)) is want


@pytest.mark.parametrize(("terms", "names"), [
    ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}], {"a", "b"}),
    ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]},
      {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}], {"a", "c"}),
    ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}, _expr("zone", "In", "a")], None),
])
def test_required_affinity_names(terms: list[Obj], names: set[str] | None) -> None:
    assert RequiredNodeAffinity({"spec": _affinity(*terms)}).names == names
    assert RequiredNodeAffinity({"spec": {}}).empty


def test_node_view_of_a_broken_node_matches_like_an_unlabelled_one() -> None:
    view = node_view({"metadata": "junk"})
    assert view.name == "" and dict(view.labels) == {}
    assert compile_term(_expr("zone", "DoesNotExist"))(view)
