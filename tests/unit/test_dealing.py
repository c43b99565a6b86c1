"""How rows are dealt to ranks, as properties over generated layouts: every rank the same
steps, no row twice in an epoch, fewer than ``world x batch`` rows left out, a rank's rows
changing between epochs, and validation covering every row once."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkdl.core.parquet_index import DataFile, DatasetIndex
from sparkdl.training.rank.dealing import steps_per_epoch, training_deal, validation_deal

#: A data file: up to 4 row groups of 0 (an empty file or group) to 300,000 rows.
files = st.lists(st.integers(0, 300_000), min_size=0, max_size=4)
layouts = st.lists(files, min_size=1, max_size=200).map(
    lambda fs: DatasetIndex("/d", tuple(DataFile(f"part-{i:05d}.parquet", tuple(g)) for i, g in enumerate(fs))))


def firsts(index: DatasetIndex):
    """Each row group's first row, in file order: (file, group) -> global row number."""
    out, n = {}, 0
    for i, f in enumerate(index.files):
        for g, rows in enumerate(f.row_groups):
            out[(i, g)] = n
            n += rows
    return out


def spans(index: DatasetIndex, ranges, first=None):
    """A rank's rows as merged, sorted [start, end) spans of global row numbers."""
    first = first or firsts(index)
    raw = sorted((first[(r.file, r.group)] + r.start, first[(r.file, r.group)] + r.start + r.length) for r in ranges)
    merged = []
    for lo, hi in raw:
        if merged and lo <= merged[-1][1]:
            assert lo == merged[-1][1], f"a row dealt twice to one rank: {merged[-1]} and {(lo, hi)}"
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


def row_ids(index: DatasetIndex, ranges) -> np.ndarray:
    """Global row numbers of a rank's ranges (small layouts only)."""
    return np.concatenate([np.arange(lo, hi) for lo, hi in spans(index, ranges)] or [np.zeros(0, np.int64)])


@settings(max_examples=150, deadline=None)
@given(index=layouts, world=st.integers(1, 8), batch=st.integers(1, 1024), seed=st.integers(0, 2**31),
       k=st.sampled_from([1, 1, 1, 3]))
def test_every_rank_gets_equal_rows_and_no_row_twice_in_an_epoch(index, world, batch, seed, k):
    total = index.rows
    first = firsts(index)
    steps = steps_per_epoch(total, world, batch, k)
    seen_per_epoch = []
    for epoch in (1, 2, 3):
        deal = training_deal(index, world, batch, epoch, seed, multiple_of=k)
        assert deal.total == total
        assert deal.rows_per_rank == [steps * batch] * world  # equal steps, every rank
        for mine in deal.ranges:  # every range lies inside its row group
            for r in mine:
                assert r.length > 0 and 0 <= r.start and r.start + r.length <= index.files[r.file].row_groups[r.group]
        mine = [spans(index, ranges, first) for ranges in deal.ranges]
        everyone = spans(index, [r for ranges in deal.ranges for r in ranges], first)  # no row twice in an epoch
        assert sum(hi - lo for lo, hi in everyone) == world * steps * batch
        assert 0 <= deal.left_out < world * batch * k  # at most world x batch x k - 1 rows left out
        assert deal.coverage == pytest.approx(world * steps * batch / total if total else 0.0)
        seen_per_epoch.append(mine)
        assert deal == training_deal(index, world, batch, epoch, seed, multiple_of=k)  # the same on every rank
    if steps and total >= 1000 and (world > 1 or steps * batch < total):  # (else every epoch deals them all)
        for rank in range(world):  # over three epochs, a rank's rows change
            assert len({seen[rank] for seen in seen_per_epoch}) > 1


@settings(max_examples=150, deadline=None)
@given(index=layouts, world=st.integers(1, 8))
def test_validation_deals_every_row_once_in_near_equal_pieces(index, world):
    deal = validation_deal(index, world)
    everyone = spans(index, [r for ranges in deal.ranges for r in ranges])
    assert everyone == (((0, index.rows),) if index.rows else ())
    sizes = deal.rows_per_rank
    assert max(sizes) - min(sizes) <= 1 and deal.left_out == 0


