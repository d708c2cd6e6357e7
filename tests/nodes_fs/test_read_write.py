"""read_file and write_file (RF-1..RF-4, WF-1..WF-5)."""

from __future__ import annotations

import base64
import errno
import os
import stat

import pytest
import trio

from ironflow_core.errors import NodeError
from ironflow_nodes_fs import streams


def temp_files(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith(".ironflow-"))


# --- read_file -----------------------------------------------------------------


async def test_write_then_read_round_trip(call, tmp_path):
    target = tmp_path / "hello.txt"
    written = await call("write_file", {"path": str(target), "content": "hello world"})
    assert written == {"write_file_path": str(target), "write_file_success": True}
    out = await call("read_file", {"path": str(target), "output_key": "content"})
    assert out == {
        "content_content": "hello world",
        "content_path": str(target),
        "content_success": True,
    }


async def test_rf_4_default_key_and_interpolated_path(call, make_ctx, tmp_path):
    (tmp_path / "a.txt").write_text("A\n")
    ctx = make_ctx({"dir": str(tmp_path), "file": {"name": "a.txt"}})
    out = await call("read_file", {"path": "${ctx.dir}/${ctx.file.name}"}, ctx)
    assert out == {
        "file_content": "A\n",
        "file_path": f"{tmp_path}/a.txt",
        "file_success": True,
    }


async def test_rf_3_base64_encoding(call, tmp_path):
    payload = bytes(range(256))
    (tmp_path / "b.bin").write_bytes(payload)
    out = await call("read_file", {"path": str(tmp_path / "b.bin"), "encoding": "base64"})
    assert out["file_content"] == base64.b64encode(payload).decode()


async def test_rf_3_invalid_utf8(call, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ok\xffno")
    with pytest.raises(NodeError) as info:
        await call("read_file", {"path": str(tmp_path / "bad.txt")})
    assert str(info.value) == (
        f"read_file: '{tmp_path}/bad.txt' is not valid UTF-8: "
        "invalid utf-8 sequence of 1 bytes from index 2"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "read_file requires string 'path' parameter"),
        ({"path": 3}, "read_file requires string 'path' parameter"),
        ({"path": "x", "output_key": 1}, "read_file: 'output_key' must be a string"),
        ({"path": "x", "encoding": True}, "read_file: 'encoding' must be a string"),
        (
            {"path": "x", "encoding": "hex"},
            "read_file: unsupported encoding 'hex'. Must be 'text', 'base64', or 'artifact'.",
        ),
        (
            {"path": "x", "mime_type": "text/plain"},
            "read_file: 'mime_type' requires encoding = 'artifact'",
        ),
    ],
)
async def test_rf_3_parameter_errors(call, config, message):
    with pytest.raises(NodeError) as info:
        await call("read_file", config)
    assert str(info.value) == message


async def test_rf_5_artifact_mode_is_reported_as_unavailable(call, tmp_path):
    (tmp_path / "a").write_text("a")
    with pytest.raises(NodeError, match="artifact mode is not available"):
        await call("read_file", {"path": str(tmp_path / "a"), "encoding": "artifact"})


