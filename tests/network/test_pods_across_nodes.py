"""Pods across nodes on the three-node cluster (``conftest.three_nodes``): host-gw routes, no NAT
inside the cluster, masquerading out of it, ClusterIP Services with endpoints on other nodes, and
the node network repairing what was removed by hand.

Every node runs one busybox web pod (``web-a`` on net-a, ...) whose ``/cgi-bin/ip`` answers with
the client address it sees (``REMOTE_ADDR``) and whose ``/`` answers with its own name.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kybernetes.datadir import netpol_table, proxy_table
from kybernetes.images.oci import BUSYBOX_IMAGE

from .conftest import NODE_NAMES, NetNode, Obj, ThreeNodes, wait_until

pytestmark = pytest.mark.integration

NS = "net"
REPAIR_TIMEOUT = 10.0  # the node network resyncs every 2 s
WEB = ("mkdir -p /www/cgi-bin"
       " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip"
       " && chmod +x /www/cgi-bin/ip && hostname > /www/index.html && exec httpd -f -p 8080 -h /www")


@dataclass
class Web:
    name: str
    node: str
    ip: str


def web_pod(name: str, node: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web", "name": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "web", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", WEB],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            }],
        },
    }


@pytest.fixture(scope="module")
def webs(three_nodes: ThreeNodes) -> Iterator[dict[str, Web]]:
    """One web pod on each node, Ready: ``{node name: Web}``."""
    c = three_nodes
    c.kubectl("create", "namespace", NS)
    names = {node: f"web-{node[-1]}" for node in NODE_NAMES}
    c.apply(NS, *(web_pod(pod, node) for node, pod in names.items()))
    out = {}
    for node, pod in names.items():
        got = c.wait_ready(NS, pod, timeout=120)
        assert got["spec"]["nodeName"] == node
        out[node] = Web(pod, node, got["status"]["podIP"])
    yield out


def fetch(c: ThreeNodes, client: Web, url: str, check: bool = True) -> str:
    res = c.exec(NS, client.name, "wget", "-q", "-O", "-", "-T", "5", url, check=check)
    return res.stdout.strip()


def seen_address(c: ThreeNodes, client: Web, url: str) -> str:
    """The client address a web pod's ``/cgi-bin/ip`` saw (busybox httpd listens on IPv6 too, and
    says ``[::ffff:10.0.0.1]`` for an IPv4 client)."""
    seen = fetch(c, client, url).strip("[]")
    addr = ipaddress.ip_address(seen)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def pod_cidrs(c: ThreeNodes) -> dict[str, str]:
    return {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in c.get("nodes")["items"]}


def expected_routes(c: ThreeNodes, node: NetNode) -> dict[str, str]:
    cidrs = pod_cidrs(c)
    return {cidrs[o.name]: o.address for o in c.nodes if o is not node}


def test_every_node_routes_the_other_nodes_pod_cidrs(three_nodes: ThreeNodes) -> None:
    c = three_nodes
    cidrs = pod_cidrs(c)
    assert len(set(cidrs.values())) == 3 and all(
        ipaddress.ip_network(v).subnet_of(ipaddress.ip_network(c.cluster_cidr)) for v in cidrs.values()), cidrs
    for node in c.nodes:
        want = expected_routes(c, node)
        wait_until(lambda node=node, want=want: node.pod_routes() == want, REPAIR_TIMEOUT,
                   f"{node.name}'s routes {want}")
        table = node.run("ip", "route").stdout
        for cidr, gateway in want.items():
            assert f"{cidr} via {gateway} dev eth0 proto 107 metric 107" in table, table


def test_pods_reach_pods_on_every_other_node_without_nat(three_nodes: ThreeNodes, webs: dict[str, Web]) -> None:
    c = three_nodes
    for client in webs.values():
        for server in webs.values():
            if server is client:
                continue
            seen = seen_address(c, client, f"http://{server.ip}:8080/cgi-bin/ip")
            assert seen == client.ip, f"{client.name} -> {server.name}: the server saw {seen!r}, not the pod IP"


def test_cluster_ip_whose_only_endpoint_is_on_another_node(three_nodes: ThreeNodes, webs: dict[str, Web]) -> None:
    c = three_nodes
    target = webs["net-b"]
    c.apply(NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "only-b"},
                 "spec": {"selector": {"name": target.name}, "ports": [{"port": 80, "targetPort": "http"}]}})
    cluster_ip = c.get("service", "only-b", "-n", NS)["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(c.service_cidr)
    for client in (webs["net-a"], webs["net-c"]):
        # kube-proxy on the client's node programs the Service once its EndpointSlice arrives.
        wait_until(lambda client=client: fetch(c, client, f"http://{cluster_ip}/", check=False) == target.name,
                   30, f"{client.name} -> {cluster_ip} answered by {target.name}")
        # A pod client is not masqueraded by kube-proxy (br_netfilter sees the bridged reply), and
        # the node network does not NAT pod-to-pod traffic: the endpoint sees the client pod.
        assert seen_address(c, client, f"http://{cluster_ip}/cgi-bin/ip") == client.ip


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def outside(three_nodes: ThreeNodes) -> Iterator[str]:
    """An HTTP server outside the cluster networks (on the test bridge's address) that answers
    with the client address it sees: ``http://ADDRESS:PORT/``."""
    server = http.server.ThreadingHTTPServer((three_nodes.gateway, 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{three_nodes.gateway}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_traffic_leaving_the_cluster_is_masqueraded(three_nodes: ThreeNodes, webs: dict[str, Web],
                                                    outside: str) -> None:
    c = three_nodes
    for node in c.nodes:
        assert fetch(c, webs[node.name], outside) == node.address, f"{node.name}'s pod was not masqueraded"
    listing = c.nodes[0].run("nft", "list", "table", "ip", f"kyb-net-{c.nodes[0].pod_bridge}").stdout
    assert f"ip saddr {c.cluster_cidr} masquerade" in listing, listing

    # A Service whose endpoint is outside the cluster (as `kubernetes`' is the API server's
    # address): after kube-proxy's DNAT the node network masquerades, so the reply finds its way.
    port = int(outside.rsplit(":", 1)[1].rstrip("/"))
    c.apply(NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "outside"},
                 "spec": {"ports": [{"port": 80, "targetPort": port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "outside-1", "labels": {"kubernetes.io/service-name": "outside"}},
             "addressType": "IPv4", "ports": [{"name": "", "port": port, "protocol": "TCP"}],
             "endpoints": [{"addresses": [c.gateway], "conditions": {"ready": True}}]})
    cluster_ip = c.get("service", "outside", "-n", NS)["spec"]["clusterIP"]
    client = webs["net-c"]
    wait_until(lambda: fetch(c, client, f"http://{cluster_ip}/", check=False) == c.node("net-c").address, 30,
               f"{client.name} -> {cluster_ip} -> {c.gateway}:{port}, seen from net-c's address")


def test_routes_and_table_flushed_by_hand_are_repaired(three_nodes: ThreeNodes, webs: dict[str, Web]) -> None:
    c = three_nodes
    a = c.node("net-a")
    want = expected_routes(c, a)
    a.run("ip", "route", "flush", "proto", "107")
    assert a.pod_routes() == {}
    wait_until(lambda: a.pod_routes() == want, REPAIR_TIMEOUT, "net-a's routes back")

    table = f"kyb-net-{a.pod_bridge}"
    a.run("nft", "delete", "table", "ip", table)
    wait_until(lambda: a.run("nft", "list", "table", "ip", table, check=False).returncode == 0, REPAIR_TIMEOUT,
               f"table {table} back")
    assert seen_address(c, webs["net-a"], f"http://{webs['net-b'].ip}:8080/cgi-bin/ip") == webs["net-a"].ip


def test_kube_proxy_tables_deleted_or_flushed_by_hand_are_repaired(three_nodes: ThreeNodes,
                                                                   webs: dict[str, Web]) -> None:
    """kube-proxy's own table (30 s resync) and its NetworkPolicy table come back within seconds
    (their 2 s check), whether deleted or flushed: a ClusterIP whose endpoint is on another node
    answers again. (Without the table the ClusterIP is unreachable: no default route here.)"""
    c = three_nodes
    a, client, target = c.node("net-a"), webs["net-a"], webs["net-b"]
    c.apply(NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "repair-b"},
                 "spec": {"selector": {"name": target.name}, "ports": [{"port": 80, "targetPort": "http"}]}})
    url = f"http://{c.get('service', 'repair-b', '-n', NS)['spec']['clusterIP']}/"
    wait_until(lambda: fetch(c, client, url, check=False) == target.name, 30, f"{client.name} -> {url}")
    # A rule each table always has (flushing the table removes rules, not map elements)
    for family, table, rule in (("ip", proxy_table(a.pod_bridge), "jump services"),
                                ("inet", netpol_table(a.pod_bridge), "ct state established,related accept")):
        def intact(family: str = family, table: str = table, rule: str = rule) -> bool:
            return rule in a.run("nft", "list", "table", family, table, check=False).stdout
        assert intact()
        for damage in ("delete", "flush"):
            a.run("nft", damage, "table", family, table)
            assert not intact()
            wait_until(intact, REPAIR_TIMEOUT, f"{family} {table} back after nft {damage}", interval=0.2)
            assert fetch(c, client, url) == target.name


def test_routes_follow_nodes_coming_and_going(three_nodes: ThreeNodes) -> None:
    c = three_nodes
    cidr = str(ipaddress.ip_network(c.cluster_cidr).network_address + 200 * 256) + "/24"
    gateway = str(ipaddress.ip_address(c.gateway) + 60)  # on the nodes' network; no one answers there
    c.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "net-ghost"}, "spec": {"podCIDR": cidr}}))
    try:
        c.kubectl("patch", "node", "net-ghost", "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"addresses": [{"type": "InternalIP", "address": gateway}]}}))
        for node in c.nodes:
            wait_until(lambda node=node: node.pod_routes().get(cidr) == gateway, REPAIR_TIMEOUT,
                       f"{node.name}: {cidr} via {gateway}")
    finally:
        c.kubectl("delete", "node", "net-ghost", "--wait=false")
    for node in c.nodes:
        wait_until(lambda node=node: cidr not in node.pod_routes(), REPAIR_TIMEOUT,
                   f"{node.name}: the route to {cidr} gone")
