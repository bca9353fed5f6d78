"""The aggregation layer (kube-aggregator): APIServices, their availability, proxying, discovery."""

from kybernetes.apiserver.aggregator.aggregator import Aggregator
from kybernetes.apiserver.aggregator.frontproxy import FrontProxyConfig

__all__ = ["Aggregator", "FrontProxyConfig"]
