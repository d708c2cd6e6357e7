"""semantics.md#acceptance acceptance for the data and utility nodes, through the real CLI.

The flows under ``data/`` are our own, reproducing the behaviours of the
upstream ``02-data-transforms``, ``07-advanced``, ``09-cache``, ``18-xml-yaml``,
``19-html-sanitize`` and ``20-date`` examples; each test checks the status and
the context values the contract lists for its row, plus a few node rules the
same run covers for free.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .cli_helpers import ironflow, run_json

DATA = Path(__file__).parent / "data"


def run_data(name: str, tmp_path: Path, context: dict | None = None,
             env: dict | None = None) -> tuple[int, dict, str]:
    """``run_json`` for a flow in ``data/`` (an absolute path overrides its folder)."""
    return run_json(str(DATA / name), tmp_path, context, env)


def assert_success(code: int, record: dict, stderr: str) -> dict:
    assert code == 0 and record["status"] == "success", stderr
    return record["ctx"]


def assert_failed_at(code: int, record: dict, stderr: str, step: str) -> dict:
    """The run failed (CLI-26) because ``step`` failed; returns that task."""
    assert code == 1, stderr
    assert record["status"] == "failed"
    assert "finished with status failed" in stderr
    task = record["tasks"][step]
    assert task["status"] == "failed"
    return task


# --- 02-data-transforms ----------------------------------------------------


def test_csv_parse_stringify_trims_and_sorts_headers(tmp_path):
    """CSV-1/CSV-10/CSV-11: trimmed rows, blank line ignored, header sorted."""
    ctx = assert_success(*run_data("csv_parse_stringify.lua", tmp_path))
    assert len(ctx["users"]) == 4
    assert ctx["users"][0] == {"name": "Alice", "status": "active", "email": "alice@example.com"}
    assert ctx["users"][3] == {"name": "Dave", "status": "active", "email": "dave@example.com"}
    assert ctx["normalized_csv"] == (
        "email,name,status\n"
        "alice@example.com,Alice,active\n"
        "bob@example.com,Bob,inactive\n"
        "carol@example.com,Carol,active\n"
        "dave@example.com,Dave,active\n"
    )


def test_csv_parse_stringify_takes_raw_csv_from_context(tmp_path):
    """CSV-11: a cell holding the delimiter is quoted on the way out."""
    raw = 'b,a\n"x, y",1\n'
    ctx = assert_success(*run_data("csv_parse_stringify.lua", tmp_path, {"raw_csv": raw}))
    assert ctx["users"] == [{"a": "1", "b": "x, y"}]
    assert ctx["normalized_csv"] == 'a,b\n1,"x, y"\n'


def test_filter_and_batch(tmp_path):
    """DF-1/DD-1/BA-1: filter eq true, dedupe by key, batches of two."""
    ctx = assert_success(*run_data("filter_and_batch.lua", tmp_path))
    assert [u["name"] for u in ctx["active_users"]] == ["Alice", "Carol", "Dave"]
    assert ctx["active_users_count"] == 3
    assert ctx["unique_users_removed"] == 0
    assert [[u["name"] for u in chunk] for chunk in ctx["batches"]] == [["Alice", "Carol"], ["Dave"]]
    assert ctx["batches_count"] == 2
    assert ctx["log_message"] == "Active: 3, Unique: after removing 0 dupes, Batches: 2"


def test_json_operations(tmp_path):
    """JP-1/SF-1/JS-1/JEP-1/JEP-3: parse, select, serialize with sorted keys."""
    ctx = assert_success(*run_data("json_operations.lua", tmp_path))
    assert ctx["parsed"] == {"age": 30, "email": "alice@example.com", "name": "Alice",
                             "role": "admin"}
    assert ctx["user_summary"] == {"email": "alice@example.com", "name": "Alice"}
    assert ctx["result_json"] == '{"email":"alice@example.com","name":"Alice"}'
    assert ctx["role"] == "admin"
    assert ctx["missing"] == "<none>"


def test_json_operations_invalid_json_fails_and_keeps_input(tmp_path):
    """JP-1: a parse failure fails the run; dependants are skipped."""
    code, record, stderr = run_data("json_operations.lua", tmp_path, {"raw_json": "not valid JSON"})
    task = assert_failed_at(code, record, stderr, "parse")
    assert task["error"]
    assert record["ctx"]["raw_json"] == "not valid JSON"
    assert "parsed" not in record["ctx"] and "result_json" not in record["ctx"]
    assert record["tasks"]["serialize"]["status"] == "skipped"


def test_transform_pipeline(tmp_path):
    """DF-1 gte, DT-1 (new <- old), RN-1 (old -> new, so unchanged), BA-1, DD-1."""
    ctx = assert_success(*run_data("transform_pipeline.lua", tmp_path))
    assert ctx["adults_count"] == 4
    assert [a["age"] for a in ctx["adults"]] == [25, 32, 41, 28]
    assert ctx["transformed"] == [
        {"full_name": "Ann Lee", "years": 25},
        {"full_name": "Cy Park", "years": 32},
        {"full_name": "Di Moss", "years": 41},
        {"full_name": "Flo Yu", "years": 28},
    ]
    assert ctx["renamed_config"] == {"host": "localhost", "port": 5432}
    assert ctx["batches_count"] == 3
    assert ctx["unique_tags"] == [{"tag": "a"}, {"tag": "b"}]
    assert ctx["unique_tags_removed"] == 1


# --- 07-advanced -----------------------------------------------------------


def test_base64_encode_decode(tmp_path):
    """B64E-1/B64E-2/B64D-1..3: UTF-8 text round trip, URL-safe alphabet keeps padding."""
    ctx = assert_success(*run_data("base64_encode_decode.lua", tmp_path))
    assert ctx["encoded"] == "SXJvbkZsb3cgd29ya2Zsb3cgZW5naW5lIOKAlCBSdXN0ICsgTHVh"
    assert ctx["decoded"] == ctx["original"] == "IronFlow workflow engine — Rust + Lua"
    assert ctx["encoded_url_safe"] == "SXJvbkZsb3cgd29ya2Zsb3cgZW5naW5lIOKAlCBSdXN0ICsgTHVhPz4="
    assert ctx["decoded_url_safe"] == "IronFlow workflow engine — Rust + Lua?>"


ORDERS_JSON = ('[{"buyer":"Alice","order_id":"A1","total":100},'
               '{"buyer":"Carol","order_id":"A3","total":200},'
               '{"buyer":"Dave","order_id":"A4","total":75}]')


def test_data_pipeline(tmp_path):
    """DF-1, DD-1, DT-1, JS-1, HS-2/HS-3, BA-1 chained."""
    ctx = assert_success(*run_data("data_pipeline.lua", tmp_path))
    assert ctx["completed_orders_count"] == 4
    assert len(ctx["unique_orders"]) == 3
    assert ctx["unique_orders_removed"] == 1
    assert ctx["orders_json"] == ORDERS_JSON
    assert ctx["orders_hash"] == "12452f16b6376b3210b0992a3eb37178797c400e98bd2aa35a649d738b308948"
    assert ctx["orders_hash_algorithm"] == "sha256"
    assert ctx["batches_count"] == 1


def test_data_pipeline_non_array_orders_fail(tmp_path):
    """DF-1 / NODE-3: a non-array source fails the filter and the run."""
    code, record, stderr = run_data("data_pipeline.lua", tmp_path, {"orders": {"id": "A1"}})
    task = assert_failed_at(code, record, stderr, "completed")
    assert task["error"] == "Value at 'orders' is not an array"
    assert "orders_hash" not in record["ctx"]


def test_hashing(tmp_path):
    """HS-1..HS-4: vectors, algorithm echoed as written, JSON text of non-strings."""
    ctx = assert_success(*run_data("hashing.lua", tmp_path))
    assert ctx["sha256_result"] == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert ctx["sha256_result_algorithm"] == "sha256"
    assert ctx["md5_result"] == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    assert ctx["md5_result_algorithm"] == "md5"
    assert ctx["sha512_result"].startswith("309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a")
    assert ctx["sha512_result_algorithm"] == "SHA-512"
    # sha256 of the compact sorted JSON text {"a":1,"b":2}, default output key `hash`.
    assert ctx["hash"] == "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777"
    assert ctx["hash_algorithm"] == "sha256"


def test_json_validate(tmp_path):
    """VS-1/VS-3: JSON text parsed then validated; success outputs."""
    ctx = assert_success(*run_data("json_validate.lua", tmp_path))
    assert ctx["validation_success"] is True
    assert ctx["validation_errors"] == []
    assert ctx["payload"]["id"] == "ORD-123"


def test_json_validate_empty_object_is_a_structured_failure(tmp_path):
    """VS-3 / ENG-82: the failure output is published; the run fails."""
    code, record, stderr = run_data("json_validate.lua", tmp_path, {"payload_json": "{}"})
    task = assert_failed_at(code, record, stderr, "check")
    ctx = record["ctx"]
    assert ctx["validation_success"] is False
    errors = ctx["validation_errors"]
    assert len(errors) == 3 and all(isinstance(e, str) and " at " in e for e in errors)
    assert task["error"].startswith("Schema validation failed: ")
    assert task["output"] == {"validation_success": False, "validation_errors": errors}
    assert record["tasks"]["parse"]["status"] == "skipped" and "payload" not in ctx


def test_schema_validation(tmp_path):
    """VS-1/VS-2 (schema_key, $schema 2020-12) and INT-4 (`$${...}`)."""
    ctx = assert_success(*run_data("schema_validation.lua", tmp_path))
    assert ctx["validation_success"] is True
    assert ctx["log_message"] == "Order ORD-001 validated — processing $99.99 for Alice"


def test_schema_validation_missing_amount_fails(tmp_path):
    order = {"id": "ORD-002", "customer": "Bob"}
    code, record, stderr = run_data("schema_validation.lua", tmp_path, {"order": order})
    task = assert_failed_at(code, record, stderr, "validate")
    assert "amount" in task["error"]
    assert record["ctx"]["validation_success"] is False
    assert len(record["ctx"]["validation_errors"]) == 1
    assert record["tasks"]["process"]["status"] == "skipped"
    assert "log_message" not in record["ctx"]


def test_markdown_conversion(tmp_path):
    """MD-1 (GFM tables, strikethrough) and MD-2."""
    ctx = assert_success(*run_data("markdown_conversion.lua", tmp_path))
    html = ctx["html"]
    assert "<h1>Release notes</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<del>gone</del>" in html
    assert "<table>" in html and "<td>utility</td>" in html
    assert "Hello World" in ctx["markdown"] and "IronFlow" in ctx["markdown"]


# --- 09-cache --------------------------------------------------------------


def test_cache_memory(tmp_path):
    """CA-2/CA-4: set/get in one process; the last get misses."""
    ctx = assert_success(*run_data("cache_memory.lua", tmp_path))
    assert ctx["cached_token"] == "sk-abc123-secret"
    assert ctx["cached_user"] == {"id": 42, "name": "Alice", "role": "admin"}
    assert ctx["missing_value"] is None
    assert ctx["cache_hit"] is False
    assert ctx["cache_key"] == "current_user"
    assert ctx["cache_size"] == 2
    assert ctx["cache_stored"] is True


def test_cache_file_leaves_the_entry_on_disk(tmp_path):
    """CA-3: `<cache_dir>/<key>.json` holds value and expires_at; file caches are
    not counted (`cache_size` absent)."""
    before = int(time.time())
    ctx = assert_success(*run_data("cache_file.lua", tmp_path, env={"TMPDIR": str(tmp_path)}))
    assert ctx["config"] == {"debug": False, "max_retries": 3, "version": "1.1.0"}
    assert ctx["cache_hit"] is True
    assert ctx["cache_key"] == "app_config"
    assert "cache_size" not in ctx
    (entry,) = tmp_path.glob("ironflow-cache-file-*/app_config.json")
    stored = json.loads(entry.read_text())
    assert stored["value"] == ctx["config"]
    assert before + 3600 <= stored["expires_at"] <= int(time.time()) + 3600


@pytest.mark.parametrize(
    ("context", "token", "filename"),
    [
        (None, "token-for-u-1001", "llm_demo-hash.json"),
        ({"user_id": "u-7", "prompt_hash": "p:1/x"}, "token-for-u-7", "llm_p_1_x.json"),
    ],
)
def test_cache_context_keys(tmp_path, context, token, filename):
    """CA-3/CA-4: interpolated keys; unsafe key characters become `_` in the file
    name; the default directory comes from IRONFLOW_CACHE_DIR."""
    cache_dir = tmp_path / "cache"
    env = {"IRONFLOW_CACHE_DIR": str(cache_dir)}
    ctx = assert_success(*run_data("cache_context_keys.lua", tmp_path, context, env=env))
    assert ctx["cached_token"] == token
    assert ctx["cached_llm_response"] == {"model": "demo", "text": "cached response"}
    assert ctx["cache_hit"] is True
    assert ctx["cache_key"] == "llm:" + ctx["prompt_hash"]
    assert [p.name for p in cache_dir.iterdir()] == [filename]
    assert json.loads((cache_dir / filename).read_text()) == {
        "value": {"model": "demo", "text": "cached response"}}


# --- 18-xml-yaml, 19-html-sanitize, 20-date --------------------------------


def test_xml_parse(tmp_path):
    """XP-2/XP-3: raw attributes, decoded trimmed text, arrays, null elements."""
    ctx = assert_success(*run_data("xml_parse.lua", tmp_path))
    assert ctx["catalog"] == {
        "catalog": {"book": {"@id": "1", "price": "39.99", "title": "Rust in Action"}}}
    assert ctx["shelf"] == {
        "shelf": {"@label": "a&amp;b", "book": ["One", "Two & Three"], "empty": None}}


XS3 = """<?xml version="1.0" encoding="UTF-8"?>
<catalog_root>
  <book>
    <id>1</id>
    <price>39.99</price>
    <title>Rust in Action</title>
  </book>
