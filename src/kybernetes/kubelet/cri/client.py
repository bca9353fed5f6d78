"""An async client for the CRI (runtime.v1) RuntimeService and ImageService, over grpc.aio.

The kubelet speaks to the container runtime only through this class. Methods are the CRI calls in
snake_case; they take and return the generated message classes (`kybernetes.kubelet.cri.api`)
except where a call has one obvious result (an ID, a URL, a list), which is returned unwrapped.

Every call has a deadline (`timeout`, per client, overridable per call), because a kubelet must
never hang on a wedged runtime; image pulls get a longer default. gRPC failures become the small
error tree below, keyed on the status code, so callers write `except NotFoundError` instead of
inspecting `grpc.aio.AioRpcError` (containerd answers NOT_FOUND for unknown sandboxes, containers
and images, which the kubelet treats as "already gone").

A channel belongs to the event loop it was created in (grpc.aio's rule), so a client is created,
used and closed inside one loop; create it lazily with `CRIClient(endpoint)` and `await close()`
(or `async with`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import grpc
import grpc.aio

from kybernetes.kubelet import metrics
from kybernetes.kubelet.cri import api_pb2 as api
from kybernetes.kubelet.cri import api_pb2_grpc as api_grpc

CRI_API_VERSION = "v1"
DEFAULT_TIMEOUT = 10.0
PULL_TIMEOUT = 300.0
# containerd caps ExecSync output at 16 MiB per stream; allow whole responses of that size.
MAX_MESSAGE = 32 * 1024 * 1024

T = TypeVar("T")


class CRIError(Exception):
    """A CRI call failed. `code` is the gRPC status code, `details` the runtime's message."""

    def __init__(self, method: str, code: grpc.StatusCode | None, details: str) -> None:
        super().__init__(f"CRI {method}: {code.name if code else 'error'}: {details}")
        self.method = method
        self.code = code
        self.details = details

    @property
    def go_error(self) -> str:
        """The error as the kubelet prints a gRPC error (`%v`): "rpc error: code = Unknown desc = ..."."""
        if self.code is None:
            return self.details
        name = "OK" if self.code == grpc.StatusCode.OK else "".join(w.capitalize() for w in self.code.name.split("_"))
        return f"rpc error: code = {name} desc = {self.details}"


class NotFoundError(CRIError):
    """NOT_FOUND: the sandbox, container or image does not exist."""


class AlreadyExistsError(CRIError):
    """ALREADY_EXISTS: e.g. a sandbox or container name is taken."""


class InvalidArgumentError(CRIError):
    """INVALID_ARGUMENT or FAILED_PRECONDITION: the request cannot be done as asked."""


class DeadlineExceededError(CRIError):
    """The call did not finish before its deadline."""


class UnavailableError(CRIError):
    """UNAVAILABLE: the runtime is not listening (down, restarting, wrong socket)."""


class UnimplementedError(CRIError):
    """UNIMPLEMENTED: the runtime does not offer this call."""


