"""Malformed transport against the API server, and what the other clients feel meanwhile.

Shared by ``test_hostile_transport.py`` and ``bench.fuzz``. Each attack in :data:`ATTACKS` talks to
the server over its own raw TLS connections (as the cluster's admin, so what is refused is the
request and not the user) and returns what the server did: ``"4xx <code>"`` (an answer in
``4xx``), ``"closed"`` (the server closed the connection without an answer), or anything else,
which is a failure (a ``5xx``, a ``2xx`` to something malformed, or ``"open"``: still open and
unanswered after the attack's deadline).

:func:`p99_during` measures another client's GET latency (keep-alive, one object, back to back)
while a function runs: its 99th percentile is what "the server keeps serving everyone else" is
measured by, against the same figure with nothing running. (The attacks run at once; the window
lasts until the slowest, slowloris, is cut off at the 32 s read-header timeout, so the slowest GET
is reported beside the p99.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from kybernetes.testing import ServerProcess
from tests.reliability.fuzz import session

DEADLINE = 50.0
"""Seconds an attack's connection may stay open and unanswered (kube-apiserver's 32 s
ReadHeaderTimeout for slow headers, and the few seconds the server takes to notice)."""


def tls_connect(srv: ServerProcess, timeout: float = DEADLINE) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = srv.data_dir / "tls"
    ctx.load_cert_chain(tls / "admin.crt", tls / "admin.key")
    raw = socket.create_connection((srv.host, srv.port), timeout=timeout)
    return ctx.wrap_socket(raw)


def outcome(sock: ssl.SSLSocket, deadline: float = DEADLINE) -> str:
    """What the server says on ``sock``: ``"4xx 400 <body>"`` (the status class, the code, the
    start of the body), ``"closed"`` (no answer, connection closed) or ``"open"`` (neither within
    ``deadline``)."""
    sock.settimeout(0.5)
    data = b""
    end = time.monotonic() + deadline
    eof = False
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if b"\r\n\r\n" in data:
                break  # a whole head and whatever body came with it
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            eof = True
            break
        if not chunk:
            eof = True
            break
        data += chunk
    with contextlib.suppress(OSError):
        sock.close()
    if not data:
        return "closed" if eof else "open"
    parts = data.split(b" ", 2)
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    body = data.partition(b"\r\n\r\n")[2][:300].decode("utf-8", "replace")
    return f"{code // 100}xx {code} {body}" if code else f"not HTTP: {data[:100]!r}"


def _send(srv: ServerProcess, payload: bytes) -> str:
    sock = tls_connect(srv)
    with contextlib.suppress(OSError):
        sock.sendall(payload)
    return outcome(sock)


def _request(method: str, path: str, body: bytes, content_type: str, extra: str = "") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: kyb\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode() + body


CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def random_bytes(srv: ServerProcess) -> str:
    return _send(srv, os.urandom(8192))


def truncated_request(srv: ServerProcess) -> str:
    """A head that promises 1,000 bytes of body, 10 sent, then the client goes away: the server must
    not keep anything for it (the other clients' latency and the server's log say so)."""
    full = _request("POST", CONFIGMAPS, b'{"metadata":{"name":"t"}}' * 40, "application/json")
    sock = tls_connect(srv)
    sock.sendall(full[: full.index(b"\r\n\r\n") + 14])
    time.sleep(0.5)
    sock.close()
    return "closed"


def truncated_head(srv: ServerProcess) -> str:
    """Half a request head, and then nothing: closed unanswered after the read-header timeout."""
    return _send(srv, b"GET /api/v1/namespaces HTTP/1.1\r\nHost: kyb\r\nAcc")


def slow_headers(srv: ServerProcess, connections: int = 20) -> str:
    """Slowloris: ``connections`` connections each send a request head one byte a second, forever.
    The server must close them (kube-apiserver: 32 s to read a request's head)."""
    socks = [tls_connect(srv) for _ in range(connections)]
    head = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: kyb\r\n" + b"X-Slow: " + b"a" * 200
    results: list[str] = []
    end = time.monotonic() + DEADLINE
    closed: set[int] = set()
    for i in range(len(head)):
        if time.monotonic() > end or len(closed) == len(socks):
            break
        for n, sock in enumerate(socks):
            if n in closed:
                continue
            try:
                sock.sendall(head[i:i + 1])
            except OSError:
                closed.add(n)
        time.sleep(1.0)
    for n, sock in enumerate(socks):
        results.append("closed" if n in closed else outcome(sock, deadline=2.0))
    return max(results, key=lambda r: r == "open")  # one still open fails the attack


def huge_header(srv: ServerProcess) -> str:
    return _send(srv, b"GET /api/v1/namespaces HTTP/1.1\r\nHost: kyb\r\nX-Big: " + b"a" * (2 << 20) + b"\r\n\r\n")


def many_headers(srv: ServerProcess) -> str:
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(20_000))
    return _send(srv, b"GET /api/v1/namespaces HTTP/1.1\r\nHost: kyb\r\n" + lines + b"\r\n")


