"""Node-level tests for hash, base64_encode and base64_decode (semantics.md#text-nodes)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from ironflow_core.configs import structure_config
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.testing import make_registry, node_context

REGISTRY = make_registry()


def make_ctx(data: dict[str, Any], env: dict[str, str], node_type: str) -> NodeContext:
    return node_context(data, registry=REGISTRY, env=env, node_type=node_type)


async def run_node(
    node_type: str,
    raw: dict[str, Any],
    data: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Structure the config as the loader does, then call the node's run."""
    spec = REGISTRY.nodes[node_type]
    config = structure_config(spec.config, {**raw, "_step_name": "s"})
    return dict(await spec.run(make_ctx(data or {}, env or {}, node_type), config))


async def fails(node_type: str, raw: dict[str, Any], data: dict[str, Any] | None = None,
                env: dict[str, str] | None = None) -> str:  # fmt: skip
    with pytest.raises(NodeError) as info:
        await run_node(node_type, raw, data, env)
    return str(info.value)


def test_appendix_b_summaries() -> None:
    assert REGISTRY.nodes["hash"].summary == (
        "Compute a hash (SHA-256, SHA-384, SHA-512, MD5) of a string or context value"
    )
    assert REGISTRY.nodes["base64_encode"].summary == "Encode a string or file contents to base64"
    assert REGISTRY.nodes["base64_decode"].summary == "Decode a base64 string to text or file"


# -- hash ------------------------------------------------------------------------------


async def test_hs_4_sha256_and_md5_vectors() -> None:
    out = await run_node("hash", {"input": "hello world", "output_key": "sha256_result"})
    assert out == {
        "sha256_result": "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
        "sha256_result_algorithm": "sha256",
    }
    out = await run_node("hash", {"input": "hello world", "algorithm": "md5"})
    assert out == {"hash": "5eb63bbbe01eeed093cb22bb8f5acdc3", "hash_algorithm": "md5"}


@pytest.mark.parametrize(
    ("algorithm", "name"),
    [("sha384", "sha384"), ("SHA-384", "sha384"), ("sha512", "sha512"), ("Sha-512", "sha512"),
     ("SHA256", "sha256"), ("MD5", "md5")],
)  # fmt: skip
async def test_hs_1_algorithms_case_insensitive_and_hs_3_name_kept_as_given(
    algorithm: str, name: str
) -> None:
    out = await run_node("hash", {"input": "abc", "algorithm": algorithm})
    assert out["hash"] == hashlib.new(name, b"abc").hexdigest()
    assert out["hash_algorithm"] == algorithm


async def test_hs_1_unsupported_algorithm() -> None:
    message = await fails("hash", {"input": "x", "algorithm": "sha1"})
    assert message == "Unsupported hash algorithm 'sha1'. Use: sha256, sha384, sha512, md5"


async def test_hs_2_input_wins_over_source_key_and_is_interpolated() -> None:
    out = await run_node(
        "hash", {"input": "hello ${ctx.who}", "source_key": "other"}, {"who": "world"}
    )
    assert out["hash"] == hashlib.sha256(b"hello world").hexdigest()


async def test_hs_2_source_key_string_as_utf8_other_values_as_compact_sorted_json() -> None:
    data = {"text": "héllo", "obj": {"b": 1, "a": [1, 2.5, None, True]}}
    out = await run_node("hash", {"source_key": "text"}, data)
    assert out["hash"] == hashlib.sha256("héllo".encode()).hexdigest()
    out = await run_node("hash", {"source_key": "obj"}, data)
    expected = b'{"a":[1,2.5,null,true],"b":1}'
    assert out["hash"] == hashlib.sha256(expected).hexdigest()


async def test_hs_data_pipeline_orders_hash_vector() -> None:
    # 07-advanced/data_pipeline.lua hashes the JSON text of the unique orders.
    orders_json = (
        '[{"buyer":"Alice","order_id":"A1","total":100},'
        '{"buyer":"Carol","order_id":"A3","total":200},'
        '{"buyer":"Dave","order_id":"A4","total":75}]'
    )
    out = await run_node(
        "hash",
        {"source_key": "orders_json", "output_key": "orders_hash"},
        {"orders_json": orders_json},
    )
    assert out["orders_hash"] == "12452f16b6376b3210b0992a3eb37178797c400e98bd2aa35a649d738b308948"


