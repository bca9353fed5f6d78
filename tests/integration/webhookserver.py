"""A real admission webhook server for tests: HTTPS with a CA the test makes, behaviour by path.

Each path is a webhook: ``/allow``, ``/deny/message=no/code=403``, ``/label/key=k/value=v``,
``/garbage``, ``/slow/seconds=5`` ... (see :meth:`WebhookServer.answer`): the first segment names
the behaviour, the others are its parameters (webhook URLs may not carry a query). Every
AdmissionReview received is recorded under ``/<first segment>``, so tests can check what the API
server sent. The server runs in a thread of the test process.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import subprocess
import threading
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kybernetes.pki import PKI


class CA:
    """A CA (``kybernetes.pki``) and one serving certificate it signs for ``hosts``, in ``directory``."""

    def __init__(self, directory: Path, hosts: list[str], cn: str = "webhook-test-ca") -> None:
        pki = PKI.load_or_create(directory / cn)
        ips = tuple(h for h in hosts if _is_ip(h))
        cert, key = pki.issue(hosts[0], dns_names=tuple(h for h in hosts if h not in ips), ip_addresses=ips,
                              server=True)
        self.ca_pem = pki.ca_pem
        self.cert_path = directory / f"{cn}-serving.crt"
        self.key_path = directory / f"{cn}-serving.key"
        self.cert_path.write_bytes(cert)
        self.key_path.write_bytes(key)

    @property
    def bundle(self) -> str:
        """The CA as a webhook's ``caBundle``."""
        return base64.b64encode(self.ca_pem).decode()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_address() -> str:
    """This machine's own global IPv4 address: EndpointSlice validation refuses loopback, as
    Kubernetes' does, and the API server connects to this address without leaving the machine."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return ""


def review_response(request: dict[str, Any], allowed: bool, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": request["uid"], "allowed": allowed, **extra}}


def json_patch(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


class WebhookServer:
    """An HTTPS admission webhook server on ``host`` (a free port), recording what it receives."""

    def __init__(self, ca: CA, host: str = "127.0.0.1") -> None:
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.release = threading.Event()
        """Set by a test to let ``/hold`` requests answer."""
        self.arrived = threading.Event()
        """Set when a ``/hold`` request arrives."""
        self.barrier = threading.Barrier(2, timeout=5)
        self.handlers: dict[str, Callable[[dict[str, Any], dict[str, list[str]]], Any]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlsplit(self.path)
                name, *params = url.path.lstrip("/").split("/")
                query: dict[str, list[str]] = {}
                for param in params:
                    key, _, value = unquote(param).partition("=")
                    query.setdefault(key, []).append(value)
                review = json.loads(body)
                outer.received["/" + name].append(review)
                answer = outer.answer("/" + name, review["request"], query)
                status, answer = answer if isinstance(answer, tuple) else (200, answer)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(ca.cert_path, ca.key_path)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str, request: dict[str, Any], query: dict[str, list[str]]) -> Any:
        """What the webhook at ``path`` answers: a review, raw bytes, or (HTTP status, either)."""
        if path in self.handlers:
            return self.handlers[path](request, query)
        if path == "/deny":
            status = {"code": int(query.get("code", ["403"])[0]), "message": query.get("message", ["no"])[0]}
            if "reason" in query:
                status["reason"] = query["reason"][0]
            return review_response(request, False, status=status)
        if path == "/warn":
            return review_response(request, True, warnings=query.get("w", ["be careful"]),
                                   auditAnnotations={"checked": "yes"})
        if path == "/garbage":
            return b"this is not json"
        if path == "/error":
            return 500, b"boom"
        if path == "/wrong-uid":
            return review_response({**request, "uid": "not-the-uid"}, True)
        if path == "/slow":
            self.release.wait(float(query.get("seconds", ["5"])[0]))
            return review_response(request, True)
        if path == "/hold":
            self.arrived.set()
            self.release.wait(30)
            return review_response(request, True)
        if path == "/barrier":
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                return review_response(request, False, status={"message": "the other webhook was not called meanwhile"})
            return review_response(request, True)
        if path == "/sidecar":
            containers = request["object"]["spec"]["containers"]
            if any(c["name"] == "sidecar" for c in containers):
                return review_response(request, True)
            return review_response(request, True, **json_patch([{"op": "add", "path": "/spec/containers/-",
                                                                 "value": {"name": "sidecar", "image": "busybox"}}]))
        if path == "/label":
            key, value = query.get("key", ["mutated"])[0], query.get("value", ["yes"])[0]
            obj = request["object"]
            ops: list[dict[str, Any]] = []
            if not (obj.get("metadata") or {}).get("labels"):
                ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
            elif obj["metadata"]["labels"].get(key) == value:
                return review_response(request, True)
            ops.append({"op": "add", "path": f"/metadata/labels/{key.replace('/', '~1')}", "value": value})
            return review_response(request, True, **json_patch(ops))
        return review_response(request, True)
