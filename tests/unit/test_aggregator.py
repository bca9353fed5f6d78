"""The aggregation layer's pure parts: front-proxy headers, discovery merging, condition bookkeeping."""

from __future__ import annotations

from typing import Any

from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.aggregator import available, discovery, frontproxy
from kybernetes.apiserver.registry.request import User


def apiservice(group: str, version: str, gpm: int, vp: int) -> dict[str, Any]:
    return {"metadata": {"name": f"{version}.{group}"},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": gpm, "versionPriority": vp,
                     "service": {"namespace": "ns", "name": "svc", "port": 443}}}


def test_user_headers_are_client_gos() -> None:
    user = User("alice", ("a", "system:authenticated"), extra={"scopes": ["x", "y"], "acme.com/project": ["p"]})
    assert frontproxy.user_headers(user) == [
        ("X-Remote-User", "alice"), ("X-Remote-Group", "a"), ("X-Remote-Group", "system:authenticated"),
        ("X-Remote-Extra-scopes", "x"), ("X-Remote-Extra-scopes", "y"), ("X-Remote-Extra-acme.com%2Fproject", "p")]
    assert frontproxy.header_key_escape("100%") == "100%25"
    config = frontproxy.FrontProxyConfig()
    for name in ("Authorization", "Impersonate-User", "impersonate-extra-x", "X-Remote-User", "x-remote-extra-a"):
        assert frontproxy.is_front_proxy_header(name, config), name
    assert not frontproxy.is_front_proxy_header("Accept", config)


def test_remote_groups_go_in_by_priority_and_versions_by_version_priority() -> None:
    cat = Catalogue.builtin()
    remote = discovery.remote_groups({o["metadata"]["name"]: o for o in (
        apiservice("metrics.example.com", "v1beta1", 100, 100),
        apiservice("high.example.com", "v1alpha1", 17850, 5),
        apiservice("high.example.com", "v1", 17850, 10),
        apiservice("high.example.com", "v2", 17850, 10))})
    groups = discovery.api_group_list(cat, remote)["groups"]
    names = [g["name"] for g in groups]
    assert names[:3] == ["apiregistration.k8s.io", "high.example.com", "apps"]
    assert names[-1] == "metrics.example.com"
    assert [v["version"] for v in groups[1]["versions"]] == ["v2", "v1", "v1alpha1"]
    assert discovery.api_group(cat, "high.example.com", remote)["preferredVersion"]["version"] == "v2"  # type: ignore[index]
    assert discovery.api_group(cat, "apps", remote) is None


def test_a_group_served_both_ways_keeps_its_place_and_its_local_versions() -> None:
    cat = Catalogue.builtin()
    remote = discovery.remote_groups({"v1beta1.apps": apiservice("apps", "v1beta1", 100, 100)})
    groups = discovery.api_group_list(cat, remote)["groups"]
    apps = next(g for g in groups if g["name"] == "apps")
    assert [v["version"] for v in apps["versions"]] == ["v1", "v1beta1"] and apps["preferredVersion"]["version"] == "v1"
    assert [g["name"] for g in groups].index("apps") == 1
    doc = discovery.api_group(cat, "apps", remote)
    assert doc is not None and [v["version"] for v in doc["versions"]] == ["v1", "v1beta1"]
    fetched = {"kind": "APIResourceList", "resources": []}
    agg = discovery.aggregated(cat, remote, {"v1beta1.apps": (fetched, True)})
    apps_item = next(i for i in agg["items"] if i["metadata"]["name"] == "apps")
    assert [v["version"] for v in apps_item["versions"]] == ["v1", "v1beta1"]


def test_an_apiresourcelist_becomes_aggregated_discovery() -> None:
    doc = {"kind": "APIResourceList", "groupVersion": "m.example.com/v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"],
         "shortNames": ["pm"]},
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get"]}]}
    out = discovery.version_discovery("m.example.com", "v1", doc, fresh=False)
    assert out == {"version": "v1", "freshness": "Stale", "resources": [{
        "resource": "pods", "responseKind": {"group": "m.example.com", "version": "v1", "kind": "PodMetrics"},
        "scope": "Namespaced", "singularResource": "pod", "verbs": ["get", "list"], "shortNames": ["pm"],
        "subresources": [{"subresource": "status", "verbs": ["get"],
                          "responseKind": {"group": "m.example.com", "version": "v1", "kind": "PodMetrics"}}]}]}


def test_the_condition_moves_its_time_only_when_its_status_changes() -> None:
    obj = apiservice("m.example.com", "v1", 100, 100)
    passed = {"type": "Available", "status": "True", "reason": "Passed", "message": "all checks passed"}
    conds = available.with_condition(obj, passed)
    assert conds is not None and conds[0]["lastTransitionTime"]
    obj["status"] = {"conditions": [{**conds[0], "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    assert available.with_condition(obj, passed) is None
    failed = {"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck", "message": "x"}
    moved = available.with_condition(obj, failed)
    assert moved is not None and moved[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    obj["status"] = {"conditions": moved and [{**moved[0], "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    again = available.with_condition(obj, {**failed, "message": "y"})
    assert again is not None and again[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
