"""CRD conversion by webhook on a real API server, with a real HTTPS conversion webhook the test starts.

The CRDs here serve ``v1`` (the storage version, ``spec.host``) and ``v2`` (the same field renamed
``spec.hostname``); the webhook (:func:`convert`, on :class:`.webhookserver.WebhookServer`) renames
it. Each CRD has a group of its own, so the shared server's other tests never meet it.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kybernetes.testing import ServerProcess, free_port

from .webhookserver import CA, WebhookServer, host_address

pytestmark = pytest.mark.integration

GROUP = "conv.example.com"


def convert(request: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    """A conversion webhook: v1 ``spec.host`` <-> v2 ``spec.hostname``; it adds a label, which
    the API server keeps (a webhook may change labels and annotations)."""
    desired = request["desiredAPIVersion"]
    out = []
    for obj in request["objects"]:
        new = copy.deepcopy(obj)
        spec = new.setdefault("spec", {})
        if desired.endswith("/v2") and "host" in spec:
            spec["hostname"] = spec.pop("host")
        elif desired.endswith("/v1") and "hostname" in spec:
            spec["host"] = spec.pop("hostname")
        new["apiVersion"] = desired
        new["metadata"].setdefault("labels", {})["converted"] = "yes"
        out.append(new)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": request["uid"], "result": {"status": "Success"}, "convertedObjects": out}}


def _schema(field: str) -> dict[str, Any]:
    return {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {field: {"type": "string"}, "port": {"type": "integer"}}}}}}


def crd_doc(plural: str, kind: str, url: str, ca: CA, storage: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {"name": "v1", "served": True, "storage": storage == "v1", "schema": _schema("host")},
                {"name": "v2", "served": True, "storage": storage == "v2", "schema": _schema("hostname")},
            ],
            "conversion": {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {"url": url, "caBundle": ca.bundle}}},
        },
    }


def install(server: ServerProcess, doc: dict[str, Any]) -> None:
    """Create the CRD and wait until both its versions are served."""
    k = server.kubectl
    k("apply", "-f", "-", input=json.dumps(doc))
    name = doc["metadata"]["name"]
    k("wait", "--for=condition=Established", f"crd/{name}", "--timeout=10s")
    plural = doc["spec"]["names"]["plural"]
    deadline = time.time() + 10
    while k("get", f"{plural}.v2.{GROUP}", "-A", check=False).returncode != 0:
        assert time.time() < deadline, "CRD not served within 10 s"
        time.sleep(0.2)


def widget(version: str, name: str, host: str, kind: str = "Widget") -> str:
    field = "host" if version == "v1" else "hostname"
    return json.dumps({"apiVersion": f"{GROUP}/{version}", "kind": kind, "metadata": {"name": name},
                       "spec": {field: host, "port": 80}})


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("conversion-ca"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def hooks(ca: CA) -> Iterator[WebhookServer]:
    srv = WebhookServer(ca)
    srv.handlers["/convert"] = convert
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def widgets(server: ServerProcess, ca: CA, hooks: WebhookServer) -> Iterator[str]:
    install(server, crd_doc("widgets", "Widget", hooks.url("/convert"), ca))
    yield "widgets"
    server.kubectl("delete", "crd", f"widgets.{GROUP}", "--ignore-not-found", "--wait=false")


def get_json(server: ServerProcess, *args: str) -> Any:
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def test_create_in_v2_is_stored_in_v1_and_read_in_both(server: ServerProcess, namespace: str, widgets: str,
                                                        hooks: WebhookServer, api: Any) -> None:
    k = server.kubectl
    hooks.received.clear()
    made = json.loads(k("-n", namespace, "create", "-f", "-", "-o", "json", input=widget("v2", "w1", "a.example")).stdout)
    # The answer is what was stored (v1), read back in v2.
    assert made["apiVersion"] == f"{GROUP}/v2" and made["spec"] == {"hostname": "a.example", "port": 80}
    reviews = hooks.received["/convert"]
    assert [r["request"]["desiredAPIVersion"] for r in reviews] == [f"{GROUP}/v1", f"{GROUP}/v2"]
    sent = reviews[0]["request"]["objects"]
    assert len(sent) == 1 and sent[0]["apiVersion"] == f"{GROUP}/v2" and sent[0]["spec"]["hostname"] == "a.example"
    assert reviews[0]["apiVersion"] == "apiextensions.k8s.io/v1" and reviews[0]["kind"] == "ConversionReview"

    v1 = get_json(server, "-n", namespace, f"widgets.v1.{GROUP}", "w1")
    assert v1["apiVersion"] == f"{GROUP}/v1" and v1["spec"] == {"host": "a.example", "port": 80}
    assert v1["metadata"]["labels"] == {"converted": "yes"}  # the webhook's label was stored
    v2 = get_json(server, "-n", namespace, f"widgets.v2.{GROUP}", "w1")
    assert v2["spec"] == {"hostname": "a.example", "port": 80}
    assert v2["metadata"]["uid"] == v1["metadata"]["uid"]
    assert v2["metadata"]["resourceVersion"] == v1["metadata"]["resourceVersion"]

    from kubernetes import client

    objs = client.CustomObjectsApi(api)
    got = objs.get_namespaced_custom_object(GROUP, "v2", namespace, "widgets", "w1")
    assert got["spec"]["hostname"] == "a.example" and "host" not in got["spec"]
    got = objs.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w1")
    assert got["spec"]["host"] == "a.example"


def test_list_and_watch_in_the_other_version(server: ServerProcess, namespace: str, widgets: str,
                                             hooks: WebhookServer, api: Any) -> None:
    from kubernetes import client, watch

    objs = client.CustomObjectsApi(api)
    for i in range(3):
        objs.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets",
                                             json.loads(widget("v1", f"l{i}", f"h{i}.example")))
    hooks.received.clear()
    listed = objs.list_namespaced_custom_object(GROUP, "v2", namespace, "widgets")
    assert listed["apiVersion"] == f"{GROUP}/v2" and listed["kind"] == "WidgetList"
    assert sorted(o["spec"]["hostname"] for o in listed["items"]) == ["h0.example", "h1.example", "h2.example"]
    assert {o["apiVersion"] for o in listed["items"]} == {f"{GROUP}/v2"}
    # One review for the page's objects.
    reviews = hooks.received["/convert"]
    assert len(reviews) == 1 and len(reviews[0]["request"]["objects"]) == 3

    table = server.kubectl("-n", namespace, "get", f"widgets.v2.{GROUP}", "--no-headers").stdout
    assert sorted(line.split()[0] for line in table.splitlines()) == ["l0", "l1", "l2"]

    rv = listed["metadata"]["resourceVersion"]
    seen: list[tuple[str, dict[str, Any]]] = []

    def watch_v2() -> None:
        w = watch.Watch()
        for ev in w.stream(objs.list_namespaced_custom_object, GROUP, "v2", namespace, "widgets",
                           resource_version=rv, timeout_seconds=20):
            seen.append((ev["type"], ev["object"]))
            if len(seen) == 2:
                w.stop()

    t = threading.Thread(target=watch_v2)
    t.start()
    time.sleep(0.5)  # the watch opens from rv: events written meanwhile are not lost either
    objs.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", json.loads(widget("v1", "wt", "w.example")))
    objs.delete_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "wt")
    t.join(25)
    assert [(t_, o["apiVersion"], o["spec"]) for t_, o in seen] == [
        ("ADDED", f"{GROUP}/v2", {"hostname": "w.example", "port": 80}),
        ("DELETED", f"{GROUP}/v2", {"hostname": "w.example", "port": 80})]


def test_update_through_v2(server: ServerProcess, namespace: str, widgets: str, api: Any) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=widget("v1", "u1", "old.example"))
    k("-n", namespace, "patch", f"widgets.v2.{GROUP}", "u1", "--type=merge", "-p", '{"spec":{"hostname":"new.example"}}')
    v1 = get_json(server, "-n", namespace, f"widgets.v1.{GROUP}", "u1")
    assert v1["spec"] == {"host": "new.example", "port": 80}
    assert v1["metadata"]["generation"] == 2

    from kubernetes import client

    objs = client.CustomObjectsApi(api)
    cur = objs.get_namespaced_custom_object(GROUP, "v2", namespace, "widgets", "u1")
    cur["spec"]["port"] = 8080
    replaced = objs.replace_namespaced_custom_object(GROUP, "v2", namespace, "widgets", "u1", cur)
    assert replaced["apiVersion"] == f"{GROUP}/v2" and replaced["spec"] == {"hostname": "new.example", "port": 8080}
    v1 = get_json(server, "-n", namespace, f"widgets.v1.{GROUP}", "u1")
    assert v1["spec"] == {"host": "new.example", "port": 8080}
    # v2's own schema validates requests in v2: v1's field is unknown there and pruned.
    k("-n", namespace, "patch", f"widgets.v2.{GROUP}", "u1", "--type=merge", "-p", '{"spec":{"host":"x"}}')
    assert get_json(server, "-n", namespace, f"widgets.v1.{GROUP}", "u1")["spec"]["host"] == "new.example"


def test_stored_versions(server: ServerProcess, ca: CA, hooks: WebhookServer, namespace: str) -> None:
    doc = crd_doc("versioneds", "Versioned", hooks.url("/convert"), ca)
    install(server, doc)
    try:
        name = f"versioneds.{GROUP}"
        assert get_json(server, "crd", name)["status"]["storedVersions"] == ["v1"]
        server.kubectl("-n", namespace, "create", "-f", "-", input=widget("v1", "old", "o.example", "Versioned"))
        server.kubectl("apply", "-f", "-", input=json.dumps(crd_doc("versioneds", "Versioned", hooks.url("/convert"),
                                                                  ca, storage="v2")))
        assert get_json(server, "crd", name)["status"]["storedVersions"] == ["v1", "v2"]
        # The object written in v1 is still read in both versions, converted on the way.
        deadline = time.time() + 10
        while True:
            got = get_json(server, "-n", namespace, f"versioneds.v2.{GROUP}", "old")
            if got["spec"] == {"hostname": "o.example", "port": 80} or time.time() > deadline:
                break
            time.sleep(0.2)
        assert got["spec"] == {"hostname": "o.example", "port": 80}
    finally:
        server.kubectl("delete", "crd", f"versioneds.{GROUP}", "--ignore-not-found", "--wait=false")


def test_webhook_down_fails_only_its_requests(server: ServerProcess, ca: CA, namespace: str, widgets: str) -> None:
    down = WebhookServer(ca)
    down.handlers["/convert"] = convert
    url = down.url("/convert")
    install(server, crd_doc("gadgets", "Gadget", url, ca))
    k = server.kubectl
    try:
        k("-n", namespace, "create", "-f", "-", input=widget("v2", "g1", "g.example", "Gadget"))
        down.stop()
        res = k("-n", namespace, "get", f"gadgets.v2.{GROUP}", "g1", check=False)
        assert res.returncode != 0
        assert res.stderr.strip().startswith(
            f'Error from server: conversion webhook for {GROUP}/v1, Kind=Gadget failed: Post "{url}?timeout=30s": ')
        # A write in v2 fails whole: nothing is stored.
        res = k("-n", namespace, "create", "-f", "-", input=widget("v2", "g2", "x.example", "Gadget"), check=False)
        assert "conversion webhook for" in res.stderr and f"{GROUP}/v2, Kind=Gadget failed" in res.stderr
        # So does a dry run: Kubernetes' dry-run storage converts as storing would.
        res = k("-n", namespace, "create", "--dry-run=server", "-f", "-", input=widget("v2", "g3", "x", "Gadget"),
                check=False)
        assert res.returncode != 0 and f"conversion webhook for {GROUP}/v2, Kind=Gadget failed" in res.stderr
        names = [o["metadata"]["name"] for o in get_json(server, "-n", namespace, f"gadgets.v1.{GROUP}")["items"]]
        assert names == ["g1"]
        # A watch in v2 ends with an ERROR event carrying the Status.
        raw = k("get", "--raw", f"/apis/{GROUP}/v2/namespaces/{namespace}/gadgets?watch=1&timeoutSeconds=5",
                check=False).stdout
        (line,) = raw.splitlines()
        event = json.loads(line)
        assert event["type"] == "ERROR" and event["object"]["code"] == 500
        assert event["object"]["message"].startswith(f"conversion webhook for {GROUP}/v1, Kind=Gadget failed: ")
        # A delete in v2 reads the object in v2 first: it fails, and the object stays.
        res = k("-n", namespace, "delete", f"gadgets.v2.{GROUP}", "g1", check=False)
        assert res.returncode != 0 and f"conversion webhook for {GROUP}/v1, Kind=Gadget failed" in res.stderr
        # The storage version needs no conversion; other CRDs and kinds are unaffected.
        assert get_json(server, "-n", namespace, f"gadgets.v1.{GROUP}", "g1")["spec"]["host"] == "g.example"
        k("-n", namespace, "create", "-f", "-", input=widget("v2", "still", "s.example"))
        assert get_json(server, "-n", namespace, f"widgets.v1.{GROUP}", "still")["spec"]["host"] == "s.example"
        k("-n", namespace, "create", "configmap", "alive")
    finally:
        k("delete", "crd", f"gadgets.{GROUP}", "--ignore-not-found", "--wait=false")


def test_webhook_down_status_over_http(server: ServerProcess, ca: CA, namespace: str, api: Any) -> None:
    """The raw Status: a 500 with the error as its message and no reason, as kube-apiserver answers."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    url = f"https://127.0.0.1:{free_port()}/convert"
    install(server, crd_doc("sprockets", "Sprocket", url, ca))
    try:
        server.kubectl("-n", namespace, "create", "-f", "-", input=widget("v1", "s1", "s.example", "Sprocket"))
        with pytest.raises(ApiException) as e:
            client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, "v2", namespace, "sprockets", "s1")
        assert e.value.status == 500
        body = json.loads(e.value.body)
        assert body["kind"] == "Status" and body["code"] == 500 and "reason" not in body
        assert body["message"].startswith(
            f'conversion webhook for {GROUP}/v1, Kind=Sprocket failed: Post "{url}?timeout=30s": ')
    finally:
        server.kubectl("delete", "crd", f"sprockets.{GROUP}", "--ignore-not-found", "--wait=false")