_ERRORS: dict[grpc.StatusCode, type[CRIError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidArgumentError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}


def translate(method: str, err: grpc.aio.AioRpcError) -> CRIError:
    code = err.code()
    return _ERRORS.get(code, CRIError)(method, code, err.details() or "")


def _target(endpoint: str) -> str:
    """A gRPC target from an endpoint given as `unix:///path`, `unix:/path` or a bare path."""
    if endpoint.startswith("/"):
        return "unix://" + endpoint
    return endpoint


class CRIClient:
    """Async CRI client for one runtime endpoint (e.g. `unix:///var/lib/kyb/containerd/containerd.sock`)."""

    def __init__(self, endpoint: str, *, timeout: float = DEFAULT_TIMEOUT,
                 pull_timeout: float = PULL_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._channel: grpc.aio.Channel | None = None
        self._runtime: api_grpc.RuntimeServiceStub | None = None
        self._images: api_grpc.ImageServiceStub | None = None

    def _stubs(self) -> tuple[api_grpc.RuntimeServiceStub, api_grpc.ImageServiceStub]:
        if self._runtime is None or self._images is None:
            self._channel = grpc.aio.insecure_channel(
                _target(self.endpoint),
                options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                         ("grpc.max_send_message_length", MAX_MESSAGE)])
            self._runtime = api_grpc.RuntimeServiceStub(self._channel)
            self._images = api_grpc.ImageServiceStub(self._channel)
        return self._runtime, self._images

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._runtime = self._images = None

    async def __aenter__(self) -> CRIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, service: str, method: str, request: Any, timeout: float | None) -> Any:
        runtime, images = self._stubs()
        stub = runtime if service == "runtime" else images
        operation = metrics.operation_type(method)
        metrics.RUNTIME_OPERATIONS.labels(operation).inc()
        started = time.monotonic()
        try:
            return await getattr(stub, method)(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.aio.AioRpcError as err:
            metrics.RUNTIME_OPERATIONS_ERRORS.labels(operation).inc()
            raise translate(method, err) from None
        finally:
            metrics.RUNTIME_OPERATIONS_DURATION.labels(operation).observe(time.monotonic() - started)

    # ---- RuntimeService: runtime ----

    async def version(self, *, timeout: float | None = None) -> api.VersionResponse:
        return await self._call("runtime", "Version", api.VersionRequest(version=CRI_API_VERSION), timeout)

    async def status(self, verbose: bool = False, *, timeout: float | None = None) -> api.StatusResponse:
        """RuntimeReady / NetworkReady conditions (and, verbose, the runtime's config as JSON)."""
        return await self._call("runtime", "Status", api.StatusRequest(verbose=verbose), timeout)

    async def update_runtime_config(self, pod_cidr: str, *, timeout: float | None = None) -> None:
        request = api.UpdateRuntimeConfigRequest(
            runtime_config=api.RuntimeConfig(network_config=api.NetworkConfig(pod_cidr=pod_cidr)))
        await self._call("runtime", "UpdateRuntimeConfig", request, timeout)

    # ---- RuntimeService: sandboxes ----

    async def run_pod_sandbox(self, config: api.PodSandboxConfig, runtime_handler: str = "", *,
                              timeout: float | None = None) -> str:
        """Creates and starts a pod sandbox (pause container + network); returns its ID."""
        # Generous default: the first sandbox may unpack the pause image and set up CNI.
        response = await self._call(
            "runtime", "RunPodSandbox",
            api.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler),
            timeout if timeout is not None else max(self.timeout, 60.0))
        return response.pod_sandbox_id

    async def stop_pod_sandbox(self, pod_sandbox_id: str, *, timeout: float | None = None) -> None:
        await self._call("runtime", "StopPodSandbox",
                         api.StopPodSandboxRequest(pod_sandbox_id=pod_sandbox_id),
                         timeout if timeout is not None else max(self.timeout, 60.0))

    async def remove_pod_sandbox(self, pod_sandbox_id: str, *, timeout: float | None = None) -> None:
        await self._call("runtime", "RemovePodSandbox",
                         api.RemovePodSandboxRequest(pod_sandbox_id=pod_sandbox_id),
                         timeout if timeout is not None else max(self.timeout, 60.0))

    async def pod_sandbox_status(self, pod_sandbox_id: str, verbose: bool = False, *,
                                 timeout: float | None = None) -> api.PodSandboxStatusResponse:
        """The whole response: `.status` (state, network.ip, ...) and, if verbose, `.info`."""
        return await self._call("runtime", "PodSandboxStatus",
                                api.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id, verbose=verbose),
                                timeout)

    async def list_pod_sandbox(self, filter: api.PodSandboxFilter | None = None, *,
                               timeout: float | None = None) -> list[api.PodSandbox]:
        response = await self._call("runtime", "ListPodSandbox", api.ListPodSandboxRequest(filter=filter),
                                    timeout)
        return list(response.items)

    # ---- RuntimeService: containers ----

    async def create_container(self, pod_sandbox_id: str, config: api.ContainerConfig,
                               sandbox_config: api.PodSandboxConfig, *,
                               timeout: float | None = None) -> str:
        response = await self._call(
            "runtime", "CreateContainer",
            api.CreateContainerRequest(pod_sandbox_id=pod_sandbox_id, config=config,
                                       sandbox_config=sandbox_config),
            timeout if timeout is not None else max(self.timeout, 60.0))
        return response.container_id

    async def start_container(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._call("runtime", "StartContainer", api.StartContainerRequest(container_id=container_id),
                         timeout if timeout is not None else max(self.timeout, 60.0))

    async def stop_container(self, container_id: str, timeout: int = 0, *,
                             call_timeout: float | None = None) -> None:
        """SIGTERM (or the image's stop signal), SIGKILL after `timeout` seconds (0: at once)."""
        await self._call("runtime", "StopContainer",
                         api.StopContainerRequest(container_id=container_id, timeout=timeout),
                         call_timeout if call_timeout is not None else self.timeout + timeout)

    async def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._call("runtime", "RemoveContainer", api.RemoveContainerRequest(container_id=container_id),
                         timeout if timeout is not None else max(self.timeout, 60.0))

    async def list_containers(self, filter: api.ContainerFilter | None = None, *,
                              timeout: float | None = None) -> list[api.Container]:
        response = await self._call("runtime", "ListContainers", api.ListContainersRequest(filter=filter),
                                    timeout)
        return list(response.containers)

    async def container_status(self, container_id: str, verbose: bool = False, *,
                               timeout: float | None = None) -> api.ContainerStatusResponse:
        """The whole response: `.status` (state, exit_code, reason, ...) and, if verbose, `.info`."""
        return await self._call("runtime", "ContainerStatus",
                                api.ContainerStatusRequest(container_id=container_id, verbose=verbose),
                                timeout)

    async def update_container_resources(self, container_id: str, linux: api.LinuxContainerResources, *,
                                         annotations: Mapping[str, str] | None = None,
                                         timeout: float | None = None) -> None:
        await self._call("runtime", "UpdateContainerResources",
                         api.UpdateContainerResourcesRequest(container_id=container_id, linux=linux,
                                                             annotations=dict(annotations or {})),
                         timeout)

    async def reopen_container_log(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._call("runtime", "ReopenContainerLog",
                         api.ReopenContainerLogRequest(container_id=container_id), timeout)

    async def container_stats(self, container_id: str, *,
                              timeout: float | None = None) -> api.ContainerStats:
        response = await self._call("runtime", "ContainerStats",
                                    api.ContainerStatsRequest(container_id=container_id), timeout)
        return response.stats

    async def list_container_stats(self, filter: api.ContainerStatsFilter | None = None, *,
                                   timeout: float | None = None) -> list[api.ContainerStats]:
        response = await self._call("runtime", "ListContainerStats",
                                    api.ListContainerStatsRequest(filter=filter), timeout)
        return list(response.stats)

    # ---- RuntimeService: streaming ----

    async def exec_sync(self, container_id: str, cmd: Iterable[str], timeout: int = 0, *,
                        call_timeout: float | None = None) -> tuple[int, bytes, bytes]:
        """Runs `cmd` in the container; returns (exit_code, stdout, stderr).

        `timeout` (seconds, 0 = none) is the runtime's limit on the command; the gRPC deadline is a
        little longer so the runtime's own timeout answer arrives first.
        """
        deadline = call_timeout if call_timeout is not None else (
            timeout + 5.0 if timeout else max(self.timeout, 60.0))
        response = await self._call("runtime", "ExecSync",
                                    api.ExecSyncRequest(container_id=container_id, cmd=list(cmd),
                                                        timeout=timeout), deadline)
        return response.exit_code, response.stdout, response.stderr

    async def exec(self, request: api.ExecRequest, *, timeout: float | None = None) -> str:
        """Prepares a streaming exec; returns the runtime's URL for it."""
        return (await self._call("runtime", "Exec", request, timeout)).url

    async def attach(self, request: api.AttachRequest, *, timeout: float | None = None) -> str:
        return (await self._call("runtime", "Attach", request, timeout)).url

    async def port_forward(self, pod_sandbox_id: str, ports: Iterable[int] = (), *,
                           timeout: float | None = None) -> str:
        return (await self._call("runtime", "PortForward",
                                 api.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=list(ports)),
                                 timeout)).url

    # ---- ImageService ----

    async def list_images(self, filter: api.ImageFilter | None = None, *,
                          timeout: float | None = None) -> list[api.Image]:
        response = await self._call("images", "ListImages", api.ListImagesRequest(filter=filter), timeout)
        return list(response.images)

    async def image_status(self, image: str, verbose: bool = False, *,
                           timeout: float | None = None) -> api.Image | None:
        """The image, or None when the runtime does not have it."""
        response = await self._call("images", "ImageStatus",
                                    api.ImageStatusRequest(image=api.ImageSpec(image=image), verbose=verbose),
                                    timeout)
        return response.image if response.HasField("image") else None

    async def pull_image(self, image: str, auth: api.AuthConfig | None = None,
                         sandbox_config: api.PodSandboxConfig | None = None, *,
                         timeout: float | None = None) -> str:
        """Pulls `image`; returns the image reference the runtime uses for it (its ID)."""
        response = await self._call("images", "PullImage",
                                    api.PullImageRequest(image=api.ImageSpec(image=image), auth=auth,
                                                         sandbox_config=sandbox_config),
                                    timeout if timeout is not None else self.pull_timeout)
        return response.image_ref

    async def remove_image(self, image: str, *, timeout: float | None = None) -> None:
        await self._call("images", "RemoveImage", api.RemoveImageRequest(image=api.ImageSpec(image=image)),
                         timeout)

    async def image_fs_info(self, *, timeout: float | None = None) -> api.ImageFsInfoResponse:
        return await self._call("images", "ImageFsInfo", api.ImageFsInfoRequest(), timeout)
