"""The integration suite's shared ``kyb server`` and per-test namespace, for test_dns_process."""

from tests.integration.conftest import namespace, server

__all__ = ["namespace", "server"]