def test_spark_style_layout_of_large_files_and_small_remainders_is_covered():
    """The layout that left 87 % of the rows out when whole row groups were dealt i % world:
    16 files of 262,144 rows, each followed by its ~19,000-row remainder (c000, c001)."""
    files = []
    for i in range(16):
        files += [DataFile(f"part-{i:05d}-c000.parquet", (262_144,)), DataFile(f"part-{i:05d}-c001.parquet", (19_000,))]
    index = DatasetIndex("/d", tuple(files))
    for world in (2, 4):
        deal = training_deal(index, world, 256, 1, 0)
        assert deal.left_out < world * 256 and len(set(deal.rows_per_rank)) == 1
        assert deal.coverage > 0.9997


def test_without_shuffle_the_pieces_are_in_file_order_and_the_same_every_epoch():
    index = DatasetIndex("/d", (DataFile("a", (10, 5)), DataFile("b", (7,))))
    one = training_deal(index, 2, 4, 1, 0, shuffle=False)
    assert one == training_deal(index, 2, 4, 2, 0, shuffle=False)
    assert [row_ids(index, r).tolist() for r in one.ranges] == [list(range(0, 8)), list(range(8, 16))]
    assert one.left_out == 6


def test_steps_round_down_to_the_accumulated_passes():
    assert steps_per_epoch(10_000, 2, 100, 1) == 50
    assert steps_per_epoch(10_000, 2, 100, 3) == 48
    assert steps_per_epoch(199, 2, 100, 1) == 0


def test_row_groups_are_equal_and_capped_in_rows_and_bytes():
    from sparkdl.core.config import MaterializeConfig
    from sparkdl.preparation.materialize import row_cap, row_group_rows

    m = MaterializeConfig()  # 4 x 4 groups, 262,144 rows, 64 MiB
    assert row_group_rows(1_000_000, m, 300) == 62_500  # the split in 16 equal groups
    assert row_group_rows(4_500_455, m, 100) == 262_144  # more groups where 16 would pass the row cap
    assert row_cap(m, 300) == 223_696 and row_group_rows(4_500_455, m, 300) == 223_696  # the byte cap
    assert row_group_rows(20_000, m, 3 * 224 * 224 + 16) == 445  # 224 x 224 x 3 images: 64 MiB groups
    assert row_group_rows(3, m, 300) == 1


def test_a_validation_split_smaller_than_the_replicas_is_refused_before_the_launch(tmp_path):
    from sparkdl.core.config import TrainConfig
    from sparkdl.core.errors import ConfigError
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.training.spec import dataset_data

    index = {"train": {"files": [["part-0.parquet", [4000]]]}, "validation": {"files": [["part-0.parquet", [3]]]}}
    manifest = Manifest(name="j", dataset_id="d", created="now", rows={}, splits={"train": 4000, "validation": 3},
                        row_groups={"train": 1, "validation": 1}, feature_width=1, feature_names=["x"], label={},
                        schema_hash="h", paths={"train": str(tmp_path / "train"),
                                                "validation": str(tmp_path / "validation")}, index=index)
    train, validation = dataset_data(TrainConfig(batch_size=100), manifest, 3)
    assert (train.rows, validation.rows) == (4000, 3)
    with pytest.raises(ConfigError, match="validation split has 3 rows, fewer than the 4 data-parallel replicas"):
        dataset_data(TrainConfig(batch_size=100), manifest, 4)
    with pytest.raises(ConfigError, match="train.batch_size.*4000 rows, fewer than one step of 3 replicas"):
        dataset_data(TrainConfig(batch_size=2000), manifest, 3)


def test_ranks_that_computed_different_deals_fail_the_run():
    from sparkdl.training.rank.dealing import GroupTable, training_piece
    from sparkdl.training.rank.loop import check_same_deal

    index = DatasetIndex("/d", tuple(DataFile(f"p{i}", (100,)) for i in range(8)))
    table = GroupTable(index)
    digests = [training_piece(table, 2, 10, 3, 0, rank)[1] for rank in (0, 1)]
    check_same_deal([float(d) for d in digests], 3)  # the same deal on both ranks
    other = training_piece(table, 2, 10, 4, 0, 0)[1]  # another epoch's order, as another numpy might draw it
    with pytest.raises(RuntimeError, match="epoch 3: the ranks computed different deals"):
        check_same_deal([float(digests[0]), float(other)], 3)
