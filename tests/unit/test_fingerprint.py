"""A job's input as a listing: what changes it (a new file, a rewritten one) and what does
not (hidden and underscore files, another read of the same files)."""
import os

from sparkdl.core.config import DataConfig
from sparkdl.preparation.fingerprint import digest, input_listing


def test_the_listing_changes_with_new_or_rewritten_files_only(tmp_path):
    landing = tmp_path / "landing"
    (landing / "2026-12-01").mkdir(parents=True)
    (landing / "2026-12-01" / "part-0.csv").write_text("a,b\n1,2\n")
    data = DataConfig(train=str(landing), test=None)
    first = digest(input_listing(None, data))
    assert digest(input_listing(None, data)) == first
    (landing / "_SUCCESS").write_text("")
    (landing / ".part-0.csv.crc").write_text("x")
    (landing / "_temporary").mkdir()
    (landing / "_temporary" / "part-9.csv").write_text("half written")
    assert digest(input_listing(None, data)) == first  # what Spark's readers skip is skipped here
    (landing / "2026-12-02").mkdir()
    (landing / "2026-12-02" / "part-0.csv").write_text("a,b\n3,4\n")
    second = digest(input_listing(None, data))
    assert second != first
    part = landing / "2026-12-02" / "part-0.csv"
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 1_000_000))
    assert digest(input_listing(None, data)) != second


def test_sources_that_cannot_be_listed_have_no_listing(tmp_path):
    assert input_listing(None, DataConfig(train="t", format="jdbc", options={"url": "jdbc:postgresql://db/x", "dbtable": "t"})) is None
    assert input_listing(None, DataConfig(train=str(tmp_path / "missing"))) is None
    assert input_listing(None, DataConfig(format="synthetic", options={"rows": "100"})) == {"train": "generated"}
