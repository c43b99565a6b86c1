"""The row-group index of a Parquet dataset directory: its data files and the rows of each
of their row groups, built once (by ``materialize``, into the manifest; for datasets made
before that, once on the driver) so that no rank lists a directory or reads a footer of a
file it does not read.

Data files are taken as Petastorm's ``make_batch_reader`` takes them: every file under the
directory, sorted by path, names starting with ``_`` or ``.`` skipped (Spark's
``_SUCCESS`` and ``.crc`` files).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

#: Footers read at once when an index is built from a dataset's files.
_FOOTER_THREADS = 16


def open_dataset_dir(path: str) -> Tuple[Any, str]:
    """The pyarrow filesystem for ``path`` (a local path or a URI) and the path within it."""
    from pyarrow import fs as pafs

    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


@dataclass(frozen=True)
class DataFile:
    """One data file: its path relative to the dataset directory and each row group's rows."""

    name: str
    row_groups: Tuple[int, ...]

    @property
    def rows(self) -> int:
        return sum(self.row_groups)


@dataclass(frozen=True)
class RowGroup:
    """One row group of a dataset, by position: ``file`` indexes :attr:`DatasetIndex.files`."""

    file: int
    group: int
    rows: int


@dataclass(frozen=True)
class DatasetIndex:
    """A dataset directory (``root``: a local path or a URI) and its data files in plan order."""

    root: str
    files: Tuple[DataFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def path(self, file: int) -> str:
        """The full path (or URI) of data file number ``file``."""
        return f"{self.root.rstrip('/')}/{self.files[file].name}"

    def groups(self) -> List[RowGroup]:
        """Every row group holding rows, in file order (empty ones are left out: nothing to deal)."""
        return [RowGroup(i, g, n) for i, f in enumerate(self.files) for g, n in enumerate(f.row_groups) if n > 0]

    def to_dict(self) -> Dict[str, Any]:
        """The manifest's form: ``{"files": [[name, [rows of each row group]], ...]}`` (no root:
        the manifest's ``paths`` say where the split is)."""
        return {"files": [[f.name, list(f.row_groups)] for f in self.files]}

    @classmethod
    def from_dict(cls, root: str, raw: Dict[str, Any]) -> "DatasetIndex":
        return cls(root, tuple(DataFile(str(name), tuple(int(n) for n in groups)) for name, groups in raw["files"]))

    @classmethod
    def from_footers(cls, root: str) -> "DatasetIndex":
        """List ``root`` and read every data file's footer (once, on one process)."""
        import pyarrow.parquet as pq
        from pyarrow import fs as pafs

        fs, base = open_dataset_dir(root)
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"dataset {root} does not exist: prepare it first (sparkdl prepare)")
        if info.type == pafs.FileType.File:  # one Parquet file: the dataset of that file alone
            parent, name = root.rstrip("/").rsplit("/", 1) if "/" in root.rstrip("/") else (".", root)
            names, base, root = [name], base.rsplit("/", 1)[0] if "/" in base else ".", parent
        else:
            prefix = base.rstrip("/") + "/"
            found = fs.get_file_info(pafs.FileSelector(base, recursive=True))
            names = sorted(f.path[len(prefix):] for f in found
                           if f.type == pafs.FileType.File and not _is_hidden(f.path[len(prefix):]))
        if not names:
            raise FileNotFoundError(f"dataset {root} holds no data files (only names starting with '_' or '.')")
        prefix = base.rstrip("/") + "/"

        def row_groups(name: str) -> DataFile:
            with fs.open_input_file(prefix + name) as f:
                try:
                    meta = pq.ParquetFile(f).metadata
                except Exception as e:  # pyarrow's ArrowInvalid: not Parquet, truncated, ...
                    raise ValueError(f"{prefix + name} in dataset {root} is not a readable Parquet file ({e}); "
                                     "remove it or prepare the dataset again") from e
            return DataFile(name, tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))

        with ThreadPoolExecutor(min(_FOOTER_THREADS, len(names))) as pool:  # an object store answers in parallel
            return cls(root, tuple(pool.map(row_groups, names)))
