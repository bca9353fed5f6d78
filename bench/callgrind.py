"""Instructions per call, counted by valgrind's callgrind: the benches' noise-free cost figure.

``instructions_per_call(module, case, tmp)`` runs ``python -m MODULE --run CASE N`` under
callgrind twice, for N and N + :data:`EXTRA` calls, and returns the difference per extra call, so
start-up and warm-up cancel out. The bench module's ``--run CASE N`` makes one call of the case,
then N more (:func:`run_case`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping

EXTRA = 20_000


def run_case(cases: Mapping[str, Callable[[], object]], case: str, n: int) -> None:
    """``n`` calls of ``cases[case]`` after one (which warms any memo): the body of a callgrind run."""
    fn = cases[case]
    fn()
    for _ in range(n):
        fn()


def instructions_per_call(module: str, case: str, tmp: str) -> float:
    """Instructions per call of ``case`` in bench ``module``: two callgrind runs (see the module doc)."""
    totals = []
    for n in (1_000, 1_000 + EXTRA):
        out = os.path.join(tmp, f"cg.{re.sub(r'[^A-Za-z0-9_.-]', '_', case)}.{n}")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                        "-m", module, "--run", case, str(n)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        with open(out) as f:
            found = re.search(r"^summary: (\d+)", f.read(), re.M)
        assert found is not None, "no summary line in callgrind's output"
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / EXTRA
