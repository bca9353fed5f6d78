"""The tutorials' commands in the built-in busybox image, run in pods on the test node's bridge.

`kubectl run client --image=busybox:1.36 -- ...` then `wget -T 2 -qO- http://web`, `wget --spider
--timeout=1 ...`, `nslookup`, `nc`, `ping`, `httpd`: each must run (Debian's busybox-static
crashed on wget's -T with SIGSEGV, exit 139) and reach what it is pointed at. Traffic stays on the
test bridge: pod to pod, and pod to a DNS responder this test runs on the bridge's gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.kubelet.cri import CRIClient, api
from tests.node.conftest import NodeRuntime, container_config, remove_sandbox, sandbox_config

pytestmark = pytest.mark.integration

DNS_NAME = "web.tutorial.test"


def _dns_answer(query: bytes, address: str) -> bytes:
    """A reply to one DNS question: an A record for `address` (A queries), else no answer."""
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    qtype = struct.unpack("!H", query[end + 1:end + 3])[0]
    answers = b""
    if qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    header = struct.pack("!HHHHHH", ident, 0x8180, qdcount, 1 if answers else 0, 0, 0)
    return header + question + answers


@contextlib.contextmanager
def dns_responder(address: str, records: dict[str, str]) -> Iterator[str]:
    """A DNS server answering A queries for `records` on `address` (a free UDP port) as "IP:PORT"."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            labels, i = [], 12
            while query[i]:
                labels.append(query[i + 1:i + 1 + query[i]].decode())
                i += query[i] + 1
            address = records.get(".".join(labels))
            if address is not None:
                sock.sendto(_dns_answer(query, address), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"{address}:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        sock.close()


async def _pod(cri: CRIClient, node: NodeRuntime, name: str, command: str,
               mounts: list[api.Mount] | None = None) -> tuple[str, str, str]:
    """A pod with one busybox container running `sh -c command`: (sandbox id, container id, pod IP)."""
    config = sandbox_config(node, name)
    sandbox_id = await cri.run_pod_sandbox(config)
    container = container_config("c", ["sh", "-c", command])
    container.mounts.extend(mounts or [])
    cid = await cri.create_container(sandbox_id, container, config)
    await cri.start_container(cid)
    ip = (await cri.pod_sandbox_status(sandbox_id)).status.network.ip
    return sandbox_id, cid, ip


async def _run(cri: CRIClient, cid: str, *argv: str, timeout: int = 20) -> tuple[int, str, str]:
    code, out, err = await cri.exec_sync(cid, list(argv), timeout)
    return code, out.decode(errors="replace"), err.decode(errors="replace")


async def _until_served(cri: CRIClient, cid: str, url: str) -> None:
    deadline = time.monotonic() + 15
    while (await _run(cri, cid, "wget", "-q", "-O", "-", url))[0] != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never answered")
        await asyncio.sleep(0.2)


async def test_tutorial_applets(cri: CRIClient, node_runtime: NodeRuntime, tmp_path: Path) -> None:
    server_sandbox, _, web_ip = await _pod(
        cri, node_runtime, "web",
        "mkdir -p /www && echo hello-from-httpd > /www/index.html && httpd -p 8080 -h /www"
        # A listener that accepts and never answers: what a timeout is for.
        " && sleep 3600 | nc -l -p 9000")
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n{web_ip}\tweb web.default.svc\n")
    client_sandbox, client, _ = await _pod(
        cri, node_runtime, "client", "sleep 3600",
        mounts=[api.Mount(container_path="/etc/hosts", host_path=str(hosts), readonly=True)])
    try:
        url = f"http://{web_ip}:8080/"
        await _until_served(cri, client, url)
        # The tutorials' forms: -T (crashed with SIGSEGV, exit 139), --timeout (refused), grouped.
        for argv in (["wget", "-q", "-O", "-", url], ["wget", "-T", "2", "-q", "-O", "-", url],
                     ["wget", "-qT2", "-O-", url], ["wget", "-qO-", "--timeout=2", url],
                     ["wget", "-qO-", "-T", "2", "http://web:8080/"]):
            assert await _run(cri, client, *argv) == (0, "hello-from-httpd\n", ""), argv
        code, _, err = await _run(cri, client, "wget", "--spider", "--timeout=1", url)
        assert code == 0, err
        # A server that never answers: wget gives up after -T seconds, as wget says it does.
        started = time.monotonic()
        code, out, err = await _run(cri, client, "wget", "-T", "1", "-q", "-O", "-", f"http://{web_ip}:9000/")
        assert (code, out, err) == (1, "", "wget: download timed out\n")
        assert time.monotonic() - started < 10
        # nslookup asks the DNS server it is given (the bridge exists now that pods do).
        with dns_responder(node_runtime.gateway, {DNS_NAME: web_ip}) as server:
            code, out, err = await _run(cri, client, "nslookup", "-type=a", DNS_NAME, server)
        assert code == 0 and f"Address: {web_ip}" in out, (out, err)
        # nc, ping, and names from /etc/hosts (static glibc's resolver reads it through nsswitch).
        code, out, _ = await _run(cri, client, "sh", "-c",
                                  "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 8080")
        assert code == 0 and out.startswith("HTTP/1.") and out.endswith("hello-from-httpd\n"), out
        code, out, _ = await _run(cri, client, "ping", "-c", "1", "-W", "2", web_ip)
        assert code == 0 and "1 packets received" in out, out
    finally:
        await remove_sandbox(cri, client_sandbox)
        await remove_sandbox(cri, server_sandbox)