async def test_rf_1_missing_file_names_the_os_error(call, tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(NodeError) as info:
        await call("read_file", {"path": str(missing)})
    assert str(info.value) == (
        f"read_file: failed to read '{missing}': failed to open file: "
        "No such file or directory (os error 2)"
    )


async def test_rf_1_final_symlink_is_not_followed(call, tmp_path):
    (tmp_path / "target.txt").write_text("secret")
    (tmp_path / "link.txt").symlink_to(tmp_path / "target.txt")
    with pytest.raises(NodeError, match="failed to open file: Too many levels of symbolic links"):
        await call("read_file", {"path": str(tmp_path / "link.txt")})


async def test_rf_1_directory_is_not_a_regular_file(call, tmp_path):
    with pytest.raises(NodeError) as info:
        await call("read_file", {"path": str(tmp_path)})
    assert str(info.value) == f"read_file: '{tmp_path}' is not a regular file"


async def test_rf_1_fifo_without_writer_is_rejected_promptly(call, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with trio.fail_after(5), pytest.raises(NodeError, match="is not a regular file"):
        await call("read_file", {"path": str(fifo)})


async def test_rf_1_device_is_rejected_without_reading(call):
    with trio.fail_after(5), pytest.raises(NodeError, match="'/dev/zero' is not a regular file"):
        await call("read_file", {"path": "/dev/zero", "encoding": "base64"})


async def test_rf_2_size_limit_on_metadata(call, make_ctx, tmp_path):
    (tmp_path / "five").write_bytes(b"12345")
    ctx = make_ctx(env={"IRONFLOW_MAX_FILE_BYTES": "4"})
    with pytest.raises(NodeError) as info:
        await call("read_file", {"path": str(tmp_path / "five")}, ctx)
    assert str(info.value) == (
        f"read_file: '{tmp_path}/five' is 5 bytes, exceeds the 4 byte limit "
        "(raise the relevant IRONFLOW_MAX_* setting)"
    )
    ok = make_ctx(env={"IRONFLOW_MAX_FILE_BYTES": "5"})
    assert (await call("read_file", {"path": str(tmp_path / "five")}, ok))[
        "file_content"
    ] == "12345"


async def test_rf_2_limit_is_enforced_on_bytes_actually_read():
    """A source that yields more than it announced is cut off one chunk past the budget."""
    produced = 0

    def endless(n: int) -> bytes:
        nonlocal produced
        produced += n
        return b"x" * n

    sink = bytearray()
    with pytest.raises(NodeError, match=r"^too much$"):
        await streams.copy_bounded(endless, sink.extend, 100_000, "too much", "failed")
    assert len(sink) <= 100_000
    assert produced <= 100_000 + streams.CHUNK + 1


# --- write_file ----------------------------------------------------------------


async def test_wf_1_more_than_one_input_form(call, make_ctx, tmp_path):
    with pytest.raises(NodeError) as info:
        await call(
            "write_file",
            {"path": str(tmp_path / "x"), "content": "a", "source_key": "k"},
            make_ctx({"k": "b"}),
        )
    assert str(info.value) == (
        "write_file accepts exactly one of 'content', 'source_key', or 'artifact'"
    )
    assert not (tmp_path / "x").exists()


async def test_wf_1_no_input_writes_an_empty_file(call, tmp_path):
    await call("write_file", {"path": str(tmp_path / "empty")})
    assert (tmp_path / "empty").read_bytes() == b""


async def test_wf_2_source_key_value_is_used_verbatim(call, make_ctx, tmp_path):
    ctx = make_ctx({"body": "literal ${ctx.other}", "other": "X"})
    await call("write_file", {"path": str(tmp_path / "v"), "source_key": "body"}, ctx)
    assert (tmp_path / "v").read_text() == "literal ${ctx.other}"


async def test_int_12_content_and_path_are_interpolated(call, make_ctx, tmp_path):
    ctx = make_ctx({"dir": str(tmp_path), "n": 42, "user": {"name": "Alice"}})
    out = await call(
        "write_file",
        {"path": "${ctx.dir}/out.txt", "content": "${ctx.user.name} has ${ctx.n}"},
        ctx,
    )
    assert out["write_file_path"] == f"{tmp_path}/out.txt"
    assert (tmp_path / "out.txt").read_text() == "Alice has 42"


async def test_wf_2_missing_source_key(call, tmp_path):
    with pytest.raises(NodeError) as info:
        await call("write_file", {"path": str(tmp_path / "x"), "source_key": "nope"})
    assert str(info.value) == "Key 'nope' not found in context"


async def test_wf_2_non_string_content(call, make_ctx, tmp_path):
    with pytest.raises(NodeError) as info:
        await call(
            "write_file", {"path": str(tmp_path / "x"), "source_key": "n"}, make_ctx({"n": 5})
        )
    assert str(info.value) == "write_file content source must be a string or artifact"
    with pytest.raises(NodeError, match="artifact mode is not available"):
        await call("write_file", {"path": str(tmp_path / "x"), "content": {"artifact_uri": "a"}})


async def test_wf_2_base64_is_decoded(call, tmp_path):
    payload = bytes(range(256)) * 3
    await call(
        "write_file",
        {
            "path": str(tmp_path / "bin"),
            "content": base64.b64encode(payload).decode(),
            "encoding": "base64",
        },
    )
    assert (tmp_path / "bin").read_bytes() == payload


async def test_wf_2_malformed_base64_keeps_old_file_and_leaves_no_temp(call, tmp_path):
    target = tmp_path / "keep.bin"
    target.write_bytes(b"original")
    with pytest.raises(NodeError, match="invalid base64 input"):
        await call(
            "write_file", {"path": str(target), "content": "@@not base64", "encoding": "base64"}
        )
    assert target.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["keep.bin"]


async def test_wf_2_unsupported_encoding(call, tmp_path):
    with pytest.raises(NodeError) as info:
        await call("write_file", {"path": str(tmp_path / "x"), "content": "a", "encoding": "hex"})
    assert str(info.value) == (
        "write_file: unsupported encoding 'hex'. Must be 'text', 'base64', or 'artifact'."
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "write_file requires 'path' parameter"),
        ({"path": 1}, "write_file: 'path' must be a string"),
        ({"path": "p", "source_key": 1}, "write_file: 'source_key' must be a string"),
        ({"path": "p", "append": "sometimes"}, "'append' must be a boolean"),
    ],
)
async def test_node_4_write_file_parameter_errors(call, config, message):
    with pytest.raises(NodeError) as info:
        await call("write_file", config)
    assert str(info.value) == message