async def test_hs_2_neither_input_nor_source_key() -> None:
    assert await fails("hash", {}) == "hash requires either 'input' string or 'source_key'"
    # A non-string input counts as absent (NODE-4).
    assert await fails("hash", {"input": 42}) == (
        "hash requires either 'input' string or 'source_key'"
    )


async def test_node_3_hash_missing_source_key() -> None:
    assert await fails("hash", {"source_key": "nope"}) == "Key 'nope' not found in context"


# -- base64_encode ---------------------------------------------------------------------


async def test_b64e_07_advanced_vector() -> None:
    out = await run_node(
        "base64_encode", {"input": "IronFlow workflow engine — Rust + Lua", "output_key": "encoded"}
    )
    assert out == {"encoded": "SXJvbkZsb3cgd29ya2Zsb3cgZW5naW5lIOKAlCBSdXN0ICsgTHVh"}


async def test_b64e_1_input_interpolated_default_key() -> None:
    out = await run_node("base64_encode", {"input": "Hello, ${ctx.name}!"}, {"name": "IronFlow"})
    assert out == {"base64_encoded": "SGVsbG8sIElyb25GbG93IQ=="}


async def test_b64e_1_source_key_string_and_compact_json() -> None:
    data = {"s": "a", "o": {"z": 1, "a": 2}}
    assert await run_node("base64_encode", {"source_key": "s"}, data) == {"base64_encoded": "YQ=="}
    out = await run_node("base64_encode", {"source_key": "o"}, data)
    assert base64.b64decode(out["base64_encoded"]) == b'{"a":2,"z":1}'


async def test_b64e_2_url_safe_alphabet_keeps_padding() -> None:
    plain = await run_node("base64_encode", {"input": "?>>"})
    safe = await run_node("base64_encode", {"input": "?>>", "url_safe": "yes"})
    assert plain == {"base64_encoded": "Pz4+"}
    assert safe == {"base64_encoded": "Pz4-"}
    out = await run_node("base64_encode", {"input": "a", "url_safe": True})
    assert out == {"base64_encoded": "YQ=="}


async def test_b64e_1_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\xfb\xff\x00binary")
    out = await run_node(
        "base64_encode", {"file": "${ctx.dir}/blob.bin", "url_safe": True}, {"dir": str(tmp_path)}
    )
    assert out == {"base64_encoded": base64.urlsafe_b64encode(b"\xfb\xff\x00binary").decode()}


async def test_b64e_1_file_bounded_by_max_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 11)
    env = {"IRONFLOW_MAX_FILE_BYTES": "10"}
    message = await fails("base64_encode", {"file": str(path)}, env=env)
    assert message == (
        f"base64_encode: '{path}' is 11 bytes, exceeds the 10 byte limit "
        "(raise the relevant IRONFLOW_MAX_* setting)"
    )
    path.write_bytes(b"x" * 10)
    out = await run_node("base64_encode", {"file": str(path)}, env=env)
    assert base64.b64decode(out["base64_encoded"]) == b"x" * 10


async def test_b64e_1_file_open_errors_and_special_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    message = await fails("base64_encode", {"file": str(missing)})
    assert message.startswith(f"base64_encode: failed to read '{missing}': failed to open file: ")
    assert "No such file or directory" in message
    assert await fails("base64_encode", {"file": str(tmp_path)}) == (
        f"base64_encode: '{tmp_path}' is not a regular file"
    )
    target = tmp_path / "target.txt"
    target.write_text("secret")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    message = await fails("base64_encode", {"file": str(link)})
    assert message.startswith(f"base64_encode: failed to read '{link}'")


async def test_b64e_1_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with trio.fail_after(5):
        message = await fails("base64_encode", {"file": str(fifo)})
    assert message == f"base64_encode: '{fifo}' is not a regular file"


