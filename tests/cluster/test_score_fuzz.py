"""Property: whatever rows a file to score holds, scoring never crashes, publishes
rows in = scored + quarantined, and writes only finite probabilities."""
import gzip
import math
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkdl.core.columns import PROBABILITY
from sparkdl.core.errors import BadDataError
from sparkdl.preparation.examples import resolve_path
from sparkdl.serving.score import score

CASES = {"files": 0, "rows": 0, "refused_as_a_flood": 0}
chars = st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))
fuzz_field = st.one_of(st.text(chars, max_size=10), st.sampled_from(["", "?", '"', '"a,b"', "NaN", "1e400", "-inf",
                                                                     "Atlantis", "  7 "]),
                       st.floats(allow_nan=True).map(repr), st.integers(-10**9, 10**9).map(str))


def _adult_lines():
    lines = gzip.open(resolve_path("embedded:adult/adult.test.csv.gz"), "rt").read().splitlines()
    return lines[0], [ln for ln in lines[1:200] if ln.strip()]


HEADER, ROWS = _adult_lines()


@st.composite
def adult_like_line(draw):
    kind = draw(st.sampled_from(["row", "mutated", "fields", "text"]))
    if kind == "text":
        return draw(st.text(chars, min_size=1, max_size=80))
    fields = draw(st.sampled_from(ROWS)).split(",")
    if kind == "mutated":
        for i in draw(st.lists(st.integers(0, len(fields) - 1), max_size=4)):
            fields[i] = draw(fuzz_field)
    elif kind == "fields":
        fields = fields[:draw(st.integers(0, len(fields) + 2))] + draw(st.lists(fuzz_field, max_size=2))
    return ",".join(fields)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(adult_like_line(), min_size=1, max_size=30))
def test_any_rows_score_or_are_quarantined_never_crash(spark_cluster, adult_run, lines):
    lines = [ln for ln in lines if ln.strip(" ") and ln != HEADER]
    if not lines:
        return
    # Clean rows around them keep the bad ones under the run's data.max_bad_fraction (1%), so
    # the scoring path runs; above it scoring refuses the file, which the except clause checks.
    padding = [ROWS[i % len(ROWS)] for i in range(100 * len(lines))]
    lines = padding[:len(padding) // 2] + lines + padding[len(padding) // 2:]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.csv"
        src.write_text("\n".join([HEADER] + lines) + "\n", encoding="utf-8")
        try:
            report = score(spark_cluster, adult_run.path, str(src), str(Path(tmp) / "out"))
        except BadDataError as e:  # more bad rows than data.max_bad_fraction: named, counted, nothing published
            assert f"of {len(lines)} rows" in str(e) and "Example from" in str(e)
            assert not (Path(tmp) / "out").exists() and not (Path(tmp) / "out.quarantine").exists()
            CASES["refused_as_a_flood"] += 1
            return
        assert report.input == len(lines) == report.scored + report.quarantined
        out = pq.read_table(Path(tmp) / "out").to_pylist()
        assert len(out) == report.scored
        assert all(r["prediction"] in ("<=50K", ">50K") and math.isfinite(r[PROBABILITY]) for r in out)
        if report.quarantined:
            bad = pq.read_table(Path(tmp) / "out.quarantine").to_pylist()
            assert len(bad) == report.quarantined and all(r["reason"] for r in bad)
        CASES["files"] += 1
        CASES["rows"] += len(lines)


def test_zz_case_counts(capsys):
    with capsys.disabled():
        print(f"\nscore property cases: {CASES}")