@pytest.mark.parametrize(("path", "detail"), [
    ("/garbage", "failed: couldn't get version/kind; json parse error: "),
    ("/wrong-uid", "failed: expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, "
                   "got admission.k8s.io/v1, Kind=AdmissionReview"),
    ("/error", 'failed: an error on the server ("boom") has prevented the request from succeeding'),
])
def test_webhook_answering_garbage(server: ServerProcess, ca: CA, hooks: WebhookServer, namespace: str,
                                   path: str, detail: str) -> None:
    plural = "gizmo" + path.strip("/").replace("-", "") + "s"
    install(server, crd_doc(plural, "Gizmo" + path.strip("/").replace("-", "").capitalize(), hooks.url(path), ca))
    kind = "Gizmo" + path.strip("/").replace("-", "").capitalize()
    try:
        server.kubectl("-n", namespace, "create", "-f", "-", input=widget("v1", "z", "z.example", kind))
        res = server.kubectl("-n", namespace, "get", f"{plural}.v2.{GROUP}", "z", check=False)
        assert res.returncode != 0
        assert f"conversion webhook for {GROUP}/v1, Kind={kind} {detail}" in res.stderr
    finally:
        server.kubectl("delete", "crd", f"{plural}.{GROUP}", "--ignore-not-found", "--wait=false")


