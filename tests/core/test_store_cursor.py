"""Run IDs (ST-1, ST-2) and the run-list order and cursor codec (ST-20..22)."""

from __future__ import annotations

import base64
import re

import pytest

from ironflow_core.errors import InvalidInputError
from ironflow_core.model import RunStatus, RunSummary
from ironflow_core.runid import new_run_id, validate_run_id
from ironflow_core.store_conformance import INVALID_IDS, VALID_IDS
from ironflow_core.stores.cursor import (
    build_page,
    chrono_timestamp,
    decode_cursor,
    encode_cursor,
    order_key,
)


@pytest.mark.parametrize("run_id", VALID_IDS)
def test_st_1_valid_vectors(run_id):
    validate_run_id(run_id)


@pytest.mark.parametrize(("run_id", "reason"), INVALID_IDS)
def test_st_1_invalid_vectors_name_the_reason(run_id, reason):
    with pytest.raises(InvalidInputError) as info:
        validate_run_id(run_id)
    assert str(info.value) == f"Invalid run ID: {reason}"


def test_st_1_is_byte_exact_and_counts_bytes():
    validate_run_id("Run-ID")  # no case folding needed
    with pytest.raises(InvalidInputError, match="may contain only"):
        validate_run_id(" run")
    with pytest.raises(InvalidInputError, match="must not exceed 128 bytes"):
        validate_run_id("é" * 65)  # 130 bytes, 65 characters


def test_st_2_engine_ids_are_lowercase_uuid4():
    run_id = new_run_id()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", run_id)
    validate_run_id(run_id)
    assert new_run_id() != run_id


@pytest.mark.parametrize(
    ("stored", "printed"),
    [
        ("2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00.120000Z", "2026-01-01T00:00:00.120Z"),
        ("2026-01-01T00:00:00.123456Z", "2026-01-01T00:00:00.123456Z"),
        ("2026-01-01T00:00:00.123456700Z", "2026-01-01T00:00:00.123456700Z"),
        ("2026-01-01T00:00:00.1234567Z", "2026-01-01T00:00:00.123456700Z"),
        ("2026-01-01T02:00:00.5+02:00", "2026-01-01T00:00:00.500Z"),
    ],
)
def test_json_7_cursor_timestamps_print_like_upstream(stored, printed):
    assert chrono_timestamp(stored) == printed


def test_st_20_key_truncates_to_microseconds():
    assert order_key("2026-01-01T00:00:00.123456999Z", "a")[:2] == (
        order_key("2026-01-01T00:00:00.123456Z", "a")[:2]
    )
    assert order_key(None, "z") < order_key("1970-01-01T00:00:00Z", "a")
    assert order_key("1969-12-31T23:59:59Z", "a") < order_key("1970-01-01T00:00:00Z", "a")


def summary(run_id, started, status=RunStatus.SUCCESS):
    return RunSummary(id=run_id, flow_name="f", status=status, started=started, finished=None,
                      task_count=0)


def test_st_22_round_trip_and_exact_bytes():
    text = encode_cursor(summary("run-1", "2026-01-01T00:00:00Z"), RunStatus.FAILED)
    assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == (
        b'{"version":1,"status":"failed","started":"2026-01-01T00:00:00Z","id":"run-1"}'
    )
    cursor = decode_cursor(text)
    assert (cursor.status, cursor.started, cursor.id) == (
        RunStatus.FAILED, "2026-01-01T00:00:00Z", "run-1"
    )


def test_st_21_page_cut_and_next_cursor():
    items = [summary(f"r{i}", f"2026-01-01T00:00:0{i}Z") for i in range(5)]
    page = build_page(items, status=None, limit=2, after=None)
    assert [s.id for s in page.runs] == ["r4", "r3"] and page.has_more
    page = build_page(items, status=None, limit=3, after=decode_cursor(page.next_cursor))
    assert [s.id for s in page.runs] == ["r2", "r1", "r0"] and not page.has_more
    assert build_page([], status=None, limit=1, after=None).runs == ()


def test_cli_50_cursor_can_be_checked_against_a_filter_before_the_store_opens():
    text = encode_cursor(summary("run-1", None), RunStatus.FAILED)
    assert decode_cursor(text, RunStatus.FAILED).id == "run-1"
    assert decode_cursor(text).status is RunStatus.FAILED
    with pytest.raises(InvalidInputError, match="does not match the status filter"):
        decode_cursor(text, None)
    with pytest.raises(InvalidInputError, match="does not match the status filter"):
        decode_cursor(text, RunStatus.SUCCESS)
