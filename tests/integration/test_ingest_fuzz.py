"""Property: whatever lines a CSV or JSON file holds, ingest never crashes, counts every
record once (input = accepted + quarantined), gives every quarantined row a reason, and
lets no NaN or infinite number through."""
import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkdl.core.config.loading import parse_config
from sparkdl.preparation.ingest import ingest, release

CASES = {"csv": 0, "json": 0, "lines": 0}
SCHEMA = {"columns": [{"name": "x", "type": "double"}, {"name": "n", "type": "int"},
                      {"name": "c", "type": "string"}, {"name": "y", "type": "string"}],
          "numeric": ["x", "n"], "categorical": ["c"], "label": "y", "classes": ["a", "b"]}
# Anything but a line break (a record is a line); quotes, separators and any unicode welcome.
chars = st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))
field = st.one_of(st.text(chars, max_size=12), st.sampled_from(["", '"', '""', ",", '"a,b"', "?", "NaN", "inf",
                                                                 "-Infinity", "1e400", "  3.5 ", "ä"]),
                  st.floats(allow_nan=True).map(repr), st.integers(-2**40, 2**40).map(str),
                  st.builds(lambda n: "x" * n, st.integers(1000, 20000)))  # huge fields
label = st.sampled_from(["a", "b", "c", "", " a ", "?"])
csv_line = st.one_of(st.builds(lambda *f: ",".join(f), field, field, field, label),  # four fields
                     st.lists(field, max_size=6).map(",".join),  # any number of fields
                     st.text(chars, max_size=60))
json_value = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(), st.text(chars, max_size=8))
json_line = st.one_of(
    st.builds(lambda x, n, c, y: json.dumps({"x": x, "n": n, "c": c, "y": y}), json_value, json_value, json_value,
              st.one_of(label, json_value)),
    st.builds(lambda x: '{"x": %s, "n": 1, "c": "k", "y": "a"}' % x, st.sampled_from(["NaN", "Infinity", "1e400",
                                                                                        "-1e999", "2.5"])),
    st.dictionaries(st.text(chars, max_size=3), json_value, max_size=4).map(json.dumps),
    st.text(chars, max_size=40))


def _ingest(spark, fmt: str, lines):
    cfg = parse_config({"data": {"train": "unused", "format": fmt, "max_bad_fraction": 1.0}, "schema": SCHEMA})
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"data.{fmt}"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        accepted, report = ingest(spark, cfg.data, cfg.schema, str(src), str(Path(tmp) / "q"))
        try:
            expected = sum(1 for line in lines if line.strip(" "))  # blank lines are no records
            assert report.input == expected == report.accepted + report.quarantined
            assert accepted.count() == report.accepted
            assert accepted.where("isnan(x) OR abs(x) = double('inf')").count() == 0
            assert set(accepted.select("y").distinct().toPandas()["y"]) <= {"a", "b"}
            if report.quarantined:
                bad = pq.read_table(Path(tmp) / "q").to_pylist()
                assert len(bad) == report.quarantined and all(r["reason"] for r in bad)
        finally:
            release(accepted)
    CASES[fmt] += 1
    CASES["lines"] += len(lines)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(csv_line, min_size=1, max_size=40))
def test_any_csv_lines_are_counted_once_and_never_crash(spark_local, lines):
    _ingest(spark_local, "csv", lines)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(json_line, min_size=1, max_size=40))
def test_any_json_lines_are_counted_once_and_never_crash(spark_local, lines):
    _ingest(spark_local, "json", lines)


def test_zz_case_counts(capsys):
    with capsys.disabled():
        print(f"\ningest property cases: {CASES}")
