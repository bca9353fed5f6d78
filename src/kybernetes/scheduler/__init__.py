"""kube-scheduler, in Python: the scheduling framework, the default plugins, queue and cache.

Modules: :mod:`.config` (KubeSchedulerConfiguration), :mod:`.framework` (extension points,
Status, CycleState), :mod:`.nodeinfo` (precomputed pod/node views), :mod:`.cache` (assume /
confirm / forget), :mod:`.queue` (activeQ, backoffQ, unschedulablePods, nominator),
:mod:`.plugins` (one module per plugin), :mod:`.scheduler` (the loop and the binding cycle),
:mod:`.explain` (why a pod goes where it goes), :mod:`.cmd` (the CLI commands and ``run``).
"""

from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.explain import Explanation, explain_pod
from kybernetes.scheduler.scheduler import Scheduler

__all__ = ["Explanation", "Scheduler", "SchedulerConfig", "explain_pod"]
