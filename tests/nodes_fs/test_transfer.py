"""copy_file, move_file, delete_file (FO-1..FO-4)."""

from __future__ import annotations

import os
import stat

import pytest
import trio

from ironflow_core.errors import NodeError


async def test_fo_1_copy_happy_path(call, tmp_path):
    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_text("hello copy")
    src.chmod(0o751)
    out = await call("copy_file", {"source": str(src), "destination": str(dst)})
    assert out == {
        "copy_file_source": str(src),
        "copy_file_destination": str(dst),
        "copy_file_success": True,
    }
    assert src.read_text() == "hello copy"
    assert dst.read_text() == "hello copy"
    assert stat.S_IMODE(dst.stat().st_mode) == 0o751


async def test_fo_1_copy_overwrites_the_destination(call, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("new")
    dst.write_text("old and longer")
    await call("copy_file", {"source": str(src), "destination": str(dst)})
    assert dst.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["dst", "src"]


async def test_fo_1_copy_interpolates_paths(call, make_ctx, tmp_path):
    (tmp_path / "in.txt").write_text("ctx interpolation")
    ctx = make_ctx({"dir": str(tmp_path), "names": {"out": "out.txt"}})
    out = await call(
        "copy_file",
        {"source": "${ctx.dir}/in.txt", "destination": "${ctx.dir}/${ctx.names.out}"},
        ctx,
    )
    assert out["copy_file_destination"] == f"{tmp_path}/out.txt"
    assert (tmp_path / "out.txt").read_text() == "ctx interpolation"


async def test_fo_1_copy_missing_source_carries_the_os_error(call, tmp_path):
    with pytest.raises(NodeError, match=r"No such file or directory \(os error 2\)"):
        await call(
            "copy_file",
            {"source": str(tmp_path / "missing"), "destination": str(tmp_path / "d")},
        )
    assert os.listdir(tmp_path) == []


async def test_fo_1_copy_parent_directory_must_exist(call, tmp_path):
    (tmp_path / "src").write_text("x")
    with pytest.raises(NodeError, match=r"No such file or directory \(os error 2\)"):
        await call(
            "copy_file",
            {"source": str(tmp_path / "src"), "destination": str(tmp_path / "no" / "d")},
        )
    assert not (tmp_path / "no").exists()


async def test_fo_1_copy_refuses_special_source_without_blocking(call, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with trio.fail_after(5), pytest.raises(NodeError, match="is not a regular file"):
        await call(
            "copy_file", {"source": str(tmp_path / "pipe"), "destination": str(tmp_path / "d")}
        )


async def test_fo_1_copy_never_writes_through_a_destination_symlink(call, tmp_path):
    (tmp_path / "src").write_text("payload")
    target = tmp_path / "target"
    target.write_text("target")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(NodeError, match="symlink"):
        await call(
            "copy_file", {"source": str(tmp_path / "src"), "destination": str(tmp_path / "link")}
        )
    assert target.read_text() == "target"


@pytest.mark.parametrize(
    ("node", "config", "message"),
    [
        ("copy_file", {"source": "/tmp/x.txt"}, "copy_file requires 'destination' parameter"),
        ("copy_file", {"destination": "/tmp/x.txt"}, "copy_file requires 'source' parameter"),
        ("move_file", {"destination": "/tmp/x.txt"}, "move_file requires 'source' parameter"),
        ("move_file", {"source": "/tmp/x.txt"}, "move_file requires 'destination' parameter"),
        ("move_file", {"source": 1, "destination": "d"}, "move_file requires 'source' parameter"),
        ("delete_file", {}, "delete_file requires 'path' parameter"),
    ],
)
async def test_fo_4_missing_parameters(call, node, config, message):
    with pytest.raises(NodeError) as info:
        await call(node, config)
    assert str(info.value) == message


async def test_fo_2_move_happy_path_overwrites(call, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("hello move")
    dst.write_text("old")
    out = await call("move_file", {"source": str(src), "destination": str(dst)})
    assert out == {
        "move_file_source": str(src),
        "move_file_destination": str(dst),
        "move_file_success": True,
    }
    assert not src.exists()
    assert dst.read_text() == "hello move"


async def test_fo_2_move_missing_source(call, tmp_path):
    with pytest.raises(NodeError) as info:
        await call(
            "move_file", {"source": str(tmp_path / "nope"), "destination": str(tmp_path / "d")}
        )
    assert str(info.value) == (
        f"move_file: failed to move '{tmp_path}/nope' to '{tmp_path}/d': "
        "No such file or directory (os error 2)"
    )


async def test_fo_3_delete_happy_path(call, make_ctx, tmp_path):
    (tmp_path / "gone.txt").write_text("x")
    out = await call(
        "delete_file", {"path": "${ctx.dir}/gone.txt"}, make_ctx({"dir": str(tmp_path)})
    )
    assert out == {"delete_file_path": f"{tmp_path}/gone.txt", "delete_file_success": True}
    assert not (tmp_path / "gone.txt").exists()


async def test_fo_3_delete_missing_file_is_an_error(call, tmp_path):
    with pytest.raises(NodeError) as info:
        await call("delete_file", {"path": str(tmp_path / "nope")})
    assert str(info.value) == (
        f"delete_file: failed to delete '{tmp_path}/nope': No such file or directory (os error 2)"
    )


async def test_fo_3_delete_refuses_a_directory(call, tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(NodeError, match="Is a directory"):
        await call("delete_file", {"path": str(tmp_path / "d")})
    assert (tmp_path / "d").is_dir()


async def test_fo_3_delete_removes_a_symlink_not_its_target(call, tmp_path):
    (tmp_path / "target").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    await call("delete_file", {"path": str(tmp_path / "link")})
    assert not (tmp_path / "link").is_symlink()
    assert (tmp_path / "target").read_text() == "keep"
