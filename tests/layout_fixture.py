"""The sparkdl 0.2 run in tests/fixtures/layout-0.2, copied where a test can write."""
import shutil
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "layout-0.2"
WRITTEN_AT = "/tmp/fixture/lake"
RUN_ID = next(p.name for p in (FIXTURE / "lake" / "runs").iterdir())


def copy_lake(to: Path) -> Path:
    """The fixture's lake at ``to``, its recorded paths pointing there."""
    shutil.copytree(FIXTURE / "lake", to)
    for path in to.rglob("*"):
        if path.suffix in (".json", ".yaml") and WRITTEN_AT in path.read_text():
            path.write_text(path.read_text().replace(WRITTEN_AT, str(to)))
    return to
