"""``kybernetes.cli.server_config``: ``kyb server``'s flags read into the bundle's configuration,
without running anything (what the test kit's in-process mode runs)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from kybernetes.cli import server_config


def test_the_flags_a_test_cluster_passes_land_in_the_config(tmp_path: Path) -> None:
    config = server_config(["--data-dir", str(tmp_path), "--https-port", "0", "--bind-address", "127.0.0.1",
                            "--disable", "coredns,local-storage", "--disable-cloud-controller", "--disable-agent",
                            "--kube-scheduler-arg", "secure-port=12345"])
    assert config.api.data_dir == tmp_path.resolve() and config.api.port == 0
    assert config.api.bind_address == "127.0.0.1" and config.api.extra_bind_addresses == ()
    assert config.disable_agent and not config.enable_cloud_controller
    assert config.disable == ("coredns", "local-storage")
    assert config.scheduler_args == ["--secure-port=12345"]
    assert config.child_launcher == [] and config.api.node_settings is not None


def test_bad_flags_and_cluster_reset_are_refused(tmp_path: Path) -> None:
    with pytest.raises(click.UsageError):
        server_config(["--data-dir", str(tmp_path), "--cluster-reset"])
    with pytest.raises(click.NoSuchOption):
        server_config(["--no-such-flag"])
    assert not list(tmp_path.iterdir())  # nothing was started or written
