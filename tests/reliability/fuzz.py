"""Property-based fuzzing of the API server from its own OpenAPI, shared by the test and bench.fuzz.

:func:`fuzz` loads the server's ``/openapi/v2`` document and every ``/openapi/v3/<group-version>``
document, has schemathesis (on Hypothesis) generate requests for their operations (every verb of
every built-in resource and subresource: create, update, patch, list and watch, delete), and sends
each generated case in a few variants:

- as generated (half of the operations in Hypothesis' positive mode, which fits the schema, half in
  negative mode, which does not: wrong types, missing required fields, junk parameters);
- aimed at an object that exists (the path's ``namespace`` and ``name`` set to a seed object's, see
  :class:`Seeds`), so that updates, patches and deletes reach validation rather than a 404;
- a PATCH again under each patch type (JSON patch, merge patch, strategic merge patch, apply as
  YAML with a ``fieldManager``);
- with another ``Accept``, another ``Content-Type`` or a stray ``Authorization`` header now and then.

A watch is always bounded (``timeoutSeconds=1``, and the client reads at most a few seconds).

What is counted, in :class:`FuzzResult`: requests sent, answers by status class, 5xx answers
(goal 0), dropped connections (the server closed or reset the connection instead of answering;
goal 0), requests with no answer within :data:`READ_TIMEOUT` (goal 0), and half-writes (goal 0):
when a mutating request on an existing object is refused (4xx), the object read before and after it
must be identical.
"""

from __future__ import annotations

import concurrent.futures
import random
import re
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
import urllib3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from kybernetes.testing import ServerProcess

READ_TIMEOUT = 20.0
"""Seconds a request may take to answer before it counts as hung (a watch is bounded to 1 s)."""
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
ACCEPTS = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
           "application/json;as=Table;v=v1;g=meta.k8s.io", "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
           "*/*", "text/html", "application/json;stream=watch", "garbage", "")
CONTENT_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "text/plain",
                 "application/json; charset=latin-1", "multipart/form-data; boundary=x", "garbage", "")
NAMESPACE = "fuzz"
TOO_LARGE_RV = b"Too large resource version"

_TEMPLATE = re.compile(r"\{(\w+)\}")


