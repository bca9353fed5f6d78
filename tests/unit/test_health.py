"""/livez and /readyz bodies as kube-apiserver's healthz package writes them (healthz_test.go's cases)."""

from __future__ import annotations

from multidict import MultiDict, MultiDictProxy

from kybernetes.apiserver import health


async def _ok() -> None:
    return None


async def _bad() -> None:
    raise RuntimeError("this will fail")


def _q(**kw: str) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(kw))


async def _serve(sub: str, checks: dict[str, health.Check], **query: str) -> tuple[int, str]:
    resp = await health.serve("readyz", sub, checks, _q(**query))
    return resp.status, resp.body.decode()


async def test_all_pass() -> None:
    checks = {"ping": _ok, "etcd": _ok}
    assert await _serve("", checks) == (200, "ok")
    assert await _serve("", checks, verbose="") == (200, "[+]ping ok\n[+]etcd ok\nreadyz check passed\n")
    assert await _serve("etcd", checks) == (200, "ok")


async def test_a_failing_check_fails_the_endpoint_verbose_or_not_and_withholds_the_reason() -> None:
    checks = {"ping": _ok, "bad": _bad}
    failed = (500, "[+]ping ok\n[-]bad failed: reason withheld\nreadyz check failed\n")
    assert await _serve("", checks) == failed
    assert await _serve("", checks, verbose="") == failed
    assert await _serve("bad", checks) == (500, "internal server error: this will fail\n")
    assert await _serve("ping", checks) == (200, "ok")
    assert (await _serve("nope", checks))[0] == 404


async def test_exclude() -> None:
    checks = {"ping": _ok, "bad": _bad}
    assert await _serve("", checks, exclude="bad") == (200, "ok")
    assert await _serve("", checks, verbose="true", exclude="bad") == (
        200, "[+]ping ok\n[+]bad excluded: ok\nreadyz check passed\n")
