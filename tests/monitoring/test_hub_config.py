"""MonitoringHub checks its arguments at construction and its resources at start()."""

import socket
import sys
from pathlib import Path

import pytest

from taskscope.monitoring import MonitoringError, MonitoringHub
from taskscope.monitoring.endpoint import database_path


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"hub_port": "55055"}, TypeError, "hub_port"),
        ({"hub_port": 70000}, ValueError, "between 0 and 65535"),
        ({"hub_port": True}, TypeError, "hub_port"),
        ({"resource_monitoring_interval": -1}, ValueError, ">= 0"),
        ({"resource_monitoring_interval": float("nan")}, ValueError, ">= 0"),
        ({"resource_monitoring_interval": "10"}, TypeError, "resource_monitoring_interval"),
        ({"resource_monitoring_enabled": 1}, TypeError, "resource_monitoring_enabled"),
        ({"logging_endpoint": "postgresql://db/x"}, ValueError, "SQLite only"),
        ({"logging_endpoint": "sqlite:///:memory:"}, ValueError, "names no file"),
        ({"logging_endpoint": 5}, TypeError, "logging_endpoint"),
        ({"workflow_name": 3}, TypeError, "workflow_name"),
        ({"hub_address": ""}, ValueError, "hub_address"),
        ({"logging_endpoint": "sqlite:///mon\0itoring.db"}, ValueError, "NUL byte"),
        ({"hub_address": "127.0.0.1\0"}, ValueError, "NUL byte"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, error, text):
    with pytest.raises(error, match=text):
        MonitoringHub(**kwargs)


def test_parsl_style_arguments_are_accepted():
    hub = MonitoringHub(
        hub_address="127.0.0.1",
        hub_port=55055,
        monitoring_debug=False,
        resource_monitoring_interval=10,
        workflow_name="w",
        workflow_version="2",
    )
    assert hub.resource_monitoring_interval == 10.0
    assert "55055" in repr(hub)


def test_endpoint_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert database_path(None) == tmp_path / "monitoring.db"
    assert database_path("sqlite:///runinfo/m.db") == tmp_path / "runinfo" / "m.db"
    assert database_path("sqlite:////abs/path.db") == Path("/abs/path.db")
    assert MonitoringHub().db_path == tmp_path / "monitoring.db"


def test_unwritable_endpoint_is_a_monitoring_error_at_start(tmp_path):
    (tmp_path / "file").write_text("x")
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{tmp_path}/file/sub/m.db")
    with pytest.raises(MonitoringError, match="cannot create the directory"):
        hub.start("run", str(tmp_path / "run"))


def test_foreign_database_is_a_monitoring_error_at_start(tmp_path):
    import sqlite3

    sqlite3.connect(tmp_path / "m.db").execute("CREATE TABLE accounts (id INTEGER)")
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{tmp_path}/m.db")
    with pytest.raises(MonitoringError, match="something else"):
        hub.start("run", str(tmp_path / "run"))


def test_port_in_use_is_a_clear_error_not_a_hang(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        hub = MonitoringHub(
            hub_address="127.0.0.1", hub_port=port, logging_endpoint=f"sqlite:///{tmp_path}/m.db"
        )
        with pytest.raises(MonitoringError, match=f"hub_port {port} .* already in use"):
            hub.start("run", str(tmp_path / "run"))
    finally:
        holder.close()


def test_free_port_is_picked_and_close_is_idempotent(tmp_path):
    hub = MonitoringHub(hub_port=0, logging_endpoint=f"sqlite:///{tmp_path}/m.db")
    hub.start("run", str(tmp_path / "run"))
    assert hub.port and hub.port > 0
    hub.close()
    hub.close()
    assert (tmp_path / "run" / "monitoring.log").exists()


def test_monitoring_package_exports(tmp_path):
    import taskscope.monitoring.monitoring as mod

    assert mod.MonitoringHub is MonitoringHub
    assert "taskscope.monitoring" in sys.modules
