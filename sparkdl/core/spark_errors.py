"""What a Python error raised inside a Spark task looks like on the driver: a Py4J
exception whose text holds the worker's traceback among JVM stack frames. These helpers
dig the Python part out, so users see their own error, not the wall around it."""
from __future__ import annotations

import re
from typing import Optional

#: The Python traceback, up to the first JVM frame, the error's SQLSTATE, or (Spark Connect)
#: the server's "JVM stacktrace:" section.
_PY_TRACE = re.compile(r"(Traceback \(most recent call last\):.*?)(?:\n\tat |\n\s*SQLSTATE: |\n\s*JVM stacktrace:|\Z)",
                       re.S)


def python_traceback_tail(text: str, lines: int = 25) -> Optional[str]:
    """The last ``lines`` lines of the Python traceback in a Spark failure's text, or None."""
    m = _PY_TRACE.search(text)
    if not m:
        return None
    return "\n".join(m.group(1).rstrip().splitlines()[-lines:])


def python_exception_line(exc: BaseException) -> Optional[str]:
    """``ValueError: ...``, the Python exception a Spark task raised, or None."""
    tail = python_traceback_tail(str(exc))
    return tail.splitlines()[-1] if tail else None
