"""Kubernetes' url, ip, cidr and sets CEL libraries (``k8s.io/apiserver/pkg/cel/library``:
``urls.go``, ``ip.go``, ``cidr.go``, ``sets.go``), as custom functions.

As with quantities (:mod:`.library`), a URL, IP or CIDR value is a one-key map naming its kind
(``{"__kyb_url__": "https://x"}``): cel-expr-python cannot carry an opaque Python value. A
function given a value of another kind fails with ``no such overload`` when evaluated.

- ``url(string)`` (an absolute URI or an absolute path), ``isURL(string)``, and ``getScheme``,
  ``getHost``, ``getHostname``, ``getPort``, ``getEscapedPath``, ``getQuery``;
- ``ip(string)`` (no IPv4-mapped IPv6, no zone), ``isIP(string)``, ``ip.isCanonical(string)``,
  and ``family``, ``isUnspecified``, ``isLoopback``, ``isLinkLocalMulticast``,
  ``isLinkLocalUnicast``, ``isGlobalUnicast``;
- ``cidr(string)``, ``isCIDR(string)``, and ``containsIP`` (IP or string), ``containsCIDR``
  (CIDR or string), ``ip``, ``masked``, ``prefixLength``;
- ``sets.contains``, ``sets.equivalent``, ``sets.intersects`` on lists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cel_expr_python.cel as ce

from kybernetes.cel.library import member

URL_KEY, IP_KEY, CIDR_KEY = "__kyb_url__", "__kyb_ip__", "__kyb_cidr__"
_S, _B, _I = ce.Type.STRING, ce.Type.BOOL, ce.Type.INT
_T = ce.Type.Map(ce.Type.STRING, ce.Type.STRING)
_L = ce.Type.List(ce.Type.DYN)
_QUERY = ce.Type.Map(ce.Type.STRING, ce.Type.List(ce.Type.STRING))


def _unwrap(value: Any, key: str) -> str:
    if isinstance(value, dict) and key in value:
        return str(value[key])
    raise ValueError("no such overload")


def _global(name: str, oid: str, ret: Any, params: list[Any], impl: Callable[..., Any]) -> ce.FunctionDecl:
    return ce.FunctionDecl(name, [ce.Overload(oid, ret, params, impl=impl)])


# --- url ---------------------------------------------------------------------------------------


def _parse_url(text: str) -> Any:
    parts = urlsplit(text)
    if not (parts.scheme and (parts.netloc or parts.path)) and not text.startswith("/"):
        raise ValueError(f"URL parse error during conversion from string: parse \"{text}\": invalid URI for request")
    return parts


def _url(text: str) -> dict[str, str]:
    _parse_url(text)
    return {URL_KEY: text}


def _is_url(text: str) -> bool:
    try:
        _parse_url(text)
    except ValueError:
        return False
    return True


def _url_part(part: str) -> Callable[[Any], Any]:
    def get(value: Any) -> Any:
        u = _parse_url(_unwrap(value, URL_KEY))
        if part == "scheme":
            return u.scheme
        if part == "host":
            return u.netloc.rpartition("@")[2]
        if part == "hostname":
            return u.hostname or ""
        if part == "port":
            return str(u.port) if u.port is not None else ""
        if part == "path":
            return u.path
        return {k: v for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    return get


def _url_functions() -> list[ce.FunctionDecl]:
    getters = (("getScheme", "scheme", _S), ("getHost", "host", _S), ("getHostname", "hostname", _S),
               ("getPort", "port", _S), ("getEscapedPath", "path", _S), ("getQuery", "query", _QUERY))
    return [
        _global("url", "string_to_url", _T, [_S], _url),
        _global("isURL", "is_url_string", _B, [_S], _is_url),
        *(ce.FunctionDecl(name, [member(f"url_{part}", ret, [_T], _url_part(part))]) for name, part, ret in getters),
    ]


# --- ip and cidr -------------------------------------------------------------------------------


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if "%" in text:
        raise ValueError(f"IP Address \"{text}\" with zone value is not allowed")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as e:
        raise ValueError(f"IP Address \"{text}\" parse error during conversion from string: {e}")
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise ValueError(f"IPv4-mapped IPv6 address \"{text}\" is not allowed")
    return addr


def _ip_of(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return _parse_ip(value if isinstance(value, str) else _unwrap(value, IP_KEY))


def _parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        if "/" not in text:
            raise ValueError("no '/'")
        return ipaddress.ip_interface(text)
    except ValueError as e:
        raise ValueError(f"network address \"{text}\" parse error during conversion from string: {e}")


def _cidr_of(value: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return _parse_cidr(value if isinstance(value, str) else _unwrap(value, CIDR_KEY))


def _ok(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            parse(text)
        except ValueError:
            return False
        return True
    return check


def _ip_functions() -> list[ce.FunctionDecl]:
    preds: tuple[tuple[str, Callable[[Any], bool]], ...] = (
        ("isUnspecified", lambda a: a.is_unspecified), ("isLoopback", lambda a: a.is_loopback),
        ("isLinkLocalMulticast", lambda a: a.is_multicast and a.is_link_local),
        ("isLinkLocalUnicast", lambda a: a.is_link_local and not a.is_multicast),
        ("isGlobalUnicast", lambda a: not (a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local
                                           or a == ipaddress.IPv4Address("255.255.255.255"))))
    return [
        ce.FunctionDecl("ip", [
            ce.Overload("string_to_ip", _T, [_S], impl=lambda s: {IP_KEY: str(_parse_ip(s))}),
            member("cidr_ip", _T, [_T], lambda c: {IP_KEY: str(_cidr_of(c).ip)})]),
        _global("isIP", "is_ip_string", _B, [_S], _ok(_parse_ip)),
        _global("ip.isCanonical", "ip_is_canonical", _B, [_S], lambda s: str(_parse_ip(s)) == s),
        ce.FunctionDecl("family", [member("ip_family", _I, [_T], lambda a: _ip_of(a).version)]),
        *(ce.FunctionDecl(name, [member(f"ip_{name}", _B, [_T], lambda a, p=pred: bool(p(_ip_of(a))))])
          for name, pred in preds),
    ]


def _cidr_functions() -> list[ce.FunctionDecl]:
    def contains_ip(c: Any, ip: Any) -> bool:
        return _ip_of(ip) in _cidr_of(c).network

    def contains_cidr(c: Any, other: Any) -> bool:
        inner, outer = _cidr_of(other).network, _cidr_of(c).network
        return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]

    return [
        _global("cidr", "string_to_cidr", _T, [_S], lambda s: {CIDR_KEY: str(_parse_cidr(s))}),
        _global("isCIDR", "is_cidr_string", _B, [_S], _ok(_parse_cidr)),
        ce.FunctionDecl("containsIP", [member("cidr_contains_ip_string", _B, [_T, _S], contains_ip),
                                       member("cidr_contains_ip_ip", _B, [_T, _T], contains_ip)]),
        ce.FunctionDecl("containsCIDR", [member("cidr_contains_cidr_string", _B, [_T, _S], contains_cidr),
                                         member("cidr_contains_cidr", _B, [_T, _T], contains_cidr)]),
        ce.FunctionDecl("masked", [member("cidr_masked", _T, [_T],
                                           lambda c: {CIDR_KEY: str(_cidr_of(c).network)})]),
        ce.FunctionDecl("prefixLength", [member("cidr_prefix_length", _I, [_T],
                                                 lambda c: _cidr_of(c).network.prefixlen)]),
    ]


# --- sets --------------------------------------------------------------------------------------


def _sets_functions() -> list[ce.FunctionDecl]:
    return [
        _global("sets.contains", "list_sets_contains_list", _B, [_L, _L], lambda a, b: all(x in a for x in b)),
        _global("sets.equivalent", "list_sets_equivalent_list", _B, [_L, _L],
                lambda a, b: all(x in b for x in a) and all(x in a for x in b)),
        _global("sets.intersects", "list_sets_intersects_list", _B, [_L, _L], lambda a, b: any(x in a for x in b)),
    ]


def network_functions() -> list[ce.FunctionDecl]:
    """The url, ip, cidr and sets functions, for an environment's ``functions``."""
    return _url_functions() + _ip_functions() + _cidr_functions() + _sets_functions()


__all__ = ["CIDR_KEY", "IP_KEY", "URL_KEY", "network_functions"]