@dataclass
class FuzzResult:
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    hung: list[str] = field(default_factory=list)
    half_writes: list[str] = field(default_factory=list)
    mutations_checked: int = 0
    future_resource_versions: int = 0
    """504s for a read at a resourceVersion the server has not reached: Kubernetes' own answer
    (``storage.NewTooLargeResourceVersionError``, a Timeout the client retries), not a failure."""
    generation_errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "operations": len(self.operations),
                "by_class": {f"{k}xx": v for k, v in sorted(Counter(s // 100 for s in self.statuses.elements()).items())},
                "5xx": len(self.server_errors), "dropped": len(self.dropped), "hung": len(self.hung),
                "half_writes": len(self.half_writes), "mutations_checked": self.mutations_checked,
                "504_future_resource_version": self.future_resource_versions,
                "seconds": round(self.seconds, 1)}


# --- the server's documents ----------------------------------------------------------------------


def session(srv: ServerProcess) -> requests.Session:
    """A requests session as the cluster's admin (its client certificate; the serving certificate is
    not checked: loopback only)."""
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    s = requests.Session()
    tls = srv.data_dir / "tls"
    s.cert = (str(tls / "admin.crt"), str(tls / "admin.key"))
    s.verify = False
    s.trust_env = False  # no proxy, and no CA bundle from the environment overriding verify=False
    return s


def operations(srv: ServerProcess) -> list[tuple[str, Any]]:
    """Every operation of ``/openapi/v2`` and of each ``/openapi/v3`` document, as
    ``("v2" | "v3", schemathesis APIOperation)``. A document schemathesis cannot load fails here."""
    http = session(srv)
    docs = [("v2", http.get(f"{srv.url}/openapi/v2", timeout=60).json())]
    index = http.get(f"{srv.url}/openapi/v3", timeout=30).json()
    for entry in index["paths"].values():
        docs.append(("v3", http.get(srv.url + entry["serverRelativeURL"], timeout=60).json()))
    out = []
    for source, doc in docs:
        schema = schemathesis.openapi.from_dict(doc)
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise AssertionError(f"{source}: an operation schemathesis cannot load: {result.err()}")
            out.append((source, result.ok()))
    return out


# --- seed objects --------------------------------------------------------------------------------


SEED_OBJECTS: dict[str, dict[str, Any]] = {
    "configmaps": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}},
    "secrets": {"apiVersion": "v1", "kind": "Secret", "stringData": {"a": "1"}},
    "serviceaccounts": {"apiVersion": "v1", "kind": "ServiceAccount"},
    "services": {"apiVersion": "v1", "kind": "Service",
                 "spec": {"ports": [{"port": 80}], "selector": {"app": "fuzz"}}},
    "pods": {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    "deployments": {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {
        "selector": {"matchLabels": {"app": "fuzz"}},
        "template": {"metadata": {"labels": {"app": "fuzz"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
    "jobs": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}},
    "roles": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": []},
    "leases": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"},
    "clusterroles": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "rules": []},
    "priorityclasses": {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 10},
}
SEED_NAME = "fuzz-seed"
CLUSTER_SCOPED = {"clusterroles": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                  "priorityclasses": "/apis/scheduling.k8s.io/v1/priorityclasses"}
_NAMESPACED_PREFIX = {"configmaps": "/api/v1", "secrets": "/api/v1", "serviceaccounts": "/api/v1",
                      "services": "/api/v1", "pods": "/api/v1", "deployments": "/apis/apps/v1",
                      "jobs": "/apis/batch/v1", "roles": "/apis/rbac.authorization.k8s.io/v1",
                      "leases": "/apis/coordination.k8s.io/v1"}


class Seeds:
    """One object of each kind in :data:`SEED_OBJECTS`, named :data:`SEED_NAME` (namespaced ones in
    :data:`NAMESPACE`): what generated requests are aimed at. :meth:`ensure` recreates any that a
    fuzzed request deleted."""

    def __init__(self, srv: ServerProcess) -> None:
        self.srv = srv
        self.lock = threading.Lock()

    def collection(self, resource: str) -> str:
        if resource in CLUSTER_SCOPED:
            return CLUSTER_SCOPED[resource]
        return f"{_NAMESPACED_PREFIX[resource]}/namespaces/{NAMESPACE}/{resource}"

    def ensure(self) -> None:
        with self.lock:
            status, answer = self.srv.request("GET", f"/api/v1/namespaces/{NAMESPACE}")
            if status == 404:
                status, answer = self.srv.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
                assert status == 201, answer
            for resource, body in SEED_OBJECTS.items():
                url = f"{self.collection(resource)}/{SEED_NAME}"
                if self.srv.request("GET", url)[0] == 404:
                    obj = dict(body, metadata={"name": SEED_NAME, "labels": {"app": "fuzz"}})
                    status, answer = self.srv.request("POST", self.collection(resource), obj)
                    assert status in (201, 409), (resource, answer)


def _seed_target(path_template: str) -> str | None:
    """The path of the seed object a templated path can be aimed at (the resource segment after
    ``namespaces/{namespace}/`` or the group-version), or None."""
    parts = path_template.strip("/").split("/")
    for i, part in enumerate(parts):
        if part in SEED_OBJECTS and i + 1 < len(parts) and parts[i + 1] == "{name}":
            return part
    return None


# --- sending -------------------------------------------------------------------------------------


@dataclass
class Job:
    label: str
    method: str
    url: str
    headers: dict[str, str]
    params: Any
    body: dict[str, Any]
    target: str | None  # the existing object's URL, for the half-write check


class Sender:
    """Sends jobs from a few threads (so a watch's second does not hold generation up) and counts."""

    def __init__(self, srv: ServerProcess, result: FuzzResult, threads: int = 4) -> None:
        self.srv = srv
        self.result = result
        self.pool = concurrent.futures.ThreadPoolExecutor(threads)
        self.slots = threading.Semaphore(threads * 4)
        self.local = threading.local()
        self.count_lock = threading.Lock()
        self.target_locks: dict[str, threading.Lock] = {}

    def _session(self) -> requests.Session:
        s = getattr(self.local, "session", None)
        if s is None:
            s = self.local.session = session(self.srv)
        return s

    def submit(self, job: Job) -> None:
        self.slots.acquire()
        future = self.pool.submit(self._run, job)
        future.add_done_callback(lambda _: self.slots.release())

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _read(self, url: str) -> Any:
        resp = self._session().get(url, timeout=READ_TIMEOUT, headers={"Accept": "application/json"})
        return resp.json() if resp.status_code == 200 else resp.status_code

    def _run(self, job: Job) -> None:
        try:
            if job.target is None or job.method not in MUTATING:
                self._send(job)
                return
            with self.count_lock:
                lock = self.target_locks.setdefault(job.target, threading.Lock())
            with lock:
                before = self._read(job.target)
                status = self._send(job)
                if isinstance(before, dict) and status is not None and 400 <= status < 500:
                    after = self._read(job.target)
                    with self.count_lock:
                        self.result.mutations_checked += 1
                        if after != before:
                            self.result.half_writes.append(f"{job.label} {job.method} {job.url} -> {status}")
        except Exception as e:  # a bug in the fuzzer itself must not pass for a green run
            with self.count_lock:
                self.result.generation_errors[f"sender: {type(e).__name__}: {e}"[:200]] += 1

    def _send(self, job: Job) -> int | None:
        try:
            resp = self._session().request(job.method, job.url, headers=job.headers, params=job.params,
                                            timeout=(10, READ_TIMEOUT), stream=True, allow_redirects=False,
                                            **job.body)
            first = b""
            with resp:
                deadline = time.monotonic() + 5
                for data in resp.iter_content(65536):
                    first = first or data
                    if time.monotonic() > deadline:
                        break
            status = resp.status_code
        except requests.exceptions.Timeout:
            with self.count_lock:
                self.result.requests += 1
                self.result.hung.append(_describe(job))
            return None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
            with self.count_lock:
                self.result.requests += 1
                self.result.dropped.append(f"{_describe(job)}: {type(e).__name__}: {str(e)[:200]}")
            return None
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, UnicodeError, ValueError):
            return None  # not sendable by the client: not a request
        with self.count_lock:
            self.result.requests += 1
            self.result.statuses[status] += 1
            if status == 504 and TOO_LARGE_RV in first:
                self.result.future_resource_versions += 1
            elif status >= 500:
                self.result.server_errors.append(f"{_describe(job)} -> {status} {first[:300]!r}")
        return status


def _describe(job: Job) -> str:
    """A failed job as it was sent (what reproducing it takes): operation, method, URL, parameters,
    headers and the start of the body."""
    return (f"{job.label}: {job.method} {job.url[:200]} params={str(job.params)[:200]} "
            f"headers={job.headers} body={_excerpt(job.body)}")


def _excerpt(body: dict[str, Any], limit: int = 1500) -> str:
    """The start of a job's body as sent (``json`` or ``data``) and its size, for reproducing a failure."""
    if not body:
        return "none"
    (kind, value), = body.items()
    text = repr(value)
    return f"{kind}({len(text)} chars):{text[:limit]}"


# --- generation ----------------------------------------------------------------------------------


def _is_watch(path: str, params: Any) -> bool:
    return "/watch/" in path or (isinstance(params, dict) and "watch" in params)


def _variants(case: Any, rng: random.Random, base_url: str) -> list[Job]:
    """The jobs one generated case is sent as (see the module's docstring)."""
    label = f"{case.operation.method.upper()} {case.operation.path}"
    kwargs = case.as_transport_kwargs(base_url=base_url)
    headers = {k: str(v) for k, v in dict(kwargs.get("headers") or {}).items()}
    if rng.random() < 0.9:  # a random bearer token beside the client certificate: now and then
        headers.pop("authorization", None)
    if rng.random() < 0.2:
        headers["Accept"] = rng.choice(ACCEPTS)
    body = {k: kwargs[k] for k in ("json", "data") if k in kwargs}
    if body and rng.random() < 0.1:
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
    params = kwargs.get("params") or {}
    method = kwargs["method"].upper()
    if _is_watch(case.operation.path, params) or (isinstance(params, dict) and "timeoutSeconds" in params):
        params = dict(params, timeoutSeconds="1")
    jobs = [Job(label, method, kwargs["url"], headers, params, body, None)]
    resource = _seed_target(case.operation.path)
    if resource is not None:
        values = dict(case.path_parameters or {}, name=SEED_NAME)
        if "namespace" in values:
            values["namespace"] = NAMESPACE
        path = _TEMPLATE.sub(lambda m: str(values.get(m.group(1), m.group(0))), case.operation.path)
        target = base_url + (CLUSTER_SCOPED.get(resource) or
                             f"{_NAMESPACED_PREFIX[resource]}/namespaces/{NAMESPACE}/{resource}") + f"/{SEED_NAME}"
        aimed = Job(label, method, base_url + path, dict(headers), params, body, target)
        jobs.append(aimed)
        if method == "PATCH":
            for patch_type in PATCH_TYPES:
                extra = dict(params) if isinstance(params, dict) else {}
                if patch_type.startswith("application/apply"):
                    extra.setdefault("fieldManager", "fuzz")
                jobs.append(Job(label, method, aimed.url, dict(headers, **{"Content-Type": patch_type}), extra,
                                body, target))
        elif method in ("PUT", "DELETE", "POST"):  # the same with a dry run: every step but the write
            dry = dict(params, dryRun="All") if isinstance(params, dict) else {"dryRun": "All"}
            jobs.append(Job(label, method, aimed.url, dict(headers), dry, body, target))
        else:
            jobs.append(Job(label, method, aimed.url, dict(headers, Accept=rng.choice(ACCEPTS)), params, body,
                            None))
    return jobs


def fuzz(srv: ServerProcess, *, requests_goal: int, seconds: float, seed: int = 0,
         examples_per_operation: int = 2, threads: int = 8) -> FuzzResult:
    """Fuzz ``srv`` until ``requests_goal`` requests are sent or ``seconds`` have passed (operations
    in a seeded random order, each with ``examples_per_operation`` generated cases per pass)."""
    result = FuzzResult()
    seeds = Seeds(srv)
    seeds.ensure()
    ops = operations(srv)
    rng = random.Random(seed)
    rng.shuffle(ops)
    sender = Sender(srv, result, threads)
    t0 = time.monotonic()
    deadline = t0 + seconds
    pass_no = 0
    try:
        while time.monotonic() < deadline and result.requests < requests_goal:
            for i, (source, op) in enumerate(ops):
                if time.monotonic() > deadline or result.requests >= requests_goal:
                    break
                mode = GenerationMode.NEGATIVE if (i + pass_no) % 2 else GenerationMode.POSITIVE
                label = f"{source} {op.method.upper()} {op.path}"
                result.operations.add(label)
                _generate(op, mode, examples_per_operation, rng, sender, srv.url, result, label,
                          seed + pass_no * 100_003 + i)
                if i % 50 == 49:
                    seeds.ensure()
            pass_no += 1
    finally:
        sender.close()
        result.seconds = time.monotonic() - t0
    seeds.ensure()
    return result


def _generate(op: Any, mode: GenerationMode, examples: int, rng: random.Random, sender: Sender, base_url: str,
              result: FuzzResult, label: str, seed: int) -> None:
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        for job in _variants(case, rng, base_url):
            sender.submit(job)

    run = _seeded(run, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run()
        except (HypothesisException, schemathesis.errors.SchemathesisError) as e:
            result.generation_errors[f"{label}: {type(e).__name__}"] += 1


def _seeded(test: Any, seed: int) -> Any:
    from hypothesis import seed as hypothesis_seed

    return hypothesis_seed(seed)(test)


__all__ = ["FuzzResult", "fuzz", "operations", "session"]
