"""Node join: tokens, the credentials endpoint, and `kyb agent`'s join half, against a real server.

One `kyb server` (API server only) on a loopback port serves the module. Joins run in-process
through `kybernetes.agent.ensure_credentials` (the agent's own code path, minus the kubelet) or as
real `kyb agent` processes where the exit status and message matter. The end-to-end test at the
bottom (a second node running a pod) needs root, containerd and the kubelet command.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybernetes import join
from kybernetes.agent import AgentConfig, JoinError, ensure_credentials
from kybernetes.apiserver.join import tokens
from kybernetes.kubelet.containerd import Containerd, cleanup_mounts, kill_pids, mounts_under
from kybernetes.testing import ServerProcess, free_port

KYB = [sys.executable, "-m", "kybernetes.cli"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = ServerProcess.start(tmp_path_factory.mktemp("join-server"))
    try:
        yield srv
    finally:
        srv.stop()


def kyb(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*KYB, *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"kyb {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def create_token(server: ServerProcess, *extra: str) -> str:
    return kyb("token", "create", "--data-dir", str(server.data_dir), *extra).stdout.strip()


def agent_config(server: ServerProcess, token: str, data_dir: Path, node: str) -> AgentConfig:
    return AgentConfig(server=server.url, token=token, data_dir=data_dir, node_name=node, node_ip="127.0.0.1")


def client_context(server: ServerProcess, crt: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "ca.crt"))
    if crt is not None and key is not None:
        ctx.load_cert_chain(str(crt), str(key))
    return ctx


def get(server: ServerProcess, path: str, ctx: ssl.SSLContext) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(server.url + path, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def post_credentials(server: ServerProcess, secret: str, body: dict) -> tuple[int, dict]:  # type: ignore[type-arg]
    req = urllib.request.Request(server.url + join.CREDENTIALS_PATH, data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, context=client_context(server), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def csr_pem(*attrs: tuple[x509.ObjectIdentifier, str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(oid, v) for oid, v in attrs]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def run_agent(server_url: str, token: str, data_dir: Path, node: str, timeout: float = 60
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KYB, "agent", "--server", server_url, "--token", token, "--data-dir", str(data_dir),
                           "--node-name", node, "--node-ip", "127.0.0.1", "--lb-server-port", "0"],
                          capture_output=True, text=True, timeout=timeout)


# --- tokens --------------------------------------------------------------------------------------


def test_parse_token_and_duration() -> None:
    good = "K10" + "ab" * 32 + "::node:secret123"
    assert join.parse_token(good) == join.ParsedToken("ab" * 32, "node", "secret123")
    for bad in ("secret", "K10abc::node:x", "K10" + "ab" * 32 + "::admin:x", "K10" + "ab" * 32 + "::node:"):
        with pytest.raises(ValueError):
            join.parse_token(bad)
    assert tokens.parse_duration("24h") == dt.timedelta(hours=24)
    assert tokens.parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert tokens.parse_duration("7d") == dt.timedelta(days=7)
    assert tokens.parse_duration("0") is None
    for bad in ("", "1x", "h", "5 m"):
        with pytest.raises(ValueError):
            tokens.parse_duration(bad)


def test_token_cli_create_list_delete(server: ServerProcess) -> None:
    token = create_token(server, "--ttl", "2h", "--description", "for the list test")
    parsed = join.parse_token(token)
    ca_pem = (server.data_dir / "tls" / "ca.crt").read_bytes()
    assert parsed.ca_hash == join.ca_hash(ca_pem)
    listing = kyb("token", "list", "--data-dir", str(server.data_dir)).stdout
    assert token in listing and "for the list test" in listing
    assert oct((server.data_dir / tokens.TOKENS_FILE).stat().st_mode & 0o777) == "0o600"
    kyb("token", "delete", "--data-dir", str(server.data_dir), token)
    assert token not in kyb("token", "list", "--data-dir", str(server.data_dir)).stdout
    res = kyb("token", "delete", "--data-dir", str(server.data_dir), token, check=False)
    assert res.returncode != 0 and "no such token" in res.stderr


def test_token_create_needs_a_server_ca(tmp_path: Path) -> None:
    res = kyb("token", "create", "--data-dir", str(tmp_path / "nothing-here"), check=False)
    assert res.returncode != 0 and "no cluster CA" in res.stderr


def test_cacerts_is_public_and_matches_the_token(server: ServerProcess) -> None:
    token = create_token(server)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(server.url + "/cacerts", context=ctx, timeout=10) as r:
        assert join.ca_hash(r.read()) == join.parse_token(token).ca_hash


# --- joining -----------------------------------------------------------------------------------------


def test_join_gives_a_node_identity_that_the_api_server_accepts(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    creds = ensure_credentials(agent_config(server, token, tmp_path / "agent", "node-a"))

    cert = x509.load_pem_x509_certificate(creds.client_cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-a"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert oct(creds.client_key.stat().st_mode & 0o777) == "0o600"
    assert oct(creds.serving_key.stat().st_mode & 0o777) == "0o600"
    assert oct(creds.kubeconfig.stat().st_mode & 0o777) == "0o600"

    # Without a certificate: system:anonymous, refused (403); with the node's: the API answers what
    # the Node authorizer lets a node read (its own Node, as the kubelet watches it).
    own = "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a"
    assert get(server, own, client_context(server))[0] == 403
    code, doc = get(server, own, client_context(server, creds.client_cert, creds.client_key))
    assert code == 200 and doc["kind"] == "NodeList"

    serving = x509.load_pem_x509_certificate(creds.serving_cert.read_bytes())
    assert serving.subject == cert.subject
    assert list(serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH]
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node-a" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(a) for a in san.get_values_for_type(x509.IPAddress)]

    # The kubeconfig the kubelet gets works as is (kubectl as the node, asking for its own Node).
    res = server.kubectl("--kubeconfig", str(creds.kubeconfig), "get", "nodes", "--field-selector",
                         "metadata.name=node-a", "-o", "name")
    assert res.returncode == 0
    # The key never left: the certificate is for the key on disk.
    key = serialization.load_pem_private_key(creds.client_key.read_bytes(), None)
    assert key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_restart_keeps_credentials_even_after_revocation(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    cfg = agent_config(server, token, tmp_path / "agent", "node-keep")
    first = ensure_credentials(cfg)
    before = (first.client_cert.read_bytes(), first.client_key.read_bytes(), first.serving_cert.read_bytes())
    kyb("token", "delete", "--data-dir", str(server.data_dir), token)
    again = ensure_credentials(cfg)  # no join request: nothing to refuse
    assert (again.client_cert.read_bytes(), again.client_key.read_bytes(), again.serving_cert.read_bytes()) == before


def test_renewal_uses_the_node_certificate_not_the_token(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    cfg = agent_config(server, token, tmp_path / "agent", "node-renew")
    first = ensure_credentials(cfg)
    kyb("token", "delete", "--data-dir", str(server.data_dir), token)
    # A new address needs a new serving certificate: the token is gone, the client cert renews it.
    cfg.node_ip = "127.0.0.2"
    again = ensure_credentials(cfg)
    serving = x509.load_pem_x509_certificate(again.serving_cert.read_bytes())
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.2" in [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    # A node's certificate renews only its own node; other users cannot use the endpoint at all.
    cn, o = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME
    body = {"nodeName": "someone-else", "nodePassword": "p" * 32,
            "csr": csr_pem((cn, "system:node:someone-else"), (o, "system:nodes"))}
    for crt, key in ((first.client_cert, first.client_key),
                     (server.data_dir / "tls" / "admin.crt", server.data_dir / "tls" / "admin.key")):
        req = urllib.request.Request(server.url + join.CREDENTIALS_PATH, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, context=client_context(server, crt, key), timeout=10)
        assert err.value.code == 403


def test_wrong_secret_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    wrong = token.rsplit(":", 1)[0] + ":" + tokens.new_secret()
    res = run_agent(server.url, wrong, tmp_path / "agent", "node-wrong")
    assert res.returncode == 1, res.stderr
    assert "refused the join token" in res.stderr
    assert not (tmp_path / "agent" / "agent" / "client.crt").exists()


def test_token_for_another_ca_is_refused_before_sending_the_secret(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    other = "K10" + "0" * 64 + "::" + token.split("::", 1)[1]
    res = run_agent(server.url, other, tmp_path / "agent", "node-mitm")
    assert res.returncode == 1
    assert "refusing to join" in res.stderr and "0" * 64 in res.stderr
    assert not (tmp_path / "agent" / "agent" / "ca.crt").exists()


def test_malformed_token_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    res = run_agent(server.url, "just-a-password", tmp_path / "agent", "node-x", timeout=30)
    assert res.returncode == 1 and "not a kybernetes join token" in res.stderr


def test_bootstrap_token_needs_the_discovery_hash(server: ServerProcess, tmp_path: Path) -> None:
    """kubeadm's token form is accepted only with --discovery-token-ca-cert-hash: without a pin the
    agent would trust whatever CA answers first."""
    res = run_agent(server.url, "abcdef.0123456789abcdef", tmp_path / "agent", "node-b", timeout=30)
    assert res.returncode == 1
    assert "a bootstrap token needs --discovery-token-ca-cert-hash sha256:<64 hex digits>" in res.stderr
    assert not (tmp_path / "agent" / "agent" / "ca.crt").exists()


def test_revoked_token_stops_working(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    ensure_credentials(agent_config(server, token, tmp_path / "a", "node-rev-a"))
    kyb("token", "delete", "--data-dir", str(server.data_dir), token)
    with pytest.raises(JoinError, match="refused the join token"):
        ensure_credentials(agent_config(server, token, tmp_path / "b", "node-rev-b"))


def test_expired_token_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server, "--ttl", "1s")
    time.sleep(1.5)
    with pytest.raises(JoinError, match="refused the join token"):
        ensure_credentials(agent_config(server, token, tmp_path / "a", "node-exp"))


def test_csr_subject_must_be_the_node(server: ServerProcess) -> None:
    secret = join.parse_token(create_token(server)).secret
    base = {"nodeName": "node-csr", "nodePassword": "p" * 32}
    cn, o = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME
    for attrs in [
        ((cn, "system:node:other"), (o, "system:nodes")),      # another node's name
        ((cn, "system:node:node-csr"), (o, "system:masters")),  # cluster admin
        ((cn, "system:node:node-csr"),),                        # no group
        ((cn, "system:node:node-csr"), (o, "system:nodes"), (o, "system:masters")),
        ((cn, "admin"), (o, "system:nodes")),
    ]:
        code, doc = post_credentials(server, secret, {**base, "csr": csr_pem(*attrs)})
        assert code == 403, (attrs, doc)
        assert doc["kind"] == "Status" and "subject" in doc["message"]
    code, doc = post_credentials(server, secret, {**base, "csr": csr_pem((cn, "system:node:node-csr"),
                                                                         (o, "system:nodes"))})
    assert code == 200, doc
    assert doc["ca"] == (server.data_dir / "tls" / "ca.crt").read_text() and doc["server"].startswith("https://")
    # Bad requests: no token, bad node name, garbage CSR, bad addresses.
    assert post_credentials(server, "", {**base, "csr": "x"})[0] == 401
    assert post_credentials(server, secret, {**base, "nodeName": "Not_A_Name", "csr": "x"})[0] == 400
    assert post_credentials(server, secret, {**base, "csr": "not a csr"})[0] == 400
    good = csr_pem((cn, "system:node:node-csr"), (o, "system:nodes"))
    assert post_credentials(server, secret, {**base, "csr": good, "kind": "serving",
                                             "addresses": ["bad name!"]})[0] == 400


def test_node_name_is_kept_by_its_first_machine_while_the_node_exists(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    ensure_credentials(agent_config(server, token, tmp_path / "first", "node-owned"))
    server.kubectl("create", "-f", "-", input="apiVersion: v1\nkind: Node\nmetadata:\n  name: node-owned\n")
    try:
        with pytest.raises(JoinError, match="another node password"):
            ensure_credentials(agent_config(server, token, tmp_path / "second", "node-owned"))
    finally:
        server.kubectl("delete", "node", "node-owned")
    # Once the Node is gone, the name is free again.
    ensure_credentials(agent_config(server, token, tmp_path / "second", "node-owned"))


def test_pinned_ca_must_match_the_token(server: ServerProcess, tmp_path: Path) -> None:
    token = create_token(server)
    cfg = agent_config(server, token, tmp_path / "agent", "node-pin")
    ensure_credentials(cfg)
    other = "K10" + "1" * 64 + "::" + token.split("::", 1)[1]
    with pytest.raises(JoinError, match="belongs to a cluster"):
        ensure_credentials(agent_config(server, other, tmp_path / "agent", "node-pin"))


# --- a real second node ----------------------------------------------------------------------------


def _kubelet_available() -> str | None:
    try:
        import kybernetes.kubelet.cmd  # noqa: F401
    except ImportError:
        return "the kubelet command (kybernetes.kubelet.cmd) does not exist yet"
    if os.geteuid() != 0:
        return "needs root"
    for b in ("containerd", "runc"):
        if shutil.which(b) is None:
            return f"needs {b}"
    return None


def _kubelet_flags() -> set[str]:
    from kybernetes.kubelet.cmd import command

    return {o for p in command.params for o in getattr(p, "opts", [])}


def _wait(what: str, check, timeout: float, proc: subprocess.Popen[bytes], log: Path,  # type: ignore[no-untyped-def]
          diag=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode} while waiting for {what}:\n"
                                 f"{log.read_text(errors='replace')[-6000:]}")
        got = check()
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-6000:]}\n{diag()}")


def _stop_all(agent: subprocess.Popen[bytes] | None, srv: ServerProcess, data_dir: Path, bridge: str,
              ip_forward: str) -> None:
    """A node test's teardown: the agent (killed if still running), the server, what the node left
    behind, ``net.ipv4.ip_forward`` as it was, the agent's data dir."""
    if agent is not None and agent.poll() is None:
        agent.kill()
        agent.wait()
    srv.stop()
    _teardown_node(data_dir, bridge)
    Path("/proc/sys/net/ipv4/ip_forward").write_text(ip_forward)
    shutil.rmtree(data_dir, ignore_errors=True)


