"""The ``local`` cloud provider, the default: the machines are the nodes that joined (``kyb agent``).

Importing this package registers it under ``local`` (see ``provider.py`` for what it does).
"""

from kybernetes.cloud.local.provider import LocalCloud
from kybernetes.cloud.registry import register_provider

register_provider("local", LocalCloud.from_config)

__all__ = ["LocalCloud"]
