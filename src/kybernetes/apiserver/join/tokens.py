"""The join token store: ``DATA_DIR/join-tokens``, which ``kyb token`` edits and the server reads.

Tokens live in ``DATA_DIR/join-tokens`` (JSON, mode 0600, in the 0700 data dir). The secrets are
stored as they are, like kubeadm's bootstrap-token Secrets and k3s' token file: whoever can read
the file can also read ``tls/ca.key``, so hashing them would protect nothing while making
``kyb token list`` unable to show a token again. The server re-reads the file on every join
request (joins are rare), so ``kyb token create`` and ``kyb token delete`` act at once without
talking to the server. Expired tokens are refused and dropped on the next write. The token format
itself is :mod:`kybernetes.join`'s.

The *server* token (``K10<CA hash>::server:<secret>``, k3s's ``server/token``) lives apart, in
``DATA_DIR/server-token`` (the full token, mode 0600): it lets a machine join as another server
(``kyb server --server URL --token T``) and fetch the cluster's CA keys, so it is not one of the
agent tokens (``kyb token create/list/delete`` never touch it; an agent may still join with it, as
in k3s); ``kyb token server`` prints it. A server with an
embedded etcd makes it at its first start, and a server that joins keeps the token it joined with,
so every server of a cluster holds the same one. A server without one (SQLite, external etcd)
accepts no server token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hmac
import json
import os
import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from kybernetes.fileutil import write_atomic
from kybernetes.join import SERVER_TOKEN_USER, format_token, parse_token

TOKENS_FILE = "join-tokens"
SERVER_TOKEN_FILE = "server-token"
DEFAULT_TTL = dt.timedelta(hours=24)
_SECRET_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_LEN = 32  # ~165 bits: guessing is hopeless, so no rate limiting is needed


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class TokenEntry:
    secret: str
    description: str = ""
    created: str = ""
    expires: str | None = None
    """RFC 3339; None: never."""
    default: bool = False
    """The server's own token (printed by ``kyb server`` on every start)."""

    def expires_at(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.expires) if self.expires else None

    def expired(self, now: dt.datetime | None = None) -> bool:
        at = self.expires_at()
        return at is not None and at <= (now or _now())

    @property
    def id(self) -> str:
        """A short name for listings and logs; not enough to use the token."""
        return self.secret[:6]


def tokens_path(data_dir: Path) -> Path:
    return data_dir / TOKENS_FILE


def read_ca(data_dir: Path) -> bytes:
    """The cluster CA of a server data dir; tokens need it, so it must exist (start the server once)."""
    path = data_dir / "tls" / "ca.crt"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no cluster CA at {path}: start `kyb server --data-dir {data_dir}` once "
                                "(or pass the server's --data-dir)") from None


def load_tokens(data_dir: Path) -> list[TokenEntry]:
    path = tokens_path(data_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    out = []
    for item in raw.get("tokens", []):
        if isinstance(item, dict) and isinstance(item.get("secret"), str):
            out.append(TokenEntry(**{k: v for k, v in item.items() if k in TokenEntry.__dataclass_fields__}))
    return out


@contextlib.contextmanager
def _locked_tokens(data_dir: Path) -> Iterator[list[TokenEntry]]:
    """Read-modify-write of the token file under an exclusive lock (two `kyb token create` at
    once must not lose one); the write is atomic (rename), so the server never reads half a file."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_path = data_dir / f".{TOKENS_FILE}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = load_tokens(data_dir)
        yield entries
        now = _now()
        keep = [e for e in entries if not e.expired(now)]
        path = tokens_path(data_dir)
        write_atomic(path, json.dumps({"tokens": [asdict(e) for e in keep]}, indent=1).encode(), 0o600)
    finally:
        os.close(fd)


def new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LEN))


def create_token(data_dir: Path, *, ttl: dt.timedelta | None = DEFAULT_TTL, description: str = "",
                 default: bool = False) -> str:
    """Add a token to the server's token file; returns the full token (K10...)."""
    ca_pem = read_ca(data_dir)
    now = _now()
    entry = TokenEntry(secret=new_secret(), description=description, created=now.isoformat(timespec="seconds"),
                       expires=(now + ttl).isoformat(timespec="seconds") if ttl else None, default=default)
    with _locked_tokens(data_dir) as entries:
        entries.append(entry)
    return format_token(ca_pem, entry.secret)


def server_token(data_dir: Path) -> str:
    """The server's default join token (never expires), made on first call; what ``kyb server``
    prints. ``kyb token delete`` revokes it like any other; the next start then makes a new one."""
    ca_pem = read_ca(data_dir)
    for e in load_tokens(data_dir):
        if e.default and not e.expired():
            return format_token(ca_pem, e.secret)
    return create_token(data_dir, ttl=None, description="default token of kyb server", default=True)


def delete_token(data_dir: Path, token: str) -> bool:
    """Revoke by full token, secret, or the short id ``kyb token list`` shows (if unambiguous)."""
    token = token.strip()
    with contextlib.suppress(ValueError):
        token = parse_token(token).secret
    with _locked_tokens(data_dir) as entries:
        matches = [e for e in entries if hmac.compare_digest(e.secret, token)]
        if not matches:
            by_id = [e for e in entries if e.id == token]
            matches = by_id if len(by_id) == 1 else []
        for e in matches:
            entries.remove(e)
    return bool(matches)


def verify_secret(data_dir: Path, secret: str, now: dt.datetime | None = None) -> TokenEntry | None:
    """The live token with this secret, or None (unknown, revoked or expired)."""
    found = None
    # Compare against every entry (no early exit) so timing says nothing about which one matched.
    for e in load_tokens(data_dir):
        if hmac.compare_digest(e.secret.encode(), secret.encode()) and not e.expired(now):
            found = e
    return found


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> dt.timedelta | None:
    """Go-style durations (``24h``, ``1h30m``, ``90s``) plus ``d``; ``0`` means never expires."""
    text = text.strip()
    if text in ("0", "0s", "never"):
        return None
    pos, total = 0, 0.0
    unit_s = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * unit_s[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (examples: 24h, 1h30m, 7d, 0 for never)")
    return dt.timedelta(seconds=total)


# --- the server token ------------------------------------------------------------------------------


def server_token_path(data_dir: Path) -> Path:
    return data_dir / SERVER_TOKEN_FILE


def read_server_token(data_dir: Path) -> str | None:
    """This data dir's server token (the full token), or None if it has none."""
    try:
        return server_token_path(data_dir).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_server_token(data_dir: Path) -> str:
    """The data dir's server token, made on first call for its cluster CA."""
    token = read_server_token(data_dir)
    if token is None:
        token = format_token(read_ca(data_dir), new_secret(), SERVER_TOKEN_USER)
        write_server_token(data_dir, token)
    return token


def write_server_token(data_dir: Path, token: str) -> None:
    """Keeps ``token`` (checked to be a server token) as this data dir's."""
    parse_token(token, SERVER_TOKEN_USER)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(server_token_path(data_dir), (token.strip() + "\n").encode(), 0o600)


def verify_server_secret(data_dir: Path, secret: str) -> bool:
    """Whether ``secret`` is the secret of this data dir's server token (False without one)."""
    token = read_server_token(data_dir)
    if token is None:
        return False
    try:
        want = parse_token(token, SERVER_TOKEN_USER).secret
    except ValueError:
        return False
    return hmac.compare_digest(want.encode(), secret.encode())
