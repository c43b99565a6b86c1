"""Image labels from a joined table of path → label instead of folder names: every file
gets its table entry; a file the table does not list, or lists with two labels, is
quarantined with its reason; a table without the columns is refused by name."""
import pytest

from sparkdl.core.config.loading import parse_config
from sparkdl.core.errors import ConfigError
from sparkdl.preparation import synthetic
from sparkdl.preparation.ingest import ingest


def _config(folder, labels):
    return parse_config({
        "data": {"format": "images", "train": str(folder), "max_bad_fraction": 1.0,
                 "image": {"mode": "L", "height": 8, "width": 8, "labels": str(labels)}},
        "schema": {"columns": [{"name": "file", "type": "string"}, {"name": "kind", "type": "string"}],
                   "label": "kind", "classes": ["cat", "dog"], "keys": ["file"]},
        "model": {"kind": "cnn", "image_shape": [1, 8, 8]}})


def test_labels_come_from_the_table_and_unlisted_or_ambiguous_files_are_quarantined(spark_local, tmp_path):
    folder = tmp_path / "images"
    synthetic.write_image_folder(str(folder), 30, classes=2, shape=(1, 8, 8), seed=1)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    # labels that disagree with the folder names, so only the table can give them
    rows = [f"{f},{'dog' if f.startswith('0/') else 'cat'}" for f in files]
    unlisted, ambiguous = files[0], files[1]
    rows = [r for r in rows if not r.startswith(unlisted + ",")]
    rows += [f"./{ambiguous},cat", f"{ambiguous},dog", "gone/never.png,cat"]  # two labels; a path with no file
    table = tmp_path / "labels.csv"
    table.write_text("file,kind\n" + "\n".join(rows) + "\n")
    cfg = _config(folder, table)
    accepted, report = ingest(spark_local, cfg.data, cfg.schema, cfg.data.train, str(tmp_path / "quarantine"))
    got = {r["file"].split("/images/", 1)[1]: r["kind"] for r in accepted.select("file", "kind").collect()}
    assert (report.input, report.accepted, report.quarantined) == (30, 28, 2)
    assert got == {f: ("dog" if f.startswith("0/") else "cat") for f in files if f not in (unlisted, ambiguous)}
    quarantined = spark_local.read.parquet(report.quarantine_path).collect()
    reasons = " | ".join(r["reason"] for r in quarantined)
    assert f"no entry for '{unlisted}'" in reasons and f"'{ambiguous}' has 2 different labels" in reasons


def test_a_labels_table_without_the_columns_is_refused_by_name(spark_local, tmp_path):
    folder = tmp_path / "images"
    synthetic.write_image_folder(str(folder), 4, classes=2, shape=(1, 8, 8))
    table = tmp_path / "labels.csv"
    table.write_text("filename,label\n0/0000000.png,cat\n")
    cfg = _config(folder, table)
    with pytest.raises(ConfigError, match=r"data.image.labels.*needs the path column 'file'.*label column 'kind'"):
        ingest(spark_local, cfg.data, cfg.schema, cfg.data.train, str(tmp_path / "quarantine"))
    cfg = _config(folder, tmp_path / "nowhere.csv")
    with pytest.raises(ConfigError, match=r"data.image.labels.*nowhere.csv does not exist"):
        ingest(spark_local, cfg.data, cfg.schema, cfg.data.train, str(tmp_path / "quarantine"))