def test_conversion_stanza_is_validated(server: ServerProcess, ca: CA) -> None:
    doc = crd_doc("bads", "Bad", "https://127.0.0.1:1/convert", ca)
    doc["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v3"]}}
    res = server.kubectl("create", "-f", "-", input=json.dumps(doc), check=False)
    assert res.returncode != 0
    assert res.stderr.strip() == (
        f'The CustomResourceDefinition "bads.{GROUP}" is invalid: \n'
        "* spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook\n"
        '* spec.conversion.conversionReviewVersions: Invalid value: []string{"v3"}: must include at least one of '
        "v1, v1beta1")


def test_webhook_by_service_reference(server: ServerProcess, namespace: str, tmp_path: Any) -> None:
    """``clientConfig.service``: the API server resolves the Service to a ready endpoint itself."""
    address = host_address()
    if not address:
        if os.environ.get("CI"):
            pytest.fail("no global IPv4 address on this machine")
        pytest.skip("this machine has no global IPv4 address for an EndpointSlice (loopback is refused)")
    ca = CA(tmp_path, [f"conv.{namespace}.svc"], cn="conversion-service-ca")
    srv = WebhookServer(ca, host=address)
    srv.handlers["/convert"] = convert
    k = server.kubectl
    try:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "conv", "namespace": namespace},
                   "spec": {"ports": [{"name": "https", "port": 8443, "targetPort": 9999}]}}
        eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "conv-1", "namespace": namespace,
                            "labels": {"kubernetes.io/service-name": "conv"}},
               "addressType": "IPv4", "ports": [{"name": "https", "port": srv.port}],
               "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]}
        for doc in (service, eps):
            k("create", "-f", "-", input=json.dumps(doc))
        doc = crd_doc("relays", "Relay", "", ca)
        doc["spec"]["conversion"]["webhook"]["clientConfig"] = {
            "service": {"namespace": namespace, "name": "conv", "port": 8443, "path": "/convert"},
            "caBundle": ca.bundle}
        install(server, doc)
        k("-n", namespace, "create", "-f", "-", input=widget("v2", "s", "svc.example", "Relay"))
        assert get_json(server, "-n", namespace, f"relays.v1.{GROUP}", "s")["spec"]["host"] == "svc.example"
        assert len(srv.received["/convert"]) == 2
        k("-n", namespace, "delete", "endpointslice", "conv-1")
        res = k("-n", namespace, "get", f"relays.v2.{GROUP}", "s", check=False)
        assert res.stderr.strip() == (
            f'Error from server: conversion webhook for {GROUP}/v1, Kind=Relay failed: Post '
            f'"https://conv.{namespace}.svc:8443/convert?timeout=30s": no endpoints available for service "conv"')
    finally:
        k("delete", "crd", f"relays.{GROUP}", "--ignore-not-found", "--wait=false")
        srv.stop()


