"""Request-header authentication's header reading (``headerrequest``'s rules)."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from kybernetes.apiserver.auth.requestheader import unescape_extra_key, user_from_headers


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_the_user_groups_and_extras_are_read_as_kubernetes_reads_them() -> None:
    h = headers(("X-Remote-User", ""), ("X-Other-User", "carol"), ("X-Remote-Group", "a"), ("x-remote-group", ""),
                ("X-Remote-Group", "b"), ("X-Remote-Extra-Scopes", "1"), ("x-remote-extra-scopes", "2"),
                ("X-Remote-Extra-", "no key"))
    user = user_from_headers(h, ("x-remote-user", "x-other-user"), ("x-remote-group",), ("x-remote-extra-",))
    assert user is not None
    assert (user.name, user.groups, user.extra) == ("carol", ("a", "b"), {"scopes": ["1", "2"], "": ["no key"]})
    assert user_from_headers(headers(("X-Remote-Group", "a")), ("x-remote-user",), ("x-remote-group",), ()) is None


def test_extra_keys_are_lower_cased_then_unescaped() -> None:
    assert unescape_extra_key("acme.com%2Fproject") == "acme.com/project"
    assert unescape_extra_key("100%25") == "100%"
    assert unescape_extra_key("bad%zzescape%2F") == "bad%zzescape%2F"  # url.PathUnescape fails: kept whole
