"""IRONFLOW_FS_ROOTS holds while the tree changes under a node (beyond upstream).

The attack as it was found: a thread keeps swapping a directory inside the root
for a symlink to an outside directory while the file nodes run through it,
hoping that a path checked while it was a directory is used while it is a
symlink. Every operation walks from an opened root by descriptors, so nothing
outside may be written, moved or deleted, however the race falls.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from ironflow_core.errors import NodeError

ROUNDS = 40


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(directory.rglob("*"))
    }


class Swapper:
    """Flips ``root/d`` between a real directory and a symlink to ``outside``."""

    def __init__(self, root: Path, outside: Path) -> None:
        self.root, self.outside = root, outside
        self.stop = threading.Event()
        self.flips = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        d, real, link = self.root / "d", self.root / "d.real", self.root / "d.link"
        while not self.stop.is_set():
            try:
                (d / "victim.txt").write_text("inside")
                os.rename(d, real)
                os.symlink(self.outside, link)
                os.rename(link, d)
                os.unlink(d)
                os.rename(real, d)
                self.flips += 1
            except OSError:
                # a node moved or created something in the way: put things back
                self.restore(d, real, link)

    @staticmethod
    def restore(d: Path, real: Path, link: Path) -> None:
        for path in (d, link):
            if path.is_symlink():
                os.unlink(path)
        if real.is_dir():
            if d.is_dir():
                shutil.rmtree(real)
            else:
                os.rename(real, d)
        d.mkdir(exist_ok=True)


@pytest.fixture
def arena(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "victim.txt").write_text("outside, must survive")
    (outside / "outside-only").mkdir()
    (root / "in.txt").write_text("payload")
    with zipfile.ZipFile(root / "a.zip", "w") as archive:
        archive.writestr("x.txt", "zipped")
    return root, outside


async def test_swapping_a_directory_for_a_symlink_never_reaches_outside(call, make_ctx, arena):
    root, outside = arena
    before = snapshot(outside)
    ctx = make_ctx(env={"IRONFLOW_FS_ROOTS": str(root)})
    d = root / "d"
    operations = [
        ("write_file", {"path": f"{d}/w.txt", "content": "planted"}),
        ("write_file", {"path": f"{d}/sub/w.txt", "content": "planted"}),
        ("copy_file", {"source": f"{root}/in.txt", "destination": f"{d}/c.txt"}),
        ("move_file", {"source": f"{d}/victim.txt", "destination": f"{root}/taken.txt"}),
        ("copy_file", {"source": f"{root}/in.txt", "destination": f"{root}/m.txt"}),
        ("move_file", {"source": f"{root}/m.txt", "destination": f"{d}/m.txt"}),
        ("delete_file", {"path": f"{d}/victim.txt"}),
        ("zip_extract", {"path": f"{root}/a.zip", "destination": f"{d}/x"}),
        ("zip_extract", {"path": f"{root}/a.zip", "destination": f"{d}/sub"}),
        ("read_file", {"path": f"{d}/victim.txt"}),
        ("list_directory", {"path": f"{d}", "recursive": True}),
        ("zip_create", {"source": f"{d}", "zip_path": f"{d}/out.zip"}),
    ]
    swapper = Swapper(root, outside)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    swapper.thread.start()
    leaked: list[str] = []
    try:
        for _ in range(ROUNDS):
            for node, config in operations:
                try:
                    out = await call(node, config, ctx)
                except NodeError as error:
                    assert "[Errno" not in str(error), str(error)
                    continue
                text = str(out)
                if "outside, must survive" in text or "outside-only" in text:
                    leaked.append(f"{node} read outside: {text[:200]}")
    finally:
        swapper.stop.set()
        swapper.thread.join()
        sys.setswitchinterval(interval)
    assert swapper.flips > ROUNDS  # the race really ran
    assert snapshot(outside) == before
    assert leaked == []
