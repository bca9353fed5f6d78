"""Traffic for the HA tests: a stream of writes through several API servers, watchers that resume
by resourceVersion, and the checks of what they saw against the final list.

Guarantees:

- :class:`Writer` creates ConfigMaps ``w-00000``, ``w-00001``, ... one at a time, the i-th first
  through server ``i mod n`` and, after a failure (refused connection, timeout, 5xx), through the
  next ones in turn. A write is *acknowledged* when a server answered 201 (its resourceVersion is
  recorded), or when a retry met 409 AlreadyExists (an earlier attempt was committed though its
  answer was lost) and a read then returned the object. Each write has a deadline; a write that
  misses it stops the writer with the error kept in ``error``.
- :class:`Watcher` lists once and then watches the namespace's ConfigMaps from the list's
  resourceVersion, through its first server; when a stream breaks (or ends) it watches again from
  the last resourceVersion it saw (an event's or a bookmark's), through the same server if it
  answers, else the next. Every (re)start is recorded in ``resumes``. A 410 Gone (the version is
  too old: events may have been lost) ends it with ``error`` set.
- :func:`check_stream` returns every difference between what a watcher saw and the final list:
  an event not ADDED, events out of order or repeated (duplicates), objects missing (gaps) or
  unknown; :func:`missing_acknowledged` the acknowledged writes the final list lacks or holds at
  another resourceVersion.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

PREFIX = "w-"
LABEL = "kybernetes.test/ha-stream"
SELECTOR = f"{LABEL}=true"
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 10.0
STREAM_SECONDS = 10
"""A watch's ``timeoutSeconds``: its streams end this often and resume where they were."""


