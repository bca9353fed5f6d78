"""A small kopf operator: each Greeting gets a ConfigMap that says hello to its spec.name.

The ConfigMap is owned by the Greeting (kopf.adopt), so deleting the Greeting deletes it through
the cluster's garbage collector; an update of spec.name rewrites it.
"""

import kopf
import kubernetes


def _configmap(name: str, greeting: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-greeting"},
            "data": {"message": f"Hello, {greeting}!"}}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    settings.posting.enabled = False  # no kopf Events: the tests look at ConfigMaps only


@kopf.on.create("example.kybernetes.io", "v1", "greetings")
def create(spec: dict, name: str, namespace: str, **_: object) -> dict:
    body = _configmap(name, spec["name"])
    kopf.adopt(body)
    kubernetes.config.load_kube_config()
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, body)
    return {"configmap": body["metadata"]["name"]}


@kopf.on.field("example.kybernetes.io", "v1", "greetings", field="spec.name")
def rename(new: str, name: str, namespace: str, **_: object) -> None:
    kubernetes.config.load_kube_config()
    kubernetes.client.CoreV1Api().patch_namespaced_config_map(
        f"{name}-greeting", namespace, {"data": {"message": f"Hello, {new}!"}})
