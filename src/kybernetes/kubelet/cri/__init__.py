"""The Container Runtime Interface: generated runtime.v1 messages and an async client.

`api` is the generated message module (`api.PodSandboxConfig`, `api.ContainerConfig`, ...), made
from `api.proto` (a subset of the CRI written for kybernetes) by scripts/gen-cri.sh; `CRIClient`
(in `client`) calls a runtime's RuntimeService and ImageService over a unix socket.
"""

from kybernetes.kubelet.cri import api_pb2 as api
from kybernetes.kubelet.cri.client import (
    AlreadyExistsError,
    CRIClient,
    CRIError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    UnimplementedError,
)

__all__ = [
    "AlreadyExistsError",
    "CRIClient",
    "CRIError",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "NotFoundError",
    "UnavailableError",
    "UnimplementedError",
    "api",
]
