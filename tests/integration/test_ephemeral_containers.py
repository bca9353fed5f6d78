"""``pods/NAME/ephemeralcontainers`` on a real ``kyb server``: kubectl 1.32's ``kubectl debug`` adds
an ephemeral container with a strategic merge patch of the subresource; existing ones can be
neither changed nor removed, with kube-apiserver's words (``ValidatePodEphemeralContainersUpdate``);
the fields an ephemeral container may not have are refused (``validateEphemeralContainers``); a pod
is never created with one, and the pod's own update path still may not touch them; RBAC asks for
``pods/ephemeralcontainers``, not ``pods``.

No node runs here: the pods stay Pending, which is all the API side needs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


def _pod(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}], **spec}}


def _create(server: ServerProcess, ns: str, pod: Obj) -> None:
    server.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod))


def _message(err: ApiException) -> str:
    return str(json.loads(err.body)["message"])


def _debugger(name: str = "dbg", **fields: Any) -> Obj:
    return {"name": name, "image": "busybox:1.36", "stdin": True, "tty": True, **fields}


def test_kubectl_debug_patches_the_subresource_and_adds_a_container(server: ServerProcess, namespace: str) -> None:
    _create(server, namespace, _pod("web"))
    res = server.kubectl("debug", "web", "-n", namespace, "--image=busybox", "--target=c", "-c", "dbg",
                         "--profile=general", "-v=8")
    # What kubectl 1.32 sends: a strategic merge patch of the subresource.
    assert f"PATCH {server.url}/api/v1/namespaces/{namespace}/pods/web/ephemeralcontainers" in res.stderr
    assert "application/strategic-merge-patch+json" in res.stderr
    pod = json.loads(server.kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
    [added] = pod["spec"]["ephemeralContainers"]
    assert (added["name"], added["image"], added["targetContainerName"]) == ("dbg", "busybox", "c")
    # Defaulted as every container is.
    assert (added["terminationMessagePolicy"], added["terminationMessagePath"]) == ("File", "/dev/termination-log")
    # A second one is one more addition.
    server.kubectl("debug", "web", "-n", namespace, "--image=busybox", "-c", "dbg2", "--profile=general")
    pod = json.loads(server.kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
    assert [c["name"] for c in pod["spec"]["ephemeralContainers"]] == ["dbg", "dbg2"]


def test_the_subresource_writes_nothing_but_ephemeral_containers(api: Any, server: ServerProcess,
                                                                  namespace: str) -> None:
    core = client.CoreV1Api(api)
    _create(server, namespace, _pod("web"))
    body = {"metadata": {"labels": {"sneaked": "in"}},
            "spec": {"activeDeadlineSeconds": 5, "ephemeralContainers": [_debugger()]}}
    got = core.patch_namespaced_pod_ephemeralcontainers("web", namespace, body)
    assert [c.name for c in got.spec.ephemeral_containers] == ["dbg"]
    assert not got.metadata.labels and got.spec.active_deadline_seconds is None
    assert core.read_namespaced_pod_ephemeralcontainers("web", namespace).spec.ephemeral_containers[0].name == "dbg"


def test_existing_ephemeral_containers_may_not_be_changed_or_removed(api: Any, server: ServerProcess,
                                                                     namespace: str) -> None:
    core = client.CoreV1Api(api)
    _create(server, namespace, _pod("web"))
    core.patch_namespaced_pod_ephemeralcontainers("web", namespace, {"spec": {"ephemeralContainers": [_debugger()]}})
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers(
            "web", namespace, {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox:1.37"}]}})
    assert e.value.status == 422
    assert _message(e.value).startswith('Pod "web" is invalid: spec.ephemeralContainers: Forbidden: '
                                        'existing ephemeral containers "dbg" may not be changed\n')
    pod = core.read_namespaced_pod("web", namespace)
    pod.spec.ephemeral_containers = []
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_pod_ephemeralcontainers("web", namespace, pod)
    assert e.value.status == 422
    assert _message(e.value) == ('Pod "web" is invalid: spec.ephemeralContainers: Forbidden: '
                                 'existing ephemeral containers "dbg" may not be removed\n')
    assert [c.name for c in core.read_namespaced_pod("web", namespace).spec.ephemeral_containers] == ["dbg"]


def test_what_an_ephemeral_container_may_not_have(api: Any, server: ServerProcess, namespace: str) -> None:
    core = client.CoreV1Api(api)
    _create(server, namespace, _pod("web", volumes=[{"name": "v", "emptyDir": {}}]))
    bad = _debugger("c", targetContainerName="nope", ports=[{"containerPort": 80}],
                    resources={"limits": {"cpu": "1"}}, readinessProbe={"exec": {"command": ["true"]}},
                    volumeMounts=[{"name": "v", "mountPath": "/v", "subPath": "x"}])
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers("web", namespace, {"spec": {"ephemeralContainers": [bad]}})
    assert e.value.status == 422
    causes = {(c["field"], c["message"]) for c in json.loads(e.value.body)["details"]["causes"]}
    p = "spec.ephemeralContainers[0]"
    assert causes == {
        (f"{p}.name", 'Duplicate value: "c"'),
        (f"{p}.targetContainerName", 'Not found: "nope"'),
        (f"{p}.ports", "Forbidden: cannot be set for an Ephemeral Container"),
        (f"{p}.resources", "Forbidden: cannot be set for an Ephemeral Container"),
        (f"{p}.readinessProbe", "Forbidden: cannot be set for an Ephemeral Container"),
        (f"{p}.volumeMounts[0].subPath", "Forbidden: cannot be set for an Ephemeral Container"),
    }
    assert not core.read_namespaced_pod("web", namespace).spec.ephemeral_containers


def test_not_on_create_and_not_through_a_pod_update(server: ServerProcess, namespace: str) -> None:
    created = server.kubectl("create", "-n", namespace, "-f", "-", check=False,
                             input=json.dumps(_pod("born", ephemeralContainers=[_debugger()])))
    assert created.returncode != 0
    assert ('The Pod "born" is invalid: spec.ephemeralContainers: Forbidden: cannot be set on create'
            in created.stderr)
    _create(server, namespace, _pod("web"))
    patched = server.kubectl("patch", "pod", "web", "-n", namespace, "--type=merge",
                             "-p", json.dumps({"spec": {"ephemeralContainers": [_debugger()]}}), check=False)
    assert patched.returncode != 0
    assert "pod updates may not change fields other than" in patched.stderr


def test_a_mirror_pod_takes_no_ephemeral_container(api: Any, server: ServerProcess, namespace: str) -> None:
    core = client.CoreV1Api(api)
    mirror = _pod("static-web")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    _create(server, namespace, mirror)
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers("static-web", namespace,
                                                      {"spec": {"ephemeralContainers": [_debugger()]}})
    assert e.value.status == 422
    assert _message(e.value) == 'Pod "static-web" is invalid: []: Forbidden: static pods do not support ephemeral containers'


def test_rbac_asks_for_the_subresource(server: ServerProcess, namespace: str) -> None:
    _create(server, namespace, _pod("web"))
    server.kubectl("create", "role", "pod-writer", "-n", namespace, "--verb=get,list,watch,update,patch",
                   "--resource=pods")
    server.kubectl("create", "rolebinding", "jane-pods", "-n", namespace, "--role=pod-writer", "--user=jane")
    server.wait_allowed("patch", "pods", "jane", namespace=namespace)
    refused = server.kubectl("debug", "web", "-n", namespace, "--image=busybox", "-c", "dbg", "--profile=general",
                             "--as=jane", check=False)
    assert refused.returncode != 0
    assert (f'pods "web" is forbidden: User "jane" cannot patch resource "pods/ephemeralcontainers" '
            f'in API group "" in the namespace "{namespace}"') in refused.stderr
    server.kubectl("create", "role", "debugger", "-n", namespace, "--verb=patch", "--resource=pods/ephemeralcontainers")
    server.kubectl("create", "rolebinding", "jane-debug", "-n", namespace, "--role=debugger", "--user=jane")
    server.wait_allowed("patch", "pods/ephemeralcontainers", "jane", namespace=namespace)
    server.kubectl("debug", "web", "-n", namespace, "--image=busybox", "-c", "dbg", "--profile=general", "--as=jane")
    pod = json.loads(server.kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
    assert [c["name"] for c in pod["spec"]["ephemeralContainers"]] == ["dbg"]
