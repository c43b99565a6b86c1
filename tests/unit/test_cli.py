import subprocess
import sys

import pytest

from sparkdl.cli import main


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "sparkdl.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("prepare", "train", "run", "score", "runs"):
        assert cmd in out.stdout


def test_console_script_is_installed():
    from pathlib import Path

    script = Path(sys.executable).parent / "sparkdl"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "prepare" in out.stdout


def test_missing_arguments_exit_2():
    with pytest.raises(SystemExit) as e:
        main(["train"])
    assert e.value.code == 2