</catalog_root>
"""


def test_xml_stringify(tmp_path):
    """XS-2/XS-3: pretty vector; compact form with attributes, text and escapes."""
    ctx = assert_success(*run_data("xml_stringify.lua", tmp_path))
    assert ctx["xml_catalog"] == XS3
    assert ctx["xml_shelf"] == (
        '<?xml version="1.0" encoding="UTF-8"?><root label="a&amp;b">'
        "<book>One</book><book>Two &lt;3&gt;</book><empty/>"
        '<note lang="en">hi</note></root>'
    )


def test_xml_stringify_takes_catalog_from_context(tmp_path):
    ctx = assert_success(*run_data("xml_stringify.lua", tmp_path, {"catalog": {"n": [1, True]}}))
    assert ctx["xml_catalog"] == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<catalog_root>\n'
        "  <n>1</n>\n  <n>true</n>\n</catalog_root>\n"
    )


def test_yaml_parse(tmp_path):
    """YP-2: YAML 1.2 core schema, not PyYAML's 1.1 resolvers."""
    ctx = assert_success(*run_data("yaml_parse.lua", tmp_path))
    assert ctx["config"] == {
        "server": {"features": ["auth", "logging"], "host": "localhost", "port": 8080}}
    assert ctx["scalars"] == {"answer": "yes", "switch": "on", "flag": True, "count": 10,
                              "ratio": 1.5, "nothing": None}
    assert isinstance(ctx["scalars"]["count"], int)


