"""The rank-side reader on real Parquet files (no Spark needed)."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkdl.core.parquet_index import DatasetIndex
from sparkdl.testing.filesystems import counting_filesystem
from sparkdl.training.rank.loop import too_few_rows
from sparkdl.training.rank.reader import Capacity, Prefetcher, ShardReader, feature_matrix, shuffled_batches


@pytest.fixture
def dataset(tmp_path):
    """10 files, one row group each, of 97..106 rows; features encode the row id."""
    rid = 0
    for i in range(10):
        n = 97 + i
        ids = np.arange(rid, rid + n)
        rid += n
        feats = pa.array([[float(v), float(v) * 2] for v in ids], type=pa.list_(pa.float32()))
        pq.write_table(pa.table({"features": feats, "label": pa.array(ids % 2, pa.int32())}),
                       tmp_path / f"part-{i:02d}.parquet")
    return DatasetIndex.from_footers(str(tmp_path)), rid


def reader(index, rank, size, batch, **kw):
    return ShardReader(index, rank, size, batch, **kw)


def test_every_row_once_across_ranks_every_time(dataset):
    index, total = dataset
    for size in (1, 2, 3, 7):
        seen = []
        for rank in range(size):
            seen.extend(int(v) for x, _ in reader(index, rank, size, 10).all_rows(64) for v in x[:, 0])
        assert sorted(seen) == list(range(total))


def test_the_index_is_petastorms_sorted_files_and_row_groups(tmp_path):
    """Files sorted by path, '_'/'.' names skipped, row groups in file order: the pieces
    make_batch_reader sees (tests/compat reads the same rows with Petastorm itself)."""
    def write(name, starts):
        tables = [pa.table({"features": pa.array([[float(s + j)] for j in range(5)], pa.list_(pa.float32())),
                            "label": pa.array([0] * 5, pa.int64())}) for s in starts]
        with pq.ParquetWriter(tmp_path / name, tables[0].schema) as w:
            for t in tables:
                w.write_table(t)
    write("part-b.parquet", [200, 300])
    write("part-a.parquet", [0, 100])
    write("part-c.parquet", [400])
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".part-a.parquet.crc").write_text("not parquet")
    index = DatasetIndex.from_footers(f"file://{tmp_path}")  # URIs and plain paths alike
    assert [(f.name, f.row_groups) for f in index.files] == [
        ("part-a.parquet", (5, 5)), ("part-b.parquet", (5, 5)), ("part-c.parquet", (5,))]
    assert DatasetIndex.from_dict(index.root, index.to_dict()) == index
    pieces = [[int(v) for x, _ in reader(index, r, 2, 1).all_rows(4) for v in x[:, 0]] for r in (0, 1)]
    assert pieces == [[0, 1, 2, 3, 4, 100, 101, 102, 103, 104, 200, 201],  # 12 and 13 rows, in file order
                      [202, 203, 204, 300, 301, 302, 303, 304, 400, 401, 402, 403, 404]]


def test_missing_or_broken_dataset_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DatasetIndex.from_footers(str(tmp_path / "nope"))
    (tmp_path / "_SUCCESS").write_text("")
    with pytest.raises(FileNotFoundError, match="no data files"):
        DatasetIndex.from_footers(str(tmp_path))
    (tmp_path / "part-0.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="part-0.parquet in dataset .* not a readable Parquet file"):
        DatasetIndex.from_footers(str(tmp_path))


def test_a_rank_opens_only_the_files_it_reads_and_each_footer_once(dataset):
    index, _ = dataset
    fs = counting_filesystem()
    handler = fs.handler
    r = ShardReader(index, 1, 3, 16, shuffle_buffer=100, filesystem=fs)
    mine, _ = r.piece(1)
    assert mine == r.deal(1).ranges[1]
    assert sum(len(y) for _, y in r.epoch(1)) == r.steps * 16
    files = {index.path(x.file) for x in mine}
    assert set(handler.opened) == files and not handler.listed  # no other file, not even a footer; no listing
    assert len(handler.opened) == 2 * len(files)  # its footer once, then its rows once


@pytest.mark.parametrize("decoded_at_once", [16 * 2**20, 200])  # a part of a row group in one piece, or in many
def test_a_rank_trains_on_exactly_the_rows_it_was_dealt(dataset, monkeypatch, decoded_at_once):
    from sparkdl.training.rank import reader as reader_module

    monkeypatch.setattr(reader_module, "_PARTIAL_READ_BYTES", decoded_at_once)
    index, total = dataset
    first = np.concatenate([[0], np.cumsum([f.rows for f in index.files])])  # one row group a file
    for size, batch in ((2, 32), (3, 7), (1, 64)):
        everyone = []
        for rank in range(size):
            r = reader(index, rank, size, batch, shuffle_buffer=50, seed=4)
            mine, _ = r.piece(2)
            got = sorted(int(v) for x, _ in r.epoch(2) for v in x[:, 0])  # features carry the row's number
            want = sorted(v for g in mine for v in range(first[g.file] + g.start, first[g.file] + g.start + g.length))
            assert got == want and len(got) == r.steps * batch
            everyone += got
        assert len(set(everyone)) == len(everyone) and total - len(everyone) < size * batch


def test_the_shuffle_buffer_is_capped_in_decoded_bytes_alike_for_every_reader_of_the_rows(tmp_path):
    """One-hot rows compress to almost nothing in Parquet; the cap counts what a rank holds."""
    width = 500
    x = np.zeros((400, width), np.float32)
    x[np.arange(400), np.arange(400) % width] = 1.0
    feats = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), width).cast(pa.list_(pa.float32()))
    pq.write_table(pa.table({"features": feats, "label": pa.array(np.arange(400) % 2, pa.int64())}),
                   tmp_path / "part-0.parquet")
    index = DatasetIndex.from_footers(str(tmp_path))
    assert (tmp_path / "part-0.parquet").stat().st_size < 400 * width * 4 / 20  # stored small ...
    row = width * 4 + 8  # ... but decoded, 2,008 bytes a row
    whole = reader(index, 0, 1, 8, shuffle_buffer=10_000, shuffle_buffer_bytes=2**19)
    mine, _ = whole.piece(1)
    first = next(whole._chunks(mine))
    assert whole.capacity(mine).rows(first) == 2**19 // row == 261  # measured on the decoded rows
    stage = reader(index, 0, 1, 8, shuffle_buffer=10_000, shuffle_buffer_bytes=2**19, row_bytes=row, inputs=False)
    labels_only = next(stage._chunks(mine))
    assert labels_only[0].shape[1] == 0 and len(labels_only[1]) == len(first[1])
    assert stage.capacity(mine).rows(labels_only) == 261  # a pipeline stage reading labels only: the same buffer
    assert reader(index, 0, 1, 8, shuffle_buffer=10_000).capacity(mine).rows(first) == 400  # never past its rows
    batches = [y for _, y in whole.epoch(1)]
    assert sorted(np.concatenate(batches).tolist()) == sorted((np.arange(400) % 2).tolist())


def test_on_device_scales_uint8_pixels_as_scoring_does():
    import torch

    from sparkdl.training.rank.loop import on_device

    images = pa.array([bytes([0, 255, 51, 102]), bytes([7, 8, 9, 10])], pa.binary())
    raw = feature_matrix(images, "features", "f", raw_pixels=True)
    x, y = on_device((torch.from_numpy(raw.copy()), torch.tensor([1, 0])), torch.device("cpu"))
    assert x.dtype == torch.float32 and torch.equal(x, torch.from_numpy(feature_matrix(images, "features", "f")))
    assert y.dtype == torch.int64  # labels as they were


def test_batches_are_contiguous_writable_float32_and_int64(dataset):
    index, _ = dataset
    for rank in range(3):
        for bx, by in reader(index, rank, 3, 1).all_rows(10):  # what torch.from_numpy gets
            assert bx.dtype == np.float32 and by.dtype == np.int64
            assert bx.flags.c_contiguous and bx.flags.writeable and by.flags.writeable


def test_feature_matrix_takes_fixed_and_variable_size_lists():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)
    assert np.array_equal(feature_matrix(fixed, "features", "f"), x)
    sliced = fixed.cast(pa.list_(pa.float64())).slice(1, 2)  # offsets not starting at 0; doubles
    out = feature_matrix(pa.chunked_array([sliced]), "features", "f")
    assert out.dtype == np.float32 and np.array_equal(out, x[1:3])


@pytest.mark.parametrize("column, message", [
    (pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32())), r"'features' in part-7.*row 1 .* 1 values, row 0 has 2"),
    (pa.array([[1.0, 2.0], None], pa.list_(pa.float32())), r"'features' in part-7 has 1 null rows"),
    (pa.array([[1.0, None]], pa.list_(pa.float32())), r"'features' in part-7 has 1 null values inside"),
    (pa.array([1.0, 2.0], pa.float32()), r"'features' in part-7 is float, not an array column"),
])
def test_feature_matrix_names_the_column_and_file_of_bad_storage(column, message):
    with pytest.raises(ValueError, match=message):
        feature_matrix(column, "features", "part-7")


def test_equal_steps_and_seeded_shuffle(dataset):
    index, total = dataset
    steps = (total // (2 * 32)) // 2 * 2

    def epoch(rank, e, seed=5):
        r = reader(index, rank, 2, 32, shuffle_buffer=200, seed=seed, prefetch=2, multiple_of=2)
        assert r.steps == steps
        return [x[:, 0].copy() for x, _ in r.epoch(e)]
    a, b = epoch(0, 1), epoch(1, 1)
    assert all(x.flags.writeable for x in a)  # torch.from_numpy warns on Arrow's read-only buffers
    assert len(a) == len(b) == steps and all(len(x) == 32 for x in a + b)
    assert all(np.array_equal(x, y) for x, y in zip(a, epoch(0, 1)))  # same seed, same epoch: same order
    assert not all(np.array_equal(x, y) for x, y in zip(a, epoch(0, 2)))  # next epoch: new order
    flat = np.concatenate(a)
    assert len(set(flat.tolist())) == len(flat)  # no row twice in an epoch
    assert np.any(np.diff(flat) < 0)  # shuffled, not file order


@pytest.mark.parametrize("chunk", [50, 200])  # smaller than the buffer (a block of two chunks), larger (of one)
def test_shuffle_buffer_keeps_every_row_and_mixes_them(chunk):
    chunks = [(np.arange(i, i + chunk, dtype=np.float32)[:, None], np.arange(i, i + chunk))
              for i in range(0, 1400, chunk)]
    out = list(shuffled_batches(iter(chunks), 16, 64, np.random.default_rng(0)))
    flat = np.concatenate([x[:, 0] for x, _ in out])
    assert sorted(flat.tolist()) == list(range(1400))
    assert np.array_equal(flat, np.concatenate([y for _, y in out]))  # features and labels stay paired
    assert all(len(x) == 16 for x, _ in out[:-1])
    assert np.abs(flat - np.arange(1400)).mean() > 16  # rows move well beyond a batch ...
    assert np.corrcoef(flat, np.arange(1400))[0, 1] > 0.5  # ... but a 64-row buffer is no full shuffle
    if chunk < 64:  # a block pools several chunks: batches mix rows of both
        assert sum(len(set((x[:, 0] // chunk).tolist())) > 1 for x, _ in out) > len(out) // 2
    assert all(x.flags.writeable and x.flags.c_contiguous for x, _ in out)


@pytest.mark.parametrize("sizes, batch, buffer", [
    ([5, 100, 7, 3], 16, 4),       # a buffer smaller than a batch: blocks of a batch at least
    ([10] * 40, 32, 16),
    ([3, 500, 2, 9, 300], 8, 1),
    ([20] * 600, 64, 5000),        # many tiny chunks: joined before they are pooled
    ([5000] * 6 + [100], 100, 5000),
])
def test_the_shuffle_keeps_every_row_once_whatever_the_buffer(sizes, batch, buffer):
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chunks = [(np.arange(a, b, dtype=np.float32)[:, None], np.arange(a, b)) for a, b in zip(starts[:-1], starts[1:])]
    out = list(shuffled_batches(iter(chunks), batch, Capacity(buffer, limit=int(starts[-1])),
                                np.random.default_rng(1)))
    flat = np.concatenate([x[:, 0] for x, _ in out])
    assert sorted(flat.tolist()) == list(range(int(starts[-1])))
    assert np.array_equal(flat, np.concatenate([y for _, y in out]))
    assert all(len(x) == batch for x, _ in out[:-1])


def test_the_last_block_of_an_epoch_is_not_a_small_one():
    """Ranges of 5,000 rows then one of 100, a 5,000-row buffer: the last batches still mix
    rows of several ranges, not only the last range's."""
    sizes = [5000] * 6 + [100]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chunks = [(np.arange(a, b, dtype=np.float32)[:, None], np.arange(a, b)) for a, b in zip(starts[:-1], starts[1:])]
    out = list(shuffled_batches(iter(chunks), 100, Capacity(5000, limit=30_100), np.random.default_rng(2)))
    last = out[-1][1]
    assert len(np.unique(np.searchsorted(starts, last, side="right"))) > 1