def huge_body(srv: ServerProcess) -> str:
    return _send(srv, _request("POST", CONFIGMAPS, b"x" * (3 * 1024 * 1024 + 1), "application/json"))


def invalid_utf8(srv: ServerProcess) -> str:
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"utf8-\xff\xfe"},"data":{"a":"\xc3\x28"}}'
    return _send(srv, _request("POST", CONFIGMAPS, body, "application/json"))


def deep_json(srv: ServerProcess) -> str:
    depth = 1_000_000
    return _send(srv, _request("POST", CONFIGMAPS, b"[" * depth + b"]" * depth, "application/json"))


def deep_json_in_object(srv: ServerProcess) -> str:
    depth = 1_000_000
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    return _send(srv, _request("POST", CONFIGMAPS, body[:3 * 1024 * 1024], "application/json"))


def yaml_alias_bomb(srv: ServerProcess) -> str:
    """A billion laughs (9 levels of 9 aliases: 387 million leaves from 1 KB) where any value fits:
    a managedFields entry's fieldsV1."""
    lines = ["apiVersion: v1", "kind: ConfigMap",
             "a0: &a0 {" + ", ".join(f'"f:{j}": {{}}' for j in range(9)) + "}"]
    lines += [f"a{i}: &a{i} {{" + ", ".join(f'"f:k{j}": *a{i - 1}' for j in range(9)) + "}" for i in range(1, 10)]
    lines.append("metadata: {name: bomb, managedFields: [{manager: m, operation: Apply, apiVersion: v1, "
                 "fieldsType: FieldsV1, fieldsV1: *a9}]}")
    body = ("\n".join(lines) + "\n").encode()
    return _send(srv, _request("PATCH", f"{CONFIGMAPS}/bomb?fieldManager=bomb", body, "application/apply-patch+yaml"))


def garbage_protobuf(srv: ServerProcess) -> str:
    body = b"k8s\x00" + os.urandom(4096)
    return _send(srv, _request("POST", CONFIGMAPS, body, "application/vnd.kubernetes.protobuf"))


def garbage_protobuf_no_magic(srv: ServerProcess) -> str:
    return _send(srv, _request("POST", CONFIGMAPS, os.urandom(4096), "application/vnd.kubernetes.protobuf"))


