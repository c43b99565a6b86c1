"""A pyarrow file system that records what it opens: how tests and benchmarks check that a
rank reads no file (not even a footer) it was not dealt."""
from __future__ import annotations

from typing import Any


def counting_filesystem() -> Any:
    """A ``pyarrow.fs.PyFileSystem`` over the local file system whose ``handler.opened``
    lists every path opened for reading, in order, and ``handler.listed`` every selector."""
    from pyarrow import fs as pafs

    local = pafs.LocalFileSystem()

    class CountingOpens(pafs.FileSystemHandler):
        def __init__(self):
            self.opened, self.listed = [], []

        def open_input_file(self, path):
            self.opened.append(path)
            return local.open_input_file(path)

        def open_input_stream(self, path):
            self.opened.append(path)
            return local.open_input_stream(path)

        def get_file_info_selector(self, selector):
            self.listed.append(selector.base_dir)
            return local.get_file_info(selector)

        def get_type_name(self):
            return "counting"

        def get_file_info(self, paths):
            return local.get_file_info(paths)

        def normalize_path(self, path):
            return local.normalize_path(path)

        def create_dir(self, path, recursive):
            local.create_dir(path, recursive=recursive)

        def delete_dir(self, path):
            local.delete_dir(path)

        def delete_dir_contents(self, path, missing_dir_ok=False):
            local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

        def delete_root_dir_contents(self):
            raise NotImplementedError("not on a test's file system")

        def delete_file(self, path):
            local.delete_file(path)

        def move(self, src, dest):
            local.move(src, dest)

        def copy_file(self, src, dest):
            local.copy_file(src, dest)

        def open_output_stream(self, path, metadata):
            return local.open_output_stream(path, metadata=metadata)

        def open_append_stream(self, path, metadata):
            return local.open_append_stream(path, metadata=metadata)

    return pafs.PyFileSystem(CountingOpens())