def test_yaml_stringify_round_trips(tmp_path):
    """YS-1: block style, sorted keys, no document marker, re-parses to the input."""
    ctx = assert_success(*run_data("yaml_stringify.lua", tmp_path))
    text = ctx["yaml_config"]
    assert ctx["roundtrip"] == ctx["config"]
    assert not text.startswith("---") and "{" not in text
    keys = [line.split(":")[0] for line in text.splitlines() if not line.startswith((" ", "-"))]
    assert keys == sorted(keys) == ["nested", "note", "ratio", "server", "tags"]


def test_html_sanitize(tmp_path):
    """MD-3: default policy vector; `allowed_tags` replaces the tag set."""
    ctx = assert_success(*run_data("html_sanitize.lua", tmp_path))
    assert ctx["clean_html"] == "<h1>Hello</h1><p>Safe text</p>"
    assert ctx["bold_only"] == "<b>kept</b> dropped tag"


def test_date_format(tmp_path):
    """DF-10..DF-15: now in UTC, vectors, explicit pattern, zone conversion, chrono
    specifiers."""
    before = int(time.time())
    ctx = assert_success(*run_data("date_format.lua", tmp_path))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", ctx["current_time"])
    assert before - 1 <= ctx["current_time_unix"] <= int(time.time())
    assert ctx["pretty_date"] == "June 15, 2024 at 10:30 AM"
    assert ctx["pretty_date_unix"] == 1718447400
    assert ctx["iso_date"] == "2024-06-15"
    assert ctx["berlin_summer"] == "2024-06-15T12:30:00+02:00"
    assert ctx["berlin_summer_unix"] == 1718447400
    assert ctx["plain"] == "Sat 15 Jun 24, 167, 23:05:09 +0000"


# --- every flow validates strictly ----------------------------------------


def test_dsl_112_every_data_flow_passes_strict_validation():
    """CLI-31/DSL-112: no errors and no warnings for any flow in ``data/``.

    Two validations run at a time (the machine has two cores) to keep the module fast.
    """
    flows = sorted(DATA.glob("*.lua"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(lambda flow: ironflow("validate", "--strict", str(flow)), flows))
    failures = {
        flow.name: proc.stdout + proc.stderr
        for flow, proc in zip(flows, procs, strict=True)
        if proc.returncode != 0 or "Validation: OK" not in proc.stdout
        or "Warnings:" in proc.stdout
    }
    assert len(flows) >= 19
    assert not failures, failures