def test_each_micro_batch_of_a_batch_is_a_draw_of_the_whole_block():
    """A pipeline cuts each batch into contiguous micro-batches: each must mix the block's
    ranges, not hold one range's rows."""
    chunks = [(np.full((1000, 1), k, np.float32), np.full(1000, k)) for k in range(4)]
    out = list(shuffled_batches(iter(chunks), 400, Capacity(4000), np.random.default_rng(3), parts=4))
    means = np.mean([[y[p * 100:(p + 1) * 100].mean() for p in range(4)] for _, y in out], axis=0)
    assert np.all(np.abs(means - 1.5) < 0.3)  # grouped by range, part p would hold range p: means 0, 1, 2, 3


def test_no_shuffle_buffer_keeps_file_order_and_cuts_batches_across_chunks():
    chunks = [(np.arange(i, i + 50, dtype=np.float32)[:, None], np.zeros(50)) for i in range(0, 350, 50)]
    out = list(shuffled_batches(iter(chunks), 16, 0, np.random.default_rng(0)))
    assert np.array_equal(np.concatenate([x[:, 0] for x, _ in out]), np.arange(350))
    assert [len(x) for x, _ in out] == [16] * 21 + [14]


def test_too_few_rows_for_one_step_is_a_clear_error(dataset):
    index, total = dataset
    assert reader(index, 0, 2, 10_000).steps == 0
    message = too_few_rows(total, 2, 10_000, 1)
    assert f"has {total} rows, fewer than one step of 2 replicas x train.batch_size=10000" in message
    assert "lower train.batch_size or train.ranks" in message