def stalled_watcher(srv: ServerProcess, writes: int = 300) -> str:
    """A client opens a watch and stops reading (a 4 KB receive buffer, never read) while 300
    ConfigMaps of 64 KB are written and deleted: every write must still be answered (the server
    never waits on the watcher; the other clients' latency says how much it costs them)."""
    sock = tls_connect(srv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: kyb\r\n\r\n")
    http = session(srv)
    big = "x" * 65536
    refused = []
    for i in range(writes):
        resp = http.post(f"{srv.url}{CONFIGMAPS}", json={"metadata": {"name": f"stall-{i}"}, "data": {"v": big}},
                         timeout=30)
        if resp.status_code != 201:
            refused.append(resp.status_code)
    for i in range(writes):
        http.delete(f"{srv.url}{CONFIGMAPS}/stall-{i}", timeout=30)
    if refused:
        return f"writes refused while a watcher stalled: {refused[:5]}"
    sock.close()
    return f"closed (by the client, after {writes} writes all answered 201)"


ATTACKS: dict[str, Callable[[ServerProcess], str]] = {
    "random bytes": random_bytes,
    "truncated body": truncated_request,
    "truncated head": truncated_head,
    "slow headers (slowloris, 20 connections)": slow_headers,
    "a 2 MiB header": huge_header,
    "20,000 headers": many_headers,
    "a body over 3 MiB": huge_body,
    "invalid UTF-8 in JSON": invalid_utf8,
    "JSON nested a million deep": deep_json,
    "JSON object nested a million deep": deep_json_in_object,
    "YAML alias bomb (apply)": yaml_alias_bomb,
    "garbage protobuf": garbage_protobuf,
    "garbage protobuf without the magic": garbage_protobuf_no_magic,
    "a watcher that stops reading": stalled_watcher,
}


def latencies(srv: ServerProcess, stop: threading.Event, out: list[float]) -> None:
    """Back-to-back GETs of one object on one keep-alive connection until ``stop``."""
    http = session(srv)
    url = f"{srv.url}/api/v1/namespaces/default/serviceaccounts/default"
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            resp = http.get(url, timeout=30)
            ok = resp.status_code == 200
        except requests.RequestException:
            ok = False
        out.append(time.monotonic() - t0 if ok else float("inf"))


def p99(samples: list[float]) -> float:
    if len(samples) < 2:
        return float("inf")
    return statistics.quantiles(samples, n=100)[98]


def p99_during(srv: ServerProcess, fn: Callable[[], Any], *, min_seconds: float = 0.0) -> tuple[float, int, float]:
    """Run ``fn`` while another client GETs; (p99 seconds, samples, slowest GET in seconds)."""
    stop = threading.Event()
    samples: list[float] = []
    thread = threading.Thread(target=latencies, args=(srv, stop, samples), daemon=True)
    thread.start()
    t0 = time.monotonic()
    try:
        fn()
        while time.monotonic() - t0 < min_seconds:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(35)
    return p99(samples), len(samples), max(samples, default=float("inf"))


def run_attacks(srv: ServerProcess) -> dict[str, Any]:
    """The baseline p99 (nothing running, 5 s), then every attack (all at once in threads, while
    the other client measures); per attack its outcome; the p99 during them."""
    baseline, base_n, _ = p99_during(srv, lambda: None, min_seconds=5.0)
    outcomes: dict[str, str] = {}

    def attack_all() -> None:
        threads = [threading.Thread(target=lambda n=name, f=fn: outcomes.__setitem__(n, _guarded(f, srv)),
                                    daemon=True) for name, fn in ATTACKS.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE + 60)

    during, during_n, slowest = p99_during(srv, attack_all)
    return {"outcomes": outcomes, "p99_before_s": baseline, "p99_during_s": during, "max_during_s": slowest,
            "samples_before": base_n, "samples_during": during_n, "ratio": during / baseline}


def _guarded(fn: Callable[[ServerProcess], str], srv: ServerProcess) -> str:
    try:
        return fn(srv)
    except Exception as e:  # the attacker's own failure, reported as such
        return f"attack failed: {type(e).__name__}: {e}"


def ok(result: str) -> bool:
    return result.startswith(("4xx", "closed"))


__all__ = ["ATTACKS", "ok", "outcome", "p99_during", "run_attacks", "tls_connect"]