def api_client(kubeconfig: Path) -> client.ApiClient:
    """The official client for one server, without urllib3's own retries (failover is ours)."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.retries = False
    return client.ApiClient(cfg)


def core_api(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(kubeconfig))


@dataclass(frozen=True)
class Ack:
    name: str
    resource_version: int
    server: int
    at: float  # time.monotonic()


def _transient(err: Exception) -> bool:
    """A failure another server (or a later attempt) may not have: the request is retried."""
    if isinstance(err, ApiException):
        return err.status is None or err.status == 0 or err.status >= 500 or err.status == 429
    return isinstance(err, (urllib3.exceptions.HTTPError, OSError))


@dataclass
class Writer:
    """See the module docstring; ``servers`` indexed as the test numbers them."""

    servers: list[client.CoreV1Api]
    namespace: str
    write_deadline: float = 60.0
    acks: list[Ack] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (server, error) of attempts that failed
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ha-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.write_deadline + 15)
            assert not self._thread.is_alive(), "the writer did not stop"

    def acked_by(self, server: int, since: float = 0.0) -> int:
        return sum(1 for a in list(self.acks) if a.server == server and a.at >= since)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                self.acks.append(self._write(f"{PREFIX}{i:05d}", i))
            except Exception as err:  # kept for the test to report
                self.error = f"write {i}: {err!r}"
                return
            i += 1

    def _write(self, name: str, i: int) -> Ack:
        n = len(self.servers)
        order = [(i + k) % n for k in range(n)]
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels={LABEL: "true"}), data={"i": str(i)})
        deadline = time.monotonic() + self.write_deadline
        attempt = 0
        while True:
            server = order[attempt % n]
            attempt += 1
            api = self.servers[server]
            try:
                try:
                    made = api.create_namespaced_config_map(self.namespace, body,
                                                            _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
                except ApiException as err:
                    if err.status != 409 or attempt == 1:
                        raise
                    made = api.read_namespaced_config_map(name, self.namespace,
                                                          _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
                return Ack(name, int(made.metadata.resource_version), server, time.monotonic())
            except Exception as err:
                if not _transient(err) or time.monotonic() > deadline:
                    raise
                self.failures.append((server, repr(err)[:200]))
                if attempt % n == 0:
                    time.sleep(0.2)  # every server failed: give them a moment


@dataclass
class Seen:
    type: str
    name: str
    resource_version: int


@dataclass
class Watcher:
    """See the module docstring; ``servers`` in order of preference, with their indexes ``ids``."""

    name: str
    servers: list[client.CoreV1Api]
    ids: list[int]
    namespace: str
    events: list[Seen] = field(default_factory=list)
    resumes: list[tuple[int, int]] = field(default_factory=list)  # (server, from resourceVersion)
    start_rv: int = 0
    last_rv: int = 0
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        listed = self.servers[0].list_namespaced_config_map(self.namespace, label_selector=SELECTOR,
                                                            _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        assert not listed.items, "the watchers start before the writer"
        self.start_rv = self.last_rv = int(listed.metadata.resource_version)
        self._thread = threading.Thread(target=self._run, name=f"ha-watcher-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the watch (within one stream's ``STREAM_SECONDS``: set every watcher's ``stopping``
        first to stop several at once)."""
        self.stopping()
        if self._thread is not None:
            self._thread.join(STREAM_SECONDS + 15)
            assert not self._thread.is_alive(), f"watcher {self.name} did not stop"

    def stopping(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            server = k % len(self.servers)
            self.resumes.append((self.ids[server], self.last_rv))
            try:
                self._watch(self.servers[server])
            except ApiException as err:
                if err.status == 410:
                    self.error = f"410 Gone from server {self.ids[server]} at {self.last_rv}: {err.reason}"
                    return
                k += 1  # that server cannot serve the watch now: the next one
                self._stop.wait(0.2)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if _refused(err):
                    k += 1
                self._stop.wait(0.2)
            except Exception as err:  # kept for the test to report
                self.error = f"{err!r}"
                return

    def _watch(self, api: client.CoreV1Api) -> None:
        w = watch.Watch()
        stream = w.stream(api.list_namespaced_config_map, self.namespace, resource_version=str(self.last_rv),
                          label_selector=SELECTOR, allow_watch_bookmarks=True, timeout_seconds=STREAM_SECONDS,
                          _request_timeout=(CONNECT_TIMEOUT, STREAM_SECONDS + 10))
        for event in stream:
            if self._stop.is_set():
                w.stop()
            if not isinstance(event, dict):
                continue
            meta = event["raw_object"]["metadata"]
            rv = int(meta["resourceVersion"])
            if event["type"] != "BOOKMARK":
                self.events.append(Seen(event["type"], meta["name"], rv))
            self.last_rv = max(self.last_rv, rv)

    def wait_for(self, rv: int, timeout: float) -> None:
        """Until this watcher has seen ``rv`` (an event or a bookmark at it or later)."""
        deadline = time.monotonic() + timeout
        while self.last_rv < rv and not self.error:
            assert time.monotonic() < deadline, (
                f"watcher {self.name} at {self.last_rv}, not {rv}, after {timeout}s; resumes {self.resumes}")
            time.sleep(0.1)


def _refused(err: BaseException) -> bool:
    text = repr(err)
    return "Connection refused" in text or "NewConnectionError" in text or "ConnectTimeout" in text


def check_stream(events: list[Seen], start_rv: int, final: dict[str, int]) -> list[str]:
    """What is wrong with a watcher's ``events`` (from ``start_rv``) against the ``final`` list
    (``{name: resourceVersion}`` of objects only ever created); empty if nothing."""
    problems = []
    expected = sorted((rv, name) for name, rv in final.items() if rv > start_rv)
    seen = [(e.resource_version, e.name) for e in events]
    for e in events:
        if e.type != "ADDED":
            problems.append(f"{e.type} {e.name} at {e.resource_version}: only creations happened")
    order = [rv for rv, _ in seen]
    for a, b in itertools.pairwise(order):
        if b <= a:
            problems.append(f"resourceVersion {b} after {a}: out of order or repeated")
    counts: dict[tuple[int, str], int] = {}
    for s in seen:
        counts[s] = counts.get(s, 0) + 1
    problems += [f"{name} at {rv} seen {c} times" for (rv, name), c in sorted(counts.items()) if c > 1]
    problems += [f"{name} at {rv} never seen (a gap)" for rv, name in expected if (rv, name) not in counts]
    known = set(expected)
    problems += [f"{name} at {rv} seen but not in the list" for rv, name in counts if (rv, name) not in known]
    return problems


def missing_acknowledged(acks: list[Ack], final: dict[str, int]) -> list[str]:
    """The acknowledged writes ``final`` lacks, or holds at another resourceVersion."""
    return [f"{a.name} (acknowledged at {a.resource_version} by server {a.server}): "
            + (f"at {final[a.name]}" if a.name in final else "missing")
            for a in acks if final.get(a.name) != a.resource_version]


def listed(api: client.CoreV1Api, namespace: str) -> dict[str, int]:
    """``{name: resourceVersion}`` of the namespace's ConfigMaps written by a :class:`Writer`."""
    items = api.list_namespaced_config_map(namespace, label_selector=SELECTOR,
                                           _request_timeout=(CONNECT_TIMEOUT, 30)).items
    return {c.metadata.name: int(c.metadata.resource_version) for c in items}