async def test_b64e_1_more_than_one_input_or_none() -> None:
    expected = "base64_encode: provide only one of 'input', 'source_key', or 'file'"
    assert await fails("base64_encode", {"input": "a", "source_key": "k"}) == expected
    assert await fails("base64_encode", {"input": "a", "file": "/x"}) == expected
    # Presence counts even for a non-string value.
    assert await fails("base64_encode", {"input": "a", "file": 1}) == expected
    assert await fails("base64_encode", {}) == (
        "base64_encode requires one of 'input', 'source_key', or 'file'"
    )
    assert await fails("base64_encode", {"source_key": "nope"}) == "Key 'nope' not found in context"


# -- base64_decode ---------------------------------------------------------------------


async def test_b64d_decode_string_and_source_key_roundtrip() -> None:
    out = await run_node("base64_decode", {"input": "SGVsbG8sIElyb25GbG93IQ=="})
    assert out == {"base64_decoded": "Hello, IronFlow!"}
    encoded = "SXJvbkZsb3cgd29ya2Zsb3cgZW5naW5lIOKAlCBSdXN0ICsgTHVh"
    out = await run_node(
        "base64_decode", {"source_key": "encoded", "output_key": "decoded"}, {"encoded": encoded}
    )
    assert out == {"decoded": "IronFlow workflow engine — Rust + Lua"}


async def test_b64d_1_url_safe() -> None:
    out = await run_node("base64_decode", {"input": "Pz4-", "url_safe": "true"})
    assert out == {"base64_decoded": "?>>"}
    message = await fails("base64_decode", {"input": "Pz4-"})
    assert message.startswith("Failed to decode base64: Invalid symbol 45, offset 3")


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("SGVsbG8", "Invalid padding"),  # canonical padding is required
        ("SGVs bG8=", "Invalid symbol 32, offset 4."),  # no whitespace
        ("SGVsbG8=\n", "Invalid symbol 10, offset 8."),
        ("QR==", "Invalid last symbol 82, offset 1."),  # non-zero trailing bits
        ("Q===", "Invalid input length: 1"),
        ("S=GV", "Invalid symbol 61, offset 1."),
    ],
)
async def test_b64d_2_strict_decoding(text: str, detail: str) -> None:
    assert await fails("base64_decode", {"input": text}) == f"Failed to decode base64: {detail}"


async def test_b64d_3_text_must_be_utf8() -> None:
    message = await fails("base64_decode", {"input": base64.b64encode(b"ok\xff").decode()})
    assert (
        message
        == "Decoded bytes are not valid UTF-8: invalid utf-8 sequence of 1 bytes from index 2"
    )


async def test_b64d_3_output_file_writes_bytes_and_outputs_only_path(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content that is longer")
    payload = b"\x89PNG\x00\xff"
    out = await run_node(
        "base64_decode",
        {"input": base64.b64encode(payload).decode(), "output_file": "${ctx.dir}/out.bin",
         "output_key": "img"},
        {"dir": str(tmp_path)},
    )  # fmt: skip
    assert out == {"img_path": str(target)}
    assert target.read_bytes() == payload


async def test_b64d_3_output_file_size_capped_before_writing(tmp_path: Path) -> None:
    target = tmp_path / "capped.bin"
    message = await fails(
        "base64_decode",
        {"input": base64.b64encode(b"12345678901").decode(), "output_file": str(target)},
        env={"IRONFLOW_MAX_FILE_BYTES": "10"},
    )
    assert message == (
        "base64_decode: decoded payload 11 bytes exceeds limit 10 "
        "(set IRONFLOW_MAX_FILE_BYTES to raise)"
    )
    assert not target.exists()


async def test_b64d_3_output_file_parent_must_exist(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir.bin"
    message = await fails("base64_decode", {"input": "YQ==", "output_file": str(target)})
    assert message.startswith(f"Failed to write file '{target}': No such file or directory")


async def test_b64d_1_input_and_source_key_errors() -> None:
    assert await fails("base64_decode", {"input": "YQ==", "source_key": "k"}) == (
        "base64_decode: provide only one of 'input' or 'source_key'"
    )
    assert await fails("base64_decode", {}) == (
        "base64_decode requires either 'input' or 'source_key'"
    )
    assert await fails("base64_decode", {"source_key": "gone"}) == "Key 'gone' not found in context"
