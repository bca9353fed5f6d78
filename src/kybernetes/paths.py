"""Where kybernetes keeps its state when no ``--data-dir`` is given.

One rule for every command that reads or writes a data dir (``kyb server``/``apiserver``,
``kyb token``, ``kyb image``, ``kyb agent``): root uses ``/var/lib/<name>``, any other user
``$XDG_DATA_HOME/<name>`` (default ``~/.local/share/<name>``).
"""

from __future__ import annotations

import os
from pathlib import Path


def _data_dir(name: str) -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib") / name
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / name


def default_data_dir() -> Path:
    """The server's data dir (its store, PKI, join tokens, and this machine's node)."""
    return _data_dir("kybernetes")


def default_agent_data_dir() -> Path:
    """``kyb agent``'s data dir (its pinned CA, node credentials and node state)."""
    return _data_dir("kybernetes-agent")
