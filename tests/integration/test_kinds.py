"""Every built-in kind the API serves, through kubectl: apply twice, get as a table, delete.

The manifests are ordinary ones, as in the Kubernetes documentation.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

# (resource for kubectl get, name, manifest, the first header columns kubectl shows)
KINDS: list[tuple[str, str, str, list[str]]] = [
    ("services", "web", """
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports: [{name: http, port: 80, targetPort: 8080}]
        """, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]),
    ("endpoints", "manual", """
        apiVersion: v1
        kind: Endpoints
        metadata: {name: manual}
        subsets:
        - addresses: [{ip: 192.0.2.10}]
          ports: [{port: 80}]
        """, ["NAME", "ENDPOINTS", "AGE"]),
    ("secrets", "creds", """
        apiVersion: v1
        kind: Secret
        metadata: {name: creds}
        type: Opaque
        stringData: {user: admin}
        """, ["NAME", "TYPE", "DATA", "AGE"]),
    ("serviceaccounts", "robot", """
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: robot}
        """, ["NAME", "SECRETS", "AGE"]),
    ("resourcequotas", "compute", """
        apiVersion: v1
        kind: ResourceQuota
        metadata: {name: compute}
        spec:
          hard: {pods: "10", requests.cpu: "4", requests.memory: 8Gi}
        """, ["NAME", "REQUEST", "LIMIT", "AGE"]),
    ("limitranges", "defaults", """
        apiVersion: v1
        kind: LimitRange
        metadata: {name: defaults}
        spec:
          limits:
          - type: Container
            default: {cpu: 500m, memory: 256Mi}
            defaultRequest: {cpu: 100m, memory: 128Mi}
        """, ["NAME", "CREATED", "AT"]),
    ("persistentvolumeclaims", "data", """
        apiVersion: v1
        kind: PersistentVolumeClaim
        metadata: {name: data}
        spec:
          accessModes: [ReadWriteOnce]
          resources: {requests: {storage: 1Gi}}
        """, ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS"]),
    ("statefulsets", "db", """
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db}
        spec:
          serviceName: db
          replicas: 2
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec:
              containers: [{name: db, image: busybox, command: [sleep, "3600"]}]
          volumeClaimTemplates:
          - metadata: {name: data}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 1Gi}}
        """, ["NAME", "READY", "AGE"]),
    ("daemonsets", "agent", """
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec:
              containers: [{name: a, image: busybox}]
        """, ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"]),
    ("replicasets", "rs", """
        apiVersion: apps/v1
        kind: ReplicaSet
        metadata: {name: rs}
        spec:
          replicas: 1
          selector: {matchLabels: {app: rs}}
          template:
            metadata: {labels: {app: rs}}
            spec:
              containers: [{name: a, image: busybox}]
        """, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
    ("jobs", "pi", """
        apiVersion: batch/v1
        kind: Job
        metadata: {name: pi}
        spec:
          backoffLimit: 4
          template:
            spec:
              restartPolicy: Never
              containers: [{name: pi, image: perl, command: [perl, "-Mbignum=bpi", "-wle", "print bpi(20)"]}]
        """, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]),
    ("cronjobs", "hello", """
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: hello}
        spec:
          schedule: "* * * * *"
          timeZone: Europe/Berlin
          jobTemplate:
            spec:
              template:
                spec:
                  restartPolicy: OnFailure
                  containers: [{name: hello, image: busybox, command: [date]}]
        """, ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]),
    ("leases", "lock", """
        apiVersion: coordination.k8s.io/v1
        kind: Lease
        metadata: {name: lock}
        spec: {holderIdentity: me, leaseDurationSeconds: 15}
        """, ["NAME", "HOLDER", "AGE"]),
    ("endpointslices", "web-abc", """
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-abc
          labels: {kubernetes.io/service-name: web}
        addressType: IPv4
        ports: [{name: http, protocol: TCP, port: 80}]
        endpoints:
        - addresses: [10.42.0.5]
          conditions: {ready: true}
        """, ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]),
    ("poddisruptionbudgets", "web-pdb", """
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata: {name: web-pdb}
        spec:
          minAvailable: 2
          selector: {matchLabels: {app: web}}
        """, ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]),
    ("ingresses", "web", """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: web}
        spec:
          rules:
          - host: example.test
            http:
              paths:
              - path: /
                pathType: Prefix
                backend: {service: {name: web, port: {number: 80}}}
        """, ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]),
    ("networkpolicies", "deny-all", """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all}
        spec:
          podSelector: {}
          policyTypes: [Ingress]
        """, ["NAME", "POD-SELECTOR", "AGE"]),
    ("roles", "reader", """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata: {name: reader}
        rules:
        - apiGroups: [""]
          resources: [pods]
          verbs: [get, list, watch]
        """, ["NAME", "CREATED", "AT"]),
    ("rolebindings", "read-pods", """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata: {name: read-pods}
        subjects:
        - kind: User
          name: jane
          apiGroup: rbac.authorization.k8s.io
        roleRef: {kind: Role, name: reader, apiGroup: rbac.authorization.k8s.io}
        """, ["NAME", "ROLE", "AGE"]),
    ("events", "hand-made", """
        apiVersion: v1
        kind: Event
        metadata: {name: hand-made}
        involvedObject: {kind: Pod, name: somepod, namespace: NAMESPACE, apiVersion: v1}
        reason: Testing
        message: a hand-made event
        type: Normal
        source: {component: tests}
        """, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]),
]

CLUSTER_KINDS: list[tuple[str, str, str, list[str]]] = [
    ("priorityclasses", "high", """
        apiVersion: scheduling.k8s.io/v1
        kind: PriorityClass
        metadata: {name: high}
        value: 1000000
        globalDefault: false
        description: for important pods
        """, ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]),
    ("storageclasses", "local", """
        apiVersion: storage.k8s.io/v1
        kind: StorageClass
        metadata: {name: local}
        provisioner: kubernetes.io/no-provisioner
        volumeBindingMode: WaitForFirstConsumer
        """, ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]),
    ("persistentvolumes", "pv1", """
        apiVersion: v1
        kind: PersistentVolume
        metadata: {name: pv1}
        spec:
          capacity: {storage: 5Gi}
          accessModes: [ReadWriteOnce]
          hostPath: {path: /tmp/pv1}
        """, ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS"]),
    ("clusterroles", "viewer", """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: viewer}
        rules:
        - apiGroups: [apps]
          resources: [deployments]
          verbs: [get, list]
        """, ["NAME", "CREATED", "AT"]),
    ("clusterrolebindings", "viewers", """
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRoleBinding
        metadata: {name: viewers}
        subjects:
        - {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
        roleRef: {kind: ClusterRole, name: viewer, apiGroup: rbac.authorization.k8s.io}
        """, ["NAME", "ROLE", "AGE"]),
]


# kubectl computes "configured" from its own three-way patch, so for these kinds it says so on
# every apply against any Kubernetes (atomic lists the server defaults into, stringData, a
# selector with patch strategy "replace"). The server must still write nothing.
ALWAYS_CONFIGURED = {"endpoints", "secrets", "statefulsets", "poddisruptionbudgets"}
# Created with a finalizer by the StorageObjectInUseProtection admission plugin.
IN_USE_PROTECTED = {"persistentvolumeclaims", "persistentvolumes"}


def _lifecycle(server: ServerProcess, ns_args: list[str], resource: str, name: str, manifest: str,
               header: list[str]) -> None:
    k = server.kubectl
    namespace = ns_args[1] if ns_args else "default"
    doc = textwrap.dedent(manifest).strip().replace("NAMESPACE", namespace) + "\n"
    assert "created" in k(*ns_args, "apply", "-f", "-", input=doc).stdout
    rv = k(*ns_args, "get", resource, name, "-o", "jsonpath={.metadata.resourceVersion}").stdout
    again = k(*ns_args, "apply", "-f", "-", input=doc).stdout
    assert ("configured" if resource in ALWAYS_CONFIGURED else "unchanged") in again
    assert k(*ns_args, "get", resource, name, "-o", "jsonpath={.metadata.resourceVersion}").stdout == rv
    table = k(*ns_args, "get", resource, name).stdout.splitlines()
    assert table[0].split()[: len(header)] == header, table[0]
    assert len(table) == 2
    obj = json.loads(k(*ns_args, "get", resource, name, "-o", "json").stdout)
    assert obj["metadata"]["name"] == name and obj["metadata"]["uid"]
    if resource not in ALWAYS_CONFIGURED:
        assert k(*ns_args, "diff", "-f", "-", input=doc, check=False).returncode == 0
    if resource in IN_USE_PROTECTED:
        # This server runs no controller manager, so nothing removes the StorageObjectInUseProtection
        # finalizer: the delete only marks the object, as on Kubernetes; take it off as the controller would.
        k(*ns_args, "delete", resource, name, "--wait=false")
        assert json.loads(k(*ns_args, "get", resource, name, "-o", "json").stdout)["metadata"]["deletionTimestamp"]
        k(*ns_args, "patch", resource, name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    else:
        k(*ns_args, "delete", resource, name)
    assert k(*ns_args, "get", resource, name, check=False).returncode != 0


@pytest.mark.parametrize(("resource", "name", "manifest", "header"), KINDS, ids=[k[0] for k in KINDS])
def test_namespaced_kind(server: ServerProcess, namespace: str, resource: str, name: str, manifest: str,
                         header: list[str]) -> None:
    _lifecycle(server, ["-n", namespace], resource, name, manifest, header)


@pytest.mark.parametrize(("resource", "name", "manifest", "header"), CLUSTER_KINDS, ids=[k[0] for k in CLUSTER_KINDS])
def test_cluster_kind(server: ServerProcess, resource: str, name: str, manifest: str, header: list[str]) -> None:
    _lifecycle(server, [], resource, name, manifest, header)


def test_secret_string_data_is_folded(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "apply", "-f", "-", input="apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n")
    obj = json.loads(k("-n", namespace, "get", "secret", "s", "-o", "json").stdout)
    assert obj["data"] == {"a": "Yg=="} and "stringData" not in obj


def test_namespace_terminating_refuses_new_objects(server: ServerProcess) -> None:
    k = server.kubectl
    k("apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: doomed}\n")
    k("delete", "ns", "doomed", "--wait=false")
    assert k("get", "ns", "doomed", "-o", "jsonpath={.status.phase}").stdout == "Terminating"
    res = k("-n", "doomed", "create", "-f", "-", check=False,
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\n")
    assert res.returncode != 0
    # NamespaceLifecycle names the object refused, as admission.NewForbidden does.
    assert ('Error from server (Forbidden): error when creating "STDIN": configmaps "late" is forbidden: unable to '
            "create new content in namespace doomed because it is being terminated") in res.stderr
    res = k("-n", "no-such-ns", "create", "configmap", "early", check=False)
    assert res.returncode != 0 and 'namespaces "no-such-ns" not found' in res.stderr
