"""APIService defaults, validation (kube-aggregator's wording) and printing."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from kybernetes.apiserver.printers import apiregistration as printers
from kybernetes.apiserver.registry.apiregistration import APIServiceStrategy

STRATEGY = APIServiceStrategy()


def apiservice(name: str = "v1beta1.metrics.k8s.io", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                            "versionPriority": 100, "service": {"namespace": "kube-system", "name": "metrics"}}
    base.update(spec)
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
            "spec": {k: val for k, val in base.items() if val is not None}}


def errors_of(obj: dict[str, Any]) -> list[str]:
    STRATEGY.default(obj)
    return [str(e) for e in STRATEGY.validate(obj)]


def test_a_valid_apiservice_passes_and_its_port_defaults_to_443() -> None:
    obj = apiservice()
    assert errors_of(obj) == []
    assert obj["spec"]["service"]["port"] == 443
    assert errors_of(apiservice("v1.", group=None, version="v1", service=None)) == []


def test_the_name_must_be_version_dot_group() -> None:
    (err,) = errors_of(apiservice("metrics"))
    assert err == 'metadata.name: Invalid value: "metrics": must be `spec.version+"."+spec.group`: ' \
                  '"v1beta1.metrics.k8s.io"'


def test_priorities_and_group_rules() -> None:
    errs = errors_of(apiservice("v1beta1.", group=None, groupPriorityMinimum=0, versionPriority=1001))
    assert "spec.group: Required value: only v1 may have an empty group and it better be legacy kube" in errs
    assert "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000" in errs
    assert "spec.versionPriority: Invalid value: 1001: must be positive and less than 1000" in errs


def test_tls_rules_for_local_and_service_apiservices() -> None:
    errs = errors_of(apiservice(service=None, caBundle="AAAA", insecureSkipTLSVerify=True))
    assert errs == ['spec.caBundle: Invalid value: "3 bytes": local APIServices may not have a caBundle',
                    "spec.insecureSkipTLSVerify: Invalid value: true: local APIServices may not have "
                    "insecureSkipTLSVerify"]
    errs = errors_of(apiservice(caBundle="AAAA", insecureSkipTLSVerify=True))
    assert errs == ["spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present"]
    errs = errors_of(apiservice(service={}))
    assert errs == ["spec.service.namespace: Required value", "spec.service.name: Required value"]


def test_status_is_written_only_through_status_and_checked() -> None:
    old = apiservice()
    STRATEGY.prepare_for_create(old)
    assert old["status"] == {}
    new = copy.deepcopy(old)
    new["status"] = {"conditions": [{"type": "Available", "status": "Maybe"}]}
    STRATEGY.prepare_for_update(new, old)
    assert new["status"] == {}
    new["status"] = {"conditions": [{"type": "Available", "status": "Maybe"}]}
    (err,) = STRATEGY.validate_status_update(new, old)
    assert str(err) == ('status.conditions[0].status: Unsupported value: "Maybe": supported values: '
                        '"True", "False", "Unknown"')


def test_printer_columns() -> None:
    now = datetime.now(UTC)
    local = apiservice("v1.", service=None)
    local["status"] = {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}
    down = apiservice()
    down["status"] = {"conditions": [{"type": "Available", "status": "False", "reason": "ServiceNotFound"}]}
    cells = [printers.APISERVICE.cells(o, now)[:3] for o in (local, down, apiservice())]
    assert cells == [["v1.", "Local", "True"], ["v1beta1.metrics.k8s.io", "kube-system/metrics",
                                                "False (ServiceNotFound)"],
                     ["v1beta1.metrics.k8s.io", "kube-system/metrics", "Unknown"]]
