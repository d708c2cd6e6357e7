"""list_directory (LD-1..LD-3)."""

from __future__ import annotations

import os

import pytest

from ironflow_core.errors import NodeError


def tree(root) -> None:
    (root / "b.txt").write_text("b")
    (root / "a.txt").write_text("a")
    (root / "sub").mkdir()
    (root / "sub" / "nested.txt").write_text("n")
    (root / "sub" / "deeper").mkdir()
    (root / "sub" / "deeper" / "leaf.txt").write_text("l")
    (root / "c.txt").write_text("c")


async def test_ld_1_happy_path_sorted_with_types_and_paths(call, tmp_path):
    tree(tmp_path)
    out = await call("list_directory", {"path": str(tmp_path)})
    assert out == {
        "files": [
            {"name": "a.txt", "type": "file", "path": f"{tmp_path}/a.txt"},
            {"name": "b.txt", "type": "file", "path": f"{tmp_path}/b.txt"},
            {"name": "c.txt", "type": "file", "path": f"{tmp_path}/c.txt"},
            {"name": "sub", "type": "directory", "path": f"{tmp_path}/sub"},
        ]
    }


async def test_ld_1_relative_path_stays_relative(call, tmp_path, monkeypatch):
    tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = await call("list_directory", {"path": "sub"})
    assert [entry["path"] for entry in out["files"]] == ["sub/deeper", "sub/nested.txt"]


async def test_ld_1_symlinks_and_fifos_are_reported_as_directory(call, tmp_path):
    (tmp_path / "real").write_text("r")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "pipe")
    out = await call("list_directory", {"path": str(tmp_path)})
    assert {e["name"]: e["type"] for e in out["files"]} == {
        "link": "directory",
        "pipe": "directory",
        "real": "file",
    }


async def test_ld_2_recursive_is_pre_order(call, tmp_path):
    tree(tmp_path)
    out = await call("list_directory", {"path": str(tmp_path), "recursive": "yes"})
    assert [e["path"][len(str(tmp_path)) + 1 :] for e in out["files"]] == [
        "a.txt",
        "b.txt",
        "c.txt",
        "sub",
        "sub/deeper",
        "sub/deeper/leaf.txt",
        "sub/nested.txt",
    ]


async def test_ld_2_recursion_does_not_enter_symlinked_directories(call, tmp_path):
    (tmp_path / "inside").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (tmp_path / "inside" / "escape").symlink_to(outside)
    out = await call("list_directory", {"path": str(tmp_path / "inside"), "recursive": True})
    assert [e["name"] for e in out["files"]] == ["escape"]


async def test_ld_1_custom_output_key(call, tmp_path):
    (tmp_path / "only").write_text("x")
    out = await call("list_directory", {"path": str(tmp_path), "output_key": "entries"})
    assert list(out) == ["entries"]
    assert len(out["entries"]) == 1


async def test_ld_1_empty_directory(call, tmp_path):
    assert await call("list_directory", {"path": str(tmp_path)}) == {"files": []}


async def test_ld_3_nonexistent_directory(call, tmp_path):
    with pytest.raises(NodeError, match=r"No such file or directory \(os error 2\)"):
        await call("list_directory", {"path": str(tmp_path / "missing")})


async def test_ld_3_missing_path_parameter(call):
    with pytest.raises(NodeError) as info:
        await call("list_directory", {})
    assert str(info.value) == "list_directory requires 'path' parameter"


async def test_ld_3_max_entries(call, make_ctx, tmp_path):
    for name in "abc":
        (tmp_path / name).write_text(name)
    assert (
        len((await call("list_directory", {"path": str(tmp_path), "max_entries": 3}))["files"]) == 3
    )
    with pytest.raises(NodeError) as info:
        await call("list_directory", {"path": str(tmp_path), "max_entries": "2"})
    assert str(info.value).startswith("list_directory: entry count exceeds limit 2")
    env = make_ctx(env={"IRONFLOW_MAX_DIRECTORY_ENTRIES": "2"})
    with pytest.raises(NodeError, match="entry count exceeds limit 2"):
        await call("list_directory", {"path": str(tmp_path)}, env)
    # 0 or an invalid value means the default (here the operator's 2)
    for fallback in (0, "lots"):
        with pytest.raises(NodeError, match="entry count exceeds limit 2"):
            await call("list_directory", {"path": str(tmp_path), "max_entries": fallback}, env)
    out = await call("list_directory", {"path": str(tmp_path), "max_entries": 0})
    assert len(out["files"]) == 3


async def test_ld_3_max_entries_counts_across_directories(call, tmp_path):
    tree(tmp_path)  # 7 entries recursively
    await call("list_directory", {"path": str(tmp_path), "recursive": True, "max_entries": 7})
    with pytest.raises(NodeError, match="entry count exceeds limit 6"):
        await call("list_directory", {"path": str(tmp_path), "recursive": True, "max_entries": 6})


async def test_ld_3_max_depth(call, tmp_path):
    tree(tmp_path)
    await call("list_directory", {"path": str(tmp_path), "recursive": True, "max_depth": 2})
    with pytest.raises(NodeError) as info:
        await call("list_directory", {"path": str(tmp_path), "recursive": True, "max_depth": 1})
    assert str(info.value) == "list_directory: recursion depth 2 exceeds limit 1"


async def test_ld_3_max_depth_zero_fails_on_the_first_subdirectory(call, tmp_path):
    (tmp_path / "f").write_text("f")
    params = {"path": str(tmp_path), "recursive": True, "max_depth": 0}
    assert len((await call("list_directory", params))["files"]) == 1
    (tmp_path / "d").mkdir()
    with pytest.raises(NodeError, match="recursion depth 1 exceeds limit 0"):
        await call("list_directory", params)
    # without recursion the depth limit never applies
    await call("list_directory", {**params, "recursive": False})