async def test_wf_3_text_over_the_limit(call, make_ctx, tmp_path):
    ctx = make_ctx(env={"IRONFLOW_MAX_FILE_BYTES": "4"})
    with pytest.raises(NodeError) as info:
        await call("write_file", {"path": str(tmp_path / "x"), "content": "12345"}, ctx)
    assert str(info.value) == (
        "write_file: final payload is 5 bytes, exceeds IRONFLOW_MAX_FILE_BYTES (4)"
    )
    assert os.listdir(tmp_path) == []


async def test_wf_3_base64_size_is_checked_before_decoding(call, make_ctx, tmp_path):
    ctx = make_ctx(env={"IRONFLOW_MAX_FILE_BYTES": "4"})
    with pytest.raises(NodeError, match="final payload is 6 bytes"):
        await call(
            "write_file",
            {"path": str(tmp_path / "x"), "content": "QUJDREVG", "encoding": "base64"},
            ctx,
        )


async def test_wf_3_append_limit_applies_to_final_size(call, make_ctx, tmp_path):
    target = tmp_path / "log"
    target.write_bytes(b"1234567")
    ctx = make_ctx(env={"IRONFLOW_MAX_FILE_BYTES": "8"})
    with pytest.raises(NodeError, match="IRONFLOW_MAX_FILE_BYTES"):
        await call("write_file", {"path": str(target), "content": "89", "append": True}, ctx)
    assert target.read_bytes() == b"1234567"
    await call("write_file", {"path": str(target), "content": "8", "append": "yes"}, ctx)
    assert target.read_bytes() == b"12345678"


async def test_wf_4_append_to_a_missing_file_creates_it(call, tmp_path):
    await call("write_file", {"path": str(tmp_path / "new"), "content": "a", "append": True})
    assert (tmp_path / "new").read_text() == "a"


async def test_wf_4_missing_parents_are_created(call, tmp_path):
    target = tmp_path / "a" / "b" / "c.txt"
    await call("write_file", {"path": str(target), "content": "deep"})
    assert target.read_text() == "deep"


async def test_wf_4_destination_symlink_is_refused_without_touching_target(call, tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"target")
    link = tmp_path / "link"
    link.symlink_to(target)
    for append in (False, True):
        with pytest.raises(NodeError, match=r"symlink|Too many levels"):
            await call("write_file", {"path": str(link), "content": "hostile", "append": append})
    assert target.read_bytes() == b"target"
    assert link.is_symlink()
    assert temp_files(tmp_path) == []


async def test_wf_4_destination_that_is_not_a_regular_file_is_refused(call, tmp_path):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for name in ("dir", "fifo"):
        with trio.fail_after(5), pytest.raises(NodeError, match="not a regular file"):
            await call("write_file", {"path": str(tmp_path / name), "content": "x"})
    assert temp_files(tmp_path) == []


async def test_wf_4_replacing_a_file_is_a_rename_and_keeps_its_permissions(call, tmp_path):
    target = tmp_path / "conf"
    target.write_text("old")
    target.chmod(0o640)
    before = target.stat().st_ino
    await call("write_file", {"path": str(target), "content": "new"})
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != before  # a new inode was renamed into place
    assert temp_files(tmp_path) == []


async def test_wf_4_disk_full_mid_write_leaves_the_old_file(call, make_ctx, tmp_path, monkeypatch):
    """A write that fails halfway (ENOSPC after the first slice) publishes nothing."""
    target = tmp_path / "data.bin"
    target.write_bytes(b"original")
    real_pump = streams._pump
    calls = 0

    def failing_pump(read, write, budget):
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pump(read, write, budget)

    monkeypatch.setattr(streams, "_pump", failing_pump)
    with pytest.raises(NodeError) as info:
        await call(
            "write_file",
            {"path": str(target), "content": "x" * (3 * streams.SLICE)},
            make_ctx(env={"IRONFLOW_MAX_FILE_BYTES": str(10 * streams.SLICE)}),
        )
    assert str(info.value) == (
        f"write_file: failed to write '{target}': No space left on device (os error 28)"
    )
    assert calls == 2
    assert target.read_bytes() == b"original"
    assert temp_files(tmp_path) == []


async def test_wf_4_cancelled_mid_write_leaves_the_old_file(call, make_ctx, tmp_path):
    """Cancel the step once the temp file exists: the old content survives, the temp goes."""
    target = tmp_path / "data.bin"
    target.write_bytes(b"original")
    ctx = make_ctx(env={"IRONFLOW_MAX_FILE_BYTES": str(64 * streams.SLICE)})
    seen_temp = False
    async with trio.open_nursery() as nursery:
        step = trio.CancelScope()

        async def writer() -> None:
            with step:
                await call(
                    "write_file", {"path": str(target), "content": "y" * (16 * streams.SLICE)}, ctx
                )

        async def canceller() -> None:
            nonlocal seen_temp
            with trio.fail_after(10):
                while not temp_files(tmp_path):
                    await trio.sleep(0)
            seen_temp = True
            step.cancel()

        nursery.start_soon(writer)
        nursery.start_soon(canceller)
    assert seen_temp and step.cancelled_caught
    assert target.read_bytes() == b"original"
    assert temp_files(tmp_path) == []