def test_prefetcher_reraises_producer_errors():
    def broken():
        yield 1
        raise RuntimeError("disk gone")
    with pytest.raises(RuntimeError, match="disk gone"):
        list(Prefetcher(broken(), 2))


def test_image_bytes_become_floats_in_0_1_or_stay_uint8_for_the_device():
    images = pa.array([bytes([0, 255, 51, 102]), bytes([1, 2, 3, 4])], pa.binary())
    m = feature_matrix(images, "features", "f")
    assert m.dtype == np.float32 and m.shape == (2, 4)
    assert m[0].tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])
    raw = feature_matrix(images, "features", "f", raw_pixels=True)
    assert raw.dtype == np.uint8 and raw[0].tolist() == [0, 255, 51, 102]
    with pytest.raises(ValueError, match="image 1 of the row group has 3 bytes, image 0 has 4"):
        feature_matrix(pa.array([bytes(4), bytes(3)], pa.binary()), "features", "f")


def test_augmentation_flips_and_crops_and_is_seeded_per_epoch_and_rank(dataset):
    from sparkdl.training.rank.augment import ImageAugment

    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 9)
    flipped = ImageAugment((1, 3, 3), flip=True)(x, np.random.default_rng(3))
    for row, original in zip(flipped.reshape(2, 3, 3), x.reshape(2, 3, 3)):
        assert np.array_equal(row, original) or np.array_equal(row, original[:, ::-1])
    cropped = ImageAugment((1, 3, 3), crop_padding=1)(x, np.random.default_rng(4)).reshape(2, 3, 3)
    for row, original in zip(cropped, x.reshape(2, 3, 3)):  # a shifted window of the zero-padded image
        padded = np.pad(original, 1)
        assert any(np.array_equal(row, padded[i:i + 3, j:j + 3]) for i in range(3) for j in range(3))
    # on the reader: the same (seed, epoch, rank) gives the same augmented batches, another epoch others
    index, _ = dataset
    noisy = lambda b, rng: b + rng.random(b.shape, dtype=np.float32)  # noqa: E731

    def first(e, transform=None):  # in file order (no shuffle buffer): the same rows every epoch
        return next(iter(reader(index, 0, 2, 16, seed=7, prefetch=2, transform=transform).epoch(e)))[0]
    plain = first(1)
    assert np.array_equal(first(1, noisy), first(1, noisy)) and not np.array_equal(first(1, noisy), plain)
    assert np.allclose(first(1, noisy), plain, atol=1.0) and not np.array_equal(first(1, noisy), first(2, noisy))


