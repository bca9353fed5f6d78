"""Files that are either the old or the new version, never half of one.

:func:`write_atomic` writes to ``<name>.tmp`` next to the target, fsyncs it, sets the mode
exactly (``O_CREAT``'s mode is masked by the umask, and a left-over temporary file keeps its old
mode) and renames it over the target, so a crash leaves the previous content or the new one and
a reader never sees a partial key, certificate, kubeconfig or token store. The rename is atomic
on one filesystem, which the temporary file's place guarantees.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``) atomically and durably."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
