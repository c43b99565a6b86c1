"""Arrow columns to contiguous numpy matrices, without a Python object per row: the one
decoding the training reader, scoring and evaluation share. Errors name the column, the
file and the first row that does not fit."""
from __future__ import annotations

import numpy as np


def _row_width(offsets: np.ndarray, name: str, where: str, item: str = "row", unit: str = "values") -> int:
    """The one width every row of an offsets array has; an error naming the first row that differs."""
    lengths = np.diff(offsets)
    width = int(lengths[0]) if len(lengths) else 0
    if len(lengths) and (lengths != width).any():
        bad = int(np.argmax(lengths != width))
        raise ValueError(f"column {name!r} in {where}: {item} {bad} of the row group has {int(lengths[bad])} {unit}, "
                         f"{item} 0 has {width}; every {item} needs the same "
                         f"{'shape' if item == 'image' else 'width'}")
    return width


def pixel_bytes(arr, name: str, where: str) -> np.ndarray:
    """An Arrow binary column of equal-length uint8 images → a ``(rows, pixels)`` uint8 view
    of its buffer (read-only: Arrow's memory)."""
    import pyarrow as pa

    if arr.null_count:
        raise ValueError(f"column {name!r} in {where} has {arr.null_count} null images: re-materialize the dataset")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_binary(arr.type) else np.int32)
    offsets = offsets[arr.offset:arr.offset + len(arr) + 1]
    width = _row_width(offsets, name, where, "image", "bytes")
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[int(offsets[0]):int(offsets[-1])]
    return data.reshape(len(arr), width)


#: Pixels' uint8 values scaled to [0, 1]: the one factor the reader's device copy and scoring share.
PIXEL_SCALE = np.float32(1 / 255)


def pixel_matrix(arr, name: str, where: str) -> np.ndarray:
    """An Arrow binary column of equal-length uint8 images → ``(rows, pixels)`` float32 in [0, 1]."""
    return pixel_bytes(arr, name, where).astype(np.float32) * PIXEL_SCALE


def _list_matrix(arr, name: str, where: str, dtype) -> np.ndarray:
    """An Arrow column of equal-length number arrays → one contiguous ``(rows, width)`` matrix."""
    import pyarrow as pa

    kind = arr.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise ValueError(f"column {name!r} in {where} is {kind}, not an array column: it must hold "
                         "one array of numbers per row (materialize writes list<float>, list<int>)")
    if arr.null_count:
        raise ValueError(f"column {name!r} in {where} has {arr.null_count} null rows: re-materialize the "
                         "dataset (materialize never writes nulls) or drop those rows")
    if pa.types.is_fixed_size_list(kind):
        width, values = kind.list_size, arr.flatten()
    else:
        offsets = arr.offsets.to_numpy()
        width = _row_width(offsets, name, where)
        values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    if values.null_count:
        raise ValueError(f"column {name!r} in {where} has {values.null_count} null values inside its arrays")
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=dtype).reshape(len(arr), width)


def _combined(column):
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):  # one chunk as it is: combining copies even that
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def feature_matrix(column, name: str, where: str, raw_pixels: bool = False) -> np.ndarray:
    """An Arrow column of equal-length numeric arrays (or of equal-size uint8 images) →
    one contiguous ``(rows, width)`` float32 matrix, without a Python object per row
    (``raw_pixels``: images as their uint8 bytes, a quarter of the memory, scaled on the
    device). Errors name the column and file."""
    import pyarrow as pa

    arr = _combined(column)
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        return pixel_bytes(arr, name, where) if raw_pixels else pixel_matrix(arr, name, where)
    return _list_matrix(arr, name, where, np.float32)


def index_matrix(column, name: str, where: str) -> np.ndarray:
    """An Arrow column of equal-length integer arrays (embedding indices) → ``(rows, columns)`` int64."""
    return _list_matrix(_combined(column), name, where, np.int64)
