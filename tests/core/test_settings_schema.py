"""The settings schema reads the lease, recovery, queue, subworkflow and flow-source settings.

Each is a ``Setting`` with its default and reader: the places that use it read
it through ``Setting.read``, so the name, default and message exist once.
"""

from __future__ import annotations

import pytest

from ironflow_core import settings
from ironflow_core.engine.lease import lease_ttl
from ironflow_core.engine.recovery import RecoverySettings
from ironflow_core.errors import ConfigError
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
