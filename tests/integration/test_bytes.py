"""``[]byte`` fields as kube-apiserver decodes them: the documentation's TLS Secret, wrapped base64.

The Kubernetes documentation's TLS Secret (concepts/configuration/secret, "TLS Secrets") writes
``tls.crt`` and ``tls.key`` as YAML block scalars holding base64 wrapped at 76 columns, as the
``base64`` tool prints it. Go's decoder skips the line breaks, so kube-apiserver accepts it and
returns the data re-encoded on one line; a value Go cannot decode is a 400 from the decoder.
"""

from __future__ import annotations

import base64
import json
import textwrap

import pytest

from kybernetes.testing import ServerProcess

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration


def pem_pair(server: ServerProcess) -> tuple[bytes, bytes]:
    """A real certificate and key (the server's admin client pair)."""
    tls = server.data_dir / "tls"
    return (tls / "admin.crt").read_bytes(), (tls / "admin.key").read_bytes()


def wrapped(data: bytes) -> str:
    """What ``base64`` prints: 76 columns, a newline after every line."""
    return base64.encodebytes(data).decode()


def tls_secret_manifest(name: str, crt: bytes, key: bytes) -> str:
    def block(data: bytes) -> str:
        return textwrap.indent(wrapped(data), "    ")

    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\ndata:\n"
            f"  tls.crt: |\n{block(crt)}  tls.key: |\n{block(key)}")


def test_documented_tls_secret_with_wrapped_base64_through_kubectl(server: ServerProcess, namespace: str) -> None:
    crt, key = pem_pair(server)
    manifest = tls_secret_manifest("secret-tls", crt, key)
    assert wrapped(crt).count("\n") > 1  # the example really is wrapped
    server.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    got = json.loads(server.kubectl("get", "secret", "secret-tls", "-n", namespace, "-o", "json").stdout)
    # Stored and served as Go re-encodes the bytes: one line, the same bytes.
    assert got["data"] == {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}
    # Applying the same manifest again writes nothing (kubectl still sends the wrapped values,
    # which differ as text from the stored ones, but decode to the same bytes).
    server.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    again = json.loads(server.kubectl("get", "secret", "secret-tls", "-n", namespace, "-o", "json").stdout)
    assert again["metadata"]["resourceVersion"] == got["metadata"]["resourceVersion"]


def test_wrapped_base64_through_the_official_client(api: client.ApiClient, server: ServerProcess,
                                                    namespace: str) -> None:
    crt, key = pem_pair(server)
    core = client.CoreV1Api(api)
    body = client.V1Secret(metadata=client.V1ObjectMeta(name="wrapped"), type="kubernetes.io/tls",
                           data={"tls.crt": wrapped(crt), "tls.key": wrapped(key).replace("\n", "\r\n")})
    created = core.create_namespaced_secret(namespace, body)
    assert base64.b64decode(created.data["tls.crt"]) == crt
    assert base64.b64decode(created.data["tls.key"]) == key
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bin"), binary_data={"blob": wrapped(bytes(range(200)))})
    assert core.create_namespaced_config_map(namespace, cm).binary_data == {
        "blob": base64.b64encode(bytes(range(200))).decode()}


@pytest.mark.parametrize(("value", "offset"), [("dGVzdA", 4), ("dGVz dA==", 4), ("dGVzdA==\n=", 9)],
                         ids=["unpadded", "space", "garbage"])
def test_bad_base64_is_the_decoders_400(api: client.ApiClient, server: ServerProcess, namespace: str,
                                        value: str, offset: int) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret(namespace, {"apiVersion": "v1", "kind": "Secret",
                                                  "metadata": {"name": "bad"}, "data": {"k": value}})
    assert e.value.status == 400
    status = json.loads(e.value.body)
    assert status["reason"] == "BadRequest"
    assert status["message"] == (f'Secret in version "v1" cannot be handled as a Secret: '
                                 f"illegal base64 data at input byte {offset}")
    out = server.kubectl("create", "-n", namespace, "-f", "-", check=False,
                         input=f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\ndata:\n  k: {json.dumps(value)}\n")
    assert out.returncode != 0
    assert out.stderr.strip() == (f'Error from server (BadRequest): error when creating "STDIN": Secret in version '
                                  f'"v1" cannot be handled as a Secret: illegal base64 data at input byte {offset}')
