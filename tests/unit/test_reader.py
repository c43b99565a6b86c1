"""The rank-side reader on real Parquet files (no Spark needed)."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkdl.training.rank.reader import (
    Prefetcher,
    RowGroups,
    ShardPlan,
    ShardReader,
    feature_matrix,
    shard_rows,
    shuffled_batches,
)


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
    return str(tmp_path), rid


def test_every_row_once_across_ranks_every_time(dataset):
    path, total = dataset
    plan = ShardPlan.for_dataset(path, 2, 10)
    for _ in range(20):  # Petastorm's thread pool dropped row groups at random; this must not
        seen = []
        for rank in (0, 1):
            reader = ShardReader(path, rank, 2, plan, 0, 0, 0)
            seen.extend(int(v) for x, _ in reader.all_rows(64) for v in x[:, 0])
        assert sorted(seen) == list(range(total))


def test_plan_is_petastorms_sorted_files_and_row_groups_round_robin(tmp_path):
    """Files sorted by path, '_'/'.' names skipped, each row group a piece, piece i to rank
    i % size: what make_batch_reader does (tests/compat checks it against Petastorm itself)."""
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
    groups = RowGroups.of(f"file://{tmp_path}")  # URIs and plain paths alike
    assert [(g.path.rsplit("/", 1)[1], g.index) for g in groups.groups] == [
        ("part-a.parquet", 0), ("part-a.parquet", 1), ("part-b.parquet", 0), ("part-b.parquet", 1),
        ("part-c.parquet", 0)]
    assert shard_rows(str(tmp_path), 2) == [15, 10]
    plan = ShardPlan([15, 10], 1, 1)
    firsts = [sorted({int(x[0, 0]) // 100 * 100 for x, _ in ShardReader(str(tmp_path), r, 2, plan, 0, 0, 0)
                      .all_rows(5)}) for r in (0, 1)]
    assert firsts == [[0, 200, 400], [100, 300]]


def test_missing_or_broken_dataset_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RowGroups.of(str(tmp_path / "nope"))
    (tmp_path / "_SUCCESS").write_text("")
    with pytest.raises(FileNotFoundError, match="no data files"):
        RowGroups.of(str(tmp_path))
    (tmp_path / "part-0.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="part-0.parquet in dataset .* not a readable Parquet file"):
        RowGroups.of(str(tmp_path))


def test_batches_are_contiguous_writable_float32_and_int64(dataset):
    path, _ = dataset
    plan = ShardPlan(shard_rows(path, 3), 1, 1)
    for rank in range(3):
        for bx, by in ShardReader(path, rank, 3, plan, 0, 0, 0).all_rows(10):  # what torch.from_numpy gets
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
    path, _ = dataset
    plan = ShardPlan.for_dataset(path, 2, 32, multiple_of=2)
    assert plan.steps == (min(plan.rows_per_shard) // 32) // 2 * 2
    def epoch(rank, e, seed=5):
        reader = ShardReader(path, rank, 2, plan, 200, seed, 2)
        return [x[:, 0].copy() for x, _ in reader.epoch(e)]
    a, b = epoch(0, 1), epoch(1, 1)
    assert all(x.flags.writeable for x in a)  # torch.from_numpy warns on Arrow's read-only buffers
    assert len(a) == len(b) == plan.steps and all(len(x) == 32 for x in a + b)
    assert all(np.array_equal(x, y) for x, y in zip(a, epoch(0, 1)))  # same seed, same epoch: same order
    assert not all(np.array_equal(x, y) for x, y in zip(a, epoch(0, 2)))  # next epoch: new order
    flat = np.concatenate(a)
    assert len(set(flat.tolist())) == len(flat)  # no row twice in an epoch
    assert np.any(np.diff(flat) < 0)  # shuffled, not file order


@pytest.mark.parametrize("chunk", [50, 200])  # smaller than the buffer (slot draws), larger (one permutation)
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


def test_no_shuffle_buffer_keeps_file_order_and_cuts_batches_across_chunks():
    chunks = [(np.arange(i, i + 50, dtype=np.float32)[:, None], np.zeros(50)) for i in range(0, 350, 50)]
    out = list(shuffled_batches(iter(chunks), 16, 0, np.random.default_rng(0)))
    assert np.array_equal(np.concatenate([x[:, 0] for x, _ in out]), np.arange(350))
    assert [len(x) for x, _ in out] == [16] * 21 + [14]


def test_too_few_rows_for_one_step_is_a_clear_error(dataset):
    path, _ = dataset
    with pytest.raises(ValueError, match="fewer than one step"):
        ShardPlan.for_dataset(path, 2, 10_000)


def test_prefetcher_reraises_producer_errors():
    def broken():
        yield 1
        raise RuntimeError("disk gone")
    with pytest.raises(RuntimeError, match="disk gone"):
        list(Prefetcher(broken(), 2))


def test_image_bytes_become_floats_in_0_1():
    images = pa.array([bytes([0, 255, 51, 102]), bytes([1, 2, 3, 4])], pa.binary())
    m = feature_matrix(images, "features", "f")
    assert m.dtype == np.float32 and m.shape == (2, 4)
    assert m[0].tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])
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
    path, _ = dataset
    plan = ShardPlan.for_dataset(path, 2, 16)
    noisy = lambda b, rng: b + rng.random(b.shape, dtype=np.float32)  # noqa: E731
    def first(e):
        return next(iter(ShardReader(path, 0, 2, plan, 0, 7, 2, transform=noisy).epoch(e)))[0]
    plain = next(iter(ShardReader(path, 0, 2, plan, 0, 7, 2).epoch(1)))[0]
    assert np.array_equal(first(1), first(1)) and not np.array_equal(first(1), plain)
    assert np.allclose(first(1), plain, atol=1.0) and not np.array_equal(first(1), first(2))


def test_an_index_column_travels_with_its_rows_through_the_shuffle(tmp_path):
    for i in range(4):
        ids = np.arange(i * 100, (i + 1) * 100)
        pq.write_table(pa.table({
            "features": pa.array([[float(v)] for v in ids], type=pa.list_(pa.float32())),
            "categories": pa.array([[int(v), int(v) % 7] for v in ids], type=pa.list_(pa.int32())),
            "label": pa.array(ids % 2, pa.int32())}), tmp_path / f"part-{i}.parquet")
    plan = ShardPlan.for_dataset(str(tmp_path), 2, 16)
    reader = ShardReader(str(tmp_path), 0, 2, plan, 50, 3, 2, indices="categories")
    seen = 0
    for x, idx, y in reader.epoch(1):
        assert idx.dtype == np.int64 and idx.shape == (16, 2)
        assert np.array_equal(idx[:, 0], x[:, 0].astype(np.int64)) and np.array_equal(y, idx[:, 0] % 2)
        seen += len(y)
    assert seen == plan.steps * 16
    assert sum(len(b[0]) for b in reader.all_rows(64)) == plan.rows_per_shard[0]


def test_a_pipelines_stages_read_their_part_of_the_same_rows_in_the_same_order(dataset):
    """The first stage reads the inputs, the last the labels, a stage between neither; the
    shuffle depends only on row counts, so each batch's inputs and labels still match."""
    path, _ = dataset
    plan = ShardPlan.for_dataset(path, 2, 32)

    def batches(**reads):
        return list(ShardReader(path, 1, 2, plan, 200, 9, 2, **reads).epoch(3))

    whole, first, last, between = batches(), batches(labels=False), batches(inputs=False), \
        batches(inputs=False, labels=False)
    assert len(whole) == len(first) == len(last) == len(between) == plan.steps
    for (x, y), (fx, fy), (lx, ly), (bx, by) in zip(whole, first, last, between):
        assert np.array_equal(fx, x) and np.array_equal(ly, y) and np.array_equal(y, x[:, 0].astype(np.int64) % 2)
        assert fy.shape == ly.shape == y.shape and not fy.any() and not by.any()  # labels not read: zeros
        assert lx.shape == bx.shape == (32, 0)  # inputs not read: as many rows, no columns
    validation = ShardReader(path, 0, 2, plan, 0, 0, 0, inputs=False)
    assert sum(len(y) for x, y in validation.all_rows(64)) == plan.rows_per_shard[0]
