"""The RuntimeClass admission plugin's toleration merge (Kubernetes' ``tolerations.MergeTolerations``)."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.apiserver.admission.runtimeclass import merge_tolerations

EXISTS_ALL = {"operator": "Exists"}
NO_SCHEDULE = {"key": "runtime", "operator": "Exists", "effect": "NoSchedule"}
ANY_EFFECT = {"key": "runtime", "operator": "Exists"}
EQUAL = {"key": "runtime", "operator": "Equal", "value": "gvisor", "effect": "NoSchedule"}
NOT_READY_300 = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300}
NOT_READY_60 = {**NOT_READY_300, "tolerationSeconds": 60}


@pytest.mark.parametrize(("first", "second", "merged"), [
    ([], [], []),
    ([EQUAL], [], [EQUAL]),
    ([], [EQUAL], [EQUAL]),
    ([EQUAL], [EQUAL], [EQUAL]),  # equal: the first is kept
    ([EQUAL], [NO_SCHEDULE], [NO_SCHEDULE]),  # Exists covers any value
    ([NO_SCHEDULE], [ANY_EFFECT], [ANY_EFFECT]),  # an empty effect covers every effect
    ([EQUAL, NOT_READY_300], [EXISTS_ALL], [EXISTS_ALL]),  # empty key with Exists covers everything
    ([NOT_READY_60], [NOT_READY_300], [NOT_READY_300]),  # a longer tolerationSeconds covers a shorter one
    ([NOT_READY_300], [NOT_READY_60], [NOT_READY_300]),
    ([EQUAL], [{**EQUAL, "value": "kata"}], [EQUAL, {**EQUAL, "value": "kata"}]),
])
def test_merge_tolerations(first: list[dict[str, Any]], second: list[dict[str, Any]],
                           merged: list[dict[str, Any]]) -> None:
    assert merge_tolerations(first, second) == merged


def test_pod_runtime_class_name_and_overhead_are_validated() -> None:
    from kybernetes.api.validation import Path
    from kybernetes.apiserver.registry.core.podvalidation import validate_pod_spec

    spec = {"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Always",
                            "terminationMessagePolicy": "File"}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
    assert validate_pod_spec({**spec, "runtimeClassName": "gvisor", "overhead": {"cpu": "250m"}}, Path("spec")) == []
    errs = [str(e) for e in validate_pod_spec({**spec, "runtimeClassName": "Bad_Name", "overhead": {"cpu": "-1"}},
                                              Path("spec"))]
    assert errs[0].startswith('spec.runtimeClassName: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
    assert errs[1:] == ['spec.overhead.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0']