def test_admission_webhook_of_the_other_version_sees_the_converted_object(
        server: ServerProcess, ca: CA, hooks: WebhookServer, namespace: str, widgets: str) -> None:
    """matchPolicy Equivalent: a webhook for v1 called for a v2 request gets the object in v1,
    converted by the conversion webhook."""
    rules = [{"operations": ["CREATE"], "apiGroups": [GROUP], "apiVersions": ["v1"], "resources": ["widgets"]}]
    config = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
              "metadata": {"name": f"conv-{namespace}"[:63]},
              "webhooks": [{"name": "seen.conv.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                            "clientConfig": {"url": hooks.url("/seen"), "caBundle": ca.bundle}, "rules": rules,
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}]}
    k = server.kubectl
    k("create", "-f", "-", input=json.dumps(config))
    try:
        deadline = time.time() + 15
        while not hooks.received["/seen"]:
            assert time.time() < deadline, "the webhook configuration did not take effect"
            k("-n", namespace, "create", "--dry-run=server", "-f", "-", input=widget("v2", "probe", "p.example"))
            time.sleep(0.1)
        hooks.received["/seen"].clear()
        k("-n", namespace, "create", "-f", "-", input=widget("v2", "adm", "adm.example"))
        (review,) = hooks.received["/seen"]
        request = review["request"]
        assert request["kind"] == {"group": GROUP, "version": "v1", "kind": "Widget"}
        assert request["requestKind"] == {"group": GROUP, "version": "v2", "kind": "Widget"}
        assert request["object"]["apiVersion"] == f"{GROUP}/v1"
        assert request["object"]["spec"] == {"host": "adm.example", "port": 80}
    finally:
        k("delete", "validatingwebhookconfiguration", config["metadata"]["name"], "--ignore-not-found")
