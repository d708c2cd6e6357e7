"""The settings schema reads every setting that is used at one site (leases, recovery, queue,
subworkflows, flow source, plugins, flows dir, fs roots, cache, progress, list cap).

Each is a ``Setting`` with its default and reader: the places that use it read
it through ``Setting.read``, so the name, default and message exist once.
"""

from __future__ import annotations

import pytest

from ironflow_core import settings
from ironflow_core.engine.lease import lease_ttl
from ironflow_core.engine.recovery import RecoverySettings
from ironflow_core.errors import ConfigError, NodeError
from ironflow_core.loading import max_source_bytes
from ironflow_core.queues.select import queue_name
from ironflow_core.settings import SubworkflowLimits, check_settings, settings_schema


def test_the_settings_read_where_used_are_in_the_schema():
    names = {s.env for s in settings_schema()}
    assert {"IRONFLOW_LEASE_TTL_SECONDS", "IRONFLOW_RECOVERY", "IRONFLOW_RECOVERY_MAX_ATTEMPTS",
            "IRONFLOW_QUEUE", "IRONFLOW_MAX_FLOW_SOURCE_BYTES", "IRONFLOW_MAX_SUBWORKFLOW_DEPTH",
            "IRONFLOW_MAX_SUBWORKFLOW_RUNS", "IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS"} <= names


def test_defaults_and_values_come_through_the_schema():
    assert lease_ttl({}) == 90.0 and lease_ttl({"IRONFLOW_LEASE_TTL_SECONDS": "1.5"}) == 1.5
    assert RecoverySettings.from_env({}) == RecoverySettings("stall", 3)
    assert RecoverySettings.from_env({"IRONFLOW_RECOVERY": "resume",
                                      "IRONFLOW_RECOVERY_MAX_ATTEMPTS": "0"}) == \
        RecoverySettings("resume", 0)
    assert max_source_bytes({}) == 1_048_576 == settings.MAX_FLOW_SOURCE_BYTES.default
    assert max_source_bytes({"IRONFLOW_MAX_FLOW_SOURCE_BYTES": "0"}) == 1_048_576  # lenient
    assert max_source_bytes({"IRONFLOW_MAX_FLOW_SOURCE_BYTES": "64"}) == 64
    assert SubworkflowLimits.from_env({"IRONFLOW_MAX_SUBWORKFLOW_DEPTH": "x"}).max_depth == 8
    assert queue_name({}, {"queue_backend": "redis"}) == "redis"


@pytest.mark.parametrize(("env", "message"), [
    ({"IRONFLOW_LEASE_TTL_SECONDS": "0.1"},
     "IRONFLOW_LEASE_TTL_SECONDS must be a number of seconds from 0.5 to 86400"),
    ({"IRONFLOW_RECOVERY": "retry"}, "IRONFLOW_RECOVERY must be either 'stall' or 'resume'"),
    ({"IRONFLOW_RECOVERY_MAX_ATTEMPTS": "-1"},
     "IRONFLOW_RECOVERY_MAX_ATTEMPTS must be a non-negative integer"),
])
def test_bad_values_keep_their_messages(env, message):
    with pytest.raises(ConfigError) as caught:
        lease_ttl(env)
        RecoverySettings.from_env(env)
    assert str(caught.value) == message


def test_queue_backend_is_a_known_yaml_key():
    assert check_settings({}, {"queue_backend": "inline"}) == []


def test_the_settings_read_at_their_sites_are_in_the_schema():
    names = {s.env for s in settings_schema()}
    assert {"IRONFLOW_DISABLED_PLUGINS", "FLOWS_DIR", "IRONFLOW_FS_ROOTS",
            "IRONFLOW_MAX_REPEAT_ITERATIONS", "IRONFLOW_CACHE_DIR", "IRONFLOW_PROGRESS",
            "IRONFLOW_MAX_LIST_RECORDS"} <= names
    # one entry per variable: check_settings would report a bad value twice otherwise
    envs = [s.env for s in settings_schema() if s.env is not None]
    assert len(envs) == len(set(envs))


def test_site_settings_keep_their_defaults_and_parsing(tmp_path):
    import os

    from ironflow_core.engine.lineage import flow_roots
    from ironflow_core.fsroots import FsRoots
    from ironflow_core.plugins import disabled_plugins

    assert disabled_plugins({}) == frozenset()
    assert disabled_plugins({"IRONFLOW_DISABLED_PLUGINS": " a, ,b "}) == {"a", "b"}
    assert flow_roots(None, {"FLOWS_DIR": ""}) == ()
    assert flow_roots(None, {"FLOWS_DIR": str(tmp_path)}) == (os.path.realpath(tmp_path),)
    assert FsRoots.from_env({}) is None
    assert FsRoots.from_env({"IRONFLOW_FS_ROOTS": ""}) == FsRoots(())  # set but empty: nothing
    assert FsRoots.from_env({"IRONFLOW_FS_ROOTS": f" /a {os.pathsep}/b"}) == FsRoots(("/a", "/b"))
    assert settings.CACHE_DIR.read({}) == ".ironflow_cache"
    assert settings.CACHE_DIR.read({"IRONFLOW_CACHE_DIR": ""}) == ".ironflow_cache"
    assert settings.CACHE_DIR.read({"IRONFLOW_CACHE_DIR": "c"}) == "c"
    assert settings.PROGRESS.read({}) is True
    assert settings.PROGRESS.read({"IRONFLOW_PROGRESS": "OFF"}) is False
    assert settings.PROGRESS.read({"IRONFLOW_PROGRESS": "on"}) is True
    assert settings.MAX_LIST_RECORDS.read({}) == 100
    assert settings.MAX_LIST_RECORDS.read({"IRONFLOW_MAX_LIST_RECORDS": "7"}) == 7
    assert settings.MAX_REPEAT_ITERATIONS.read({}) == 128
    assert settings.MAX_REPEAT_ITERATIONS.read({"IRONFLOW_MAX_REPEAT_ITERATIONS": "+1024"}) == 1024


@pytest.mark.parametrize(("setting", "value", "error", "message"), [
    ("MAX_LIST_RECORDS", "0", ConfigError, "IRONFLOW_MAX_LIST_RECORDS must be a positive integer"),
    ("MAX_LIST_RECORDS", "x", ConfigError, "IRONFLOW_MAX_LIST_RECORDS must be a positive integer"),
    ("MAX_REPEAT_ITERATIONS", "1.5", NodeError,
     "IRONFLOW_MAX_REPEAT_ITERATIONS must be a positive whole number"),
    ("MAX_REPEAT_ITERATIONS", "1025", NodeError,
     "IRONFLOW_MAX_REPEAT_ITERATIONS must be between 1 and 1024"),
    ("MAX_REPEAT_ITERATIONS", "0", NodeError,
     "IRONFLOW_MAX_REPEAT_ITERATIONS must be between 1 and 1024"),
])
def test_site_settings_keep_their_messages(setting, value, error, message):
    schema_setting = getattr(settings, setting)
    with pytest.raises(error) as caught:
        schema_setting.read({schema_setting.env: value})
    assert type(caught.value) is error and str(caught.value) == message


def test_flows_dir_is_still_the_only_yaml_key_among_them():
    assert check_settings({}, {"flows_dir": "flows"}) == []
    for key in ("fs_roots", "cache_dir", "progress", "max_list_records", "disabled_plugins"):
        assert "unknown setting" in check_settings({}, {key: "x"})[0]
