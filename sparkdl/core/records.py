"""The base of the JSON records sparkdl keeps in the lake (a dataset's ``manifest.json``,
a run's ``metrics.json``): a version in every file, older versions upgraded on read,
unknown fields ignored, written atomically."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Dict, Type, TypeVar

from sparkdl.core.lake import write_json_atomic

R = TypeVar("R", bound="VersionedRecord")


class VersionedRecord:
    """Mixed into a dataclass with a ``version`` field defaulting to ``VERSION``."""

    VERSION: ClassVar[int] = 1
    #: What the record is, for error messages.
    KIND: ClassVar[str] = "record"
    #: How to make one readable again when this version cannot read it.
    REWRITE_HINT: ClassVar[str] = "write it again with this sparkdl"

    @classmethod
    def upgrade(cls, raw: Dict[str, Any]) -> Dict[str, Any]:
        """An older version's fields in this version's layout (the default: none is older)."""
        return raw

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: Type[R], raw: Dict[str, Any]) -> R:
        raw = cls.upgrade(dict(raw))
        if raw.get("version") != cls.VERSION:
            raise ValueError(f"{cls.KIND} version {raw.get('version')!r} is not {cls.VERSION}: {cls.REWRITE_HINT}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def save(self, path: "Path | str") -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls: Type[R], path: "Path | str") -> R:
        return cls.from_dict(json.loads(Path(path).read_text()))
