"""The one safe reader: regular files only, symlinks refused unless asked, bounded reads."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ironflow_core import FileTooLargeError, NotRegularFileError, read_regular
from ironflow_core.regular_files import open_regular, read_bounded


def test_reads_a_regular_file_and_bounds_it(tmp_path: Path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 100)
    assert read_regular(str(path), 100) == b"x" * 100
    assert read_regular(str(path), None) == b"x" * 100
    with pytest.raises(FileTooLargeError) as info:
        read_regular(str(path), 99)
    assert (info.value.size, info.value.limit) == (100, 99)


def test_a_file_whose_metadata_lies_is_bounded_by_what_is_read():
    fd, info = open_regular("/proc/self/status")
    try:
        assert info.st_size == 0  # /proc reports no size
        with pytest.raises(FileTooLargeError) as raised:
            read_bounded(fd, 10, info.st_size)
        assert raised.value.size is None
    finally:
        os.close(fd)


def test_fifos_directories_and_symlinks_are_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFileError):
        read_regular(str(fifo), 10)  # no writer: a blocking open would hang here
    with pytest.raises(NotRegularFileError):
        read_regular(str(tmp_path), 10)
    target = tmp_path / "target"
    target.write_text("secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError) as info:
        read_regular(str(link), 10)
    assert info.value.errno == errno.ELOOP
    assert read_regular(str(link), 10, follow_symlinks=True) == b"secret"


def test_a_leaf_is_opened_relative_to_a_directory_descriptor(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"data")
    parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert read_regular("f", 10, dir_fd=parent) == b"data"
    finally:
        os.close(parent)