def test_an_index_column_travels_with_its_rows_through_the_shuffle(tmp_path):
    for i in range(4):
        ids = np.arange(i * 100, (i + 1) * 100)
        pq.write_table(pa.table({
            "features": pa.array([[float(v)] for v in ids], type=pa.list_(pa.float32())),
            "categories": pa.array([[int(v), int(v) % 7] for v in ids], type=pa.list_(pa.int32())),
            "label": pa.array(ids % 2, pa.int32())}), tmp_path / f"part-{i}.parquet")
    r = reader(DatasetIndex.from_footers(str(tmp_path)), 0, 2, 16, shuffle_buffer=50, seed=3, prefetch=2,
               indices="categories")
    seen = 0
    for x, idx, y in r.epoch(1):
        assert idx.dtype == np.int64 and idx.shape == (16, 2)
        assert np.array_equal(idx[:, 0], x[:, 0].astype(np.int64)) and np.array_equal(y, idx[:, 0] % 2)
        seen += len(y)
    assert seen == r.steps * 16 == 192
    assert sum(len(b[0]) for b in r.all_rows(64)) == 200


def test_a_pipelines_stages_read_their_part_of_the_same_rows_in_the_same_order(dataset):
    """The first stage reads the inputs, the last the labels, a stage between neither; the
    shuffle depends only on row counts, so each batch's inputs and labels still match."""
    index, total = dataset

    def batches(**reads):  # row_bytes: every column's, as the loop gives it from the spec
        return list(reader(index, 1, 2, 32, shuffle_buffer=200, seed=9, prefetch=2, row_bytes=16, **reads).epoch(3))

    whole, first, last, between = batches(), batches(labels=False), batches(inputs=False), \
        batches(inputs=False, labels=False)
    assert len(whole) == len(first) == len(last) == len(between) == total // 64
    for (x, y), (fx, fy), (lx, ly), (bx, by) in zip(whole, first, last, between):
        assert np.array_equal(fx, x) and np.array_equal(ly, y) and np.array_equal(y, x[:, 0].astype(np.int64) % 2)
        assert fy.shape == ly.shape == y.shape and not fy.any() and not by.any()  # labels not read: zeros
        assert lx.shape == bx.shape == (32, 0)  # inputs not read: as many rows, no columns
    with pytest.raises(ValueError, match="needs row_bytes"):
        reader(index, 0, 2, 32, shuffle_buffer=10, inputs=False)
    validation = reader(index, 0, 2, 32, inputs=False)
    assert sum(len(y) for x, y in validation.all_rows(64)) == total // 2