def _teardown_node(data_dir: Path, bridge: str) -> None:
    """Whatever the agent's kubelet left behind (nothing, when the drain worked)."""
    # A kubelet that outlived a killed agent (it runs in its own session): found by our data dir.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"kubelet" in argv and os.fsencode(str(data_dir)) in argv:
                kill_pids([int(entry.name)])
    runtime = Containerd(data_dir)
    pid = runtime.find_running_pid()
    if pid is not None:  # the agent did not stop its containerd: ours to stop (found by our data dir)
        runtime._pid = pid
        asyncio.run(runtime.stop(remove_pods=True))
    kill_pids(runtime.shim_pids())
    cleanup_mounts(data_dir)
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def test_second_node_runs_a_pod(tmp_path: Path) -> None:
    reason = _kubelet_available()
    if reason:
        pytest.skip(reason)
    flags = _kubelet_flags()
    bridge, cidr = "kyb9", "10.42.99.0/24"
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    # A short data dir: containerd's socket path must stay under the 108-byte unix socket limit.
    data_dir = Path(tempfile.mkdtemp(prefix="kybj-", dir="/tmp"))
    srv = ServerProcess.start(tmp_path / "server")
    agent: subprocess.Popen[bytes] | None = None
    log = tmp_path / "agent.log"
    try:
        token = create_token(srv)
        port = str(free_port())
        extra = ["--kubelet-arg", "drain-on-exit"] if "--drain-on-exit" in flags else []
        with open(log, "ab") as out:
            agent = subprocess.Popen(
                [*KYB, "agent", "--server", srv.url, "--token", token, "--data-dir", str(data_dir),
                 "--node-name", "second", "--node-ip", "127.0.0.1", "--kubelet-port", port, "--cni-bridge", bridge,
                 "--default-pod-cidr", cidr, "-v", *extra],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def node_ready() -> bool:
            res = srv.kubectl("get", "node", "second", "-o", "json", check=False)
            if res.returncode != 0:
                return False
            conds = json.loads(res.stdout).get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        _wait("node second to be Ready", node_ready, 120, agent, log)
        srv.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-second", "namespace": "default"},
            # No service account token: this server runs without the controller manager that
            # makes the "default" ServiceAccount.
            "spec": {"nodeName": "second", "terminationGracePeriodSeconds": 1, "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "docker.io/library/busybox:1.36",
                                     "command": ["sleep", "3600"]}]},
        }))

        def running() -> bool:
            res = srv.kubectl("get", "pod", "on-second", "-o", "jsonpath={.status.phase}", check=False)
            return res.stdout.strip() == "Running"

        def diag() -> str:
            pod = srv.kubectl("get", "pod", "on-second", "-o", "yaml", check=False).stdout
            events = srv.kubectl("get", "events", "-A", check=False).stdout
            try:
                runtime_log = (data_dir / "logs" / "containerd.log").read_text(errors="replace")[-3000:]
            except OSError:
                runtime_log = "(no containerd log)"
            return f"{pod}\n{events}\n{runtime_log}"

        _wait("pod on-second to run", running, 180, agent, log, diag)
        srv.kubectl("delete", "pod", "on-second", "--wait=true", "--timeout=60s")

        # Stopping the agent stops its kubelet, which stops its containerd.
        agent.send_signal(15)
        assert agent.wait(120) == 0, log.read_text(errors="replace")[-6000:]
        stopped = Containerd(data_dir)
        assert stopped.find_running_pid() is None, "the agent left its containerd running"
        if "--drain-on-exit" in flags:
            assert stopped.shim_pids() == [], "pods outlived the drain"
            assert mounts_under(data_dir) == [], "mounts outlived the drain"
    finally:
        _stop_all(agent, srv, data_dir, bridge, ip_forward)


