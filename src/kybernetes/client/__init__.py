"""kybernetes' client library — what client-go is to Kubernetes.

::

    rest            Client: verbs on any resource, StatusError mapping, retries, watch streams
    kubeconfig      ClusterConfig: kubeconfig files and in-cluster service-account config
    informer        Informer / SharedInformerFactory: list+watch caches with indexes and handlers
    workqueue       WorkQueue: deduplicating, delaying, rate-limited key queues; clocks
    leaderelection  LeaderElector: one active instance per Lease
    events          EventRecorder: aggregated core/v1 Events written in the background

Controllers combine them as client-go's do: informers feed keys into a work queue, workers read
the informer caches and write through the REST client, events explain what happened.
"""

from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import Indexer, Informer, SharedInformerFactory, key_of
from kybernetes.client.leaderelection import LeaderElector
from kybernetes.client.rest import Client, WatchEvent
from kybernetes.client.workqueue import FakeClock, RealClock, ShutDown, WorkQueue, run_workers

__all__ = [
    "Client",
    "EventRecorder",
    "FakeClock",
    "Indexer",
    "Informer",
    "LeaderElector",
    "RealClock",
    "SharedInformerFactory",
    "ShutDown",
    "WatchEvent",
    "WorkQueue",
    "key_of",
    "run_workers",
]
