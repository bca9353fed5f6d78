"""The operator against a real kybernetes cluster: the kyb_cluster and kyb_namespace fixtures."""

import pathlib
import time

import kopf.testing
import pytest
from kubernetes import client

HERE = pathlib.Path(__file__).parent.parent


def eventually(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, client.ApiException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def crd(kyb_cluster):
    kyb_cluster.kubectl("apply", "-f", str(HERE / "crd.yaml"))
    kyb_cluster.kubectl("wait", "--for=condition=Established", "crd/greetings.example.kybernetes.io")


@pytest.fixture
def operator(crd, kyb_namespace):
    args = ["run", "--standalone", "--namespace", kyb_namespace, str(HERE / "greeter.py")]
    with kopf.testing.KopfRunner(args) as runner:
        yield runner
    assert runner.exit_code == 0, runner.output


def test_a_greeting_gets_its_configmap_and_takes_it_away(kyb_cluster, kyb_namespace, operator):
    api = client.CustomObjectsApi(kyb_cluster.api())
    core = client.CoreV1Api(kyb_cluster.api())
    api.create_namespaced_custom_object("example.kybernetes.io", "v1", kyb_namespace, "greetings", {
        "apiVersion": "example.kybernetes.io/v1", "kind": "Greeting",
        "metadata": {"name": "world"}, "spec": {"name": "World"}})

    def says(text):
        assert core.read_namespaced_config_map("world-greeting", kyb_namespace).data["message"] == text

    eventually(lambda: says("Hello, World!"))
    api.patch_namespaced_custom_object("example.kybernetes.io", "v1", kyb_namespace, "greetings", "world",
                                       {"spec": {"name": "kybernetes"}})
    eventually(lambda: says("Hello, kybernetes!"))

    # The ConfigMap is owned by the Greeting: the cluster's garbage collector removes it.
    api.delete_namespaced_custom_object("example.kybernetes.io", "v1", kyb_namespace, "greetings", "world")

    def gone():
        names = [c.metadata.name for c in core.list_namespaced_config_map(kyb_namespace).items]
        assert "world-greeting" not in names

    eventually(gone)


def test_the_crd_rejects_a_greeting_without_a_name(kyb_cluster, kyb_namespace, crd):
    api = client.CustomObjectsApi(kyb_cluster.api())
    with pytest.raises(client.ApiException) as err:
        api.create_namespaced_custom_object("example.kybernetes.io", "v1", kyb_namespace, "greetings", {
            "apiVersion": "example.kybernetes.io/v1", "kind": "Greeting",
            "metadata": {"name": "nobody"}, "spec": {}})
    assert err.value.status == 422
    assert "spec.name: Required value" in err.value.body