def test_kube_proxy_kind_issues_the_kube_proxy_identity_only(server: ServerProcess, tmp_path: Path) -> None:
    """The agent's kube-proxy gets its own client certificate, ``CN=system:kube-proxy`` and no
    group (k3s' kube-proxy identity, bound to system:node-proxier), and its own kubeconfig; the
    kind mints nothing else."""
    token = create_token(server)
    cfg = agent_config(server, token, tmp_path / "agent", "node-proxy")
    creds = ensure_credentials(cfg)
    assert creds.proxy_kubeconfig != creds.kubeconfig
    cert = x509.load_pem_x509_certificate((cfg.agent_dir / "kube-proxy.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=system:kube-proxy"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert oct((cfg.agent_dir / "kube-proxy.key").stat().st_mode & 0o777) == "0o600"
    review = json.loads(server.kubectl("--kubeconfig", str(creds.proxy_kubeconfig), "auth", "whoami",
                                       "-o", "json").stdout)
    assert review["status"]["userInfo"]["username"] == "system:kube-proxy"
    assert "system:nodes" not in review["status"]["userInfo"].get("groups", [])
    assert ensure_credentials(cfg).proxy_kubeconfig == creds.proxy_kubeconfig  # kept while good

    secret = join.parse_token(token).secret
    base = {"nodeName": "node-proxy-2", "nodePassword": "q" * 32, "kind": "kube-proxy"}
    cn, o = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME
    for attrs in [((cn, "system:node:node-proxy-2"), (o, "system:nodes")),
                  ((cn, "system:kube-proxy"), (o, "system:masters")),
                  ((cn, "system:kube-controller-manager"),)]:
        code, doc = post_credentials(server, secret, {**base, "csr": csr_pem(*attrs)})
        assert code == 403, (attrs, doc)
    assert post_credentials(server, secret, {**base, "kind": "admin", "csr": "x"})[0] == 400
    code, doc = post_credentials(server, secret, {**base, "csr": csr_pem((cn, "system:kube-proxy"))})
    assert code == 200, doc


# --- node settings ----------------------------------------------------------------------------------


def _bootstrap_secret(server: ServerProcess, token_id: str, secret: str) -> None:
    server.kubectl("-n", "kube-system", "create", "secret", "generic", f"bootstrap-token-{token_id}",
                   "--type", "bootstrap.kubernetes.io/token", f"--from-literal=token-id={token_id}",
                   f"--from-literal=token-secret={secret}", "--from-literal=usage-bootstrap-authentication=true")


def get_node_config(server: ServerProcess, ctx: ssl.SSLContext, bearer: str = "") -> tuple[int, dict]:  # type: ignore[type-arg]
    req = urllib.request.Request(server.url + join.NODE_CONFIG_PATH,
                                 headers={"Authorization": f"Bearer {bearer}"} if bearer else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_node_config_is_for_nodes_and_join_tokens_only(server: ServerProcess, tmp_path: Path) -> None:
    """The server's node settings: to a node's client certificate, a K10 token's secret and a
    bootstrap token; 401 for a token nobody knows, 403 in Kubernetes' words for anyone else."""
    from kybernetes.agent import fetch_node_settings
    from kybernetes.pki import PKI

    # The test server runs without the cloud-controller-manager: kubelets keep their own cloud provider.
    want = {"cloudProvider": "", "clusterDNS": "10.43.0.10", "clusterDomain": "cluster.local",
            "serviceCIDR": "10.43.0.0/16", "clusterCIDR": "10.42.0.0/16"}
    token = create_token(server)
    cfg = agent_config(server, token, tmp_path / "agent", "node-settings")
    creds = ensure_credentials(cfg)
    assert get_node_config(server, client_context(server, creds.client_cert, creds.client_key)) == (200, want)
    assert fetch_node_settings(cfg) == join.NodeSettings("", "10.43.0.10", "cluster.local", "10.43.0.0/16",
                                                         "10.42.0.0/16")
    assert get_node_config(server, client_context(server), join.parse_token(token).secret) == (200, want)
    _bootstrap_secret(server, "nodcfg", "0123456789abcdef")
    deadline = time.monotonic() + 20  # the bootstrap token authenticator reads the watch cache
    while (got := get_node_config(server, client_context(server), "nodcfg.0123456789abcdef"))[0] == 401:
        assert time.monotonic() < deadline, "the bootstrap token never authenticated"
        time.sleep(0.1)
    assert got == (200, want)

    status, body = get_node_config(server, client_context(server), "not-a-token")
    assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
    jane_crt, jane_key = tmp_path / "jane.crt", tmp_path / "jane.key"
    cert, key = PKI.load_or_create(server.data_dir).issue("jane", organizations=("developers",), client=True)
    jane_crt.write_bytes(cert)
    jane_key.write_bytes(key)
    for ctx, user in ((client_context(server, jane_crt, jane_key), "jane"),
                      (client_context(server), "system:anonymous")):
        status, body = get_node_config(server, ctx)
        assert (status, body["reason"]) == (403, "Forbidden")
        assert body["message"] == f'forbidden: User "{user}" cannot get path "{join.NODE_CONFIG_PATH}"'


def test_an_agent_joining_kyb_server_runs_its_node_as_the_server_says(tmp_path: Path) -> None:
    """`kyb server` with the cloud-controller-manager and its own ranges and domain: an agent that
    joins with no flags of its own runs its kubelet with --cloud-provider=external and the server's
    DNS, and kube-proxy with the server's ranges (the agent's start up to its children)."""
    from kybernetes.agent import join_with_retry, kubelet_args, proxy_args

    srv = ServerProcess.start(tmp_path / "server", "--service-cluster-ip-range", "10.96.0.0/12",
                              "--cluster-cidr", "10.244.0.0/16", "--cluster-domain", "corp.local", cloud=True)
    try:
        cfg = agent_config(srv, create_token(srv), tmp_path / "agent", "node-told")
        joined = join_with_retry(cfg)
        assert joined is not None
        creds, told = joined
        kubelet = " ".join(kubelet_args(told, creds))
        assert "--cloud-provider external" in kubelet
        assert "--cluster-dns 10.96.0.10" in kubelet and "--cluster-domain corp.local" in kubelet
        proxy = " ".join(proxy_args(told, creds))
        assert "--cluster-cidr 10.244.0.0/16" in proxy and "--service-cluster-ip-range 10.96.0.0/12" in proxy
    finally:
        srv.stop()


def test_an_older_server_without_node_settings_leaves_the_agents_defaults(tmp_path: Path) -> None:
    """A server that answers the node settings with 404 (one from before them): the agent keeps
    its own defaults; one that answers something else than node settings stops the agent."""
    import http.server
    import threading

    from kybernetes.agent import fetch_node_settings
    from kybernetes.pki import PKI

    pki = PKI.load_or_create(tmp_path / "old-server")
    crt, key = pki.issue("old-server", ip_addresses=("127.0.0.1",), server=True)
    (tmp_path / "srv.crt").write_bytes(crt)
    (tmp_path / "srv.key").write_bytes(key)
    answers = {join.NODE_CONFIG_PATH: (404, b'{"kind":"Status","code":404,"message":"the server could not '
                                            b'find the requested resource"}')}

    class OldServer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = answers[self.path]
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OldServer)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = AgentConfig(server=f"https://127.0.0.1:{httpd.server_address[1]}", token="unused",
                          data_dir=tmp_path / "agent", node_name="old-node")
        cfg.agent_dir.mkdir(parents=True)
        (cfg.agent_dir / "ca.crt").write_bytes(pki.ca_pem)
        node_crt, node_key = pki.issue("system:node:old-node", organizations=("system:nodes",), client=True)
        (cfg.agent_dir / "client.crt").write_bytes(node_crt)
        (cfg.agent_dir / "client.key").write_bytes(node_key)
        assert fetch_node_settings(cfg) is None
        answers[join.NODE_CONFIG_PATH] = (200, b'{"cloudProvider": "aws"}')
        with pytest.raises(JoinError, match="unknown cloud provider 'aws'"):
            fetch_node_settings(cfg)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
