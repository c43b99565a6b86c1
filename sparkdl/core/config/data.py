"""What the job reads: the ``data`` and ``schema`` sections (columns, their types and
roles, images)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple

from sparkdl.core.config.checks import NAME_RE, check
from sparkdl.core.tables import name_problem
from sparkdl.core.task_metrics import REGRESSION
from sparkdl.core.types import BAGS, DECLARED, VECTORS

#: The shapes of generated data (``data.format: synthetic``, ``data.options.shape``).
SHAPES = ("adult", "clicklog")


#: A bag's slots when ``schema.columns[].max_items`` is not set.
DEFAULT_ITEMS = 64
#: The widest vector taken as dense numbers: a wider one (hashed text) belongs in ``schema.sparse``.
MAX_DENSE_SIZE = 65_536


@dataclass(frozen=True)
class ColumnSpec:
    """One input column and its declared type."""

    #: The column's name in the source (its header, key or field).
    name: str
    #: How its values parse; a value that does not is quarantined with the reason. ``vector``
    #: is a Spark ML vector (dense or sparse); ``array<...>`` an array of numbers or of ids.
    type: Literal[DECLARED]
    #: ``vector``, ``array<float>``, ``array<double>``: the number of values every row holds
    #: (another length is quarantined).
    size: Optional[int] = None
    #: A bag (``array<string|int|long>``) or a sparse vector: the most items (non-zero values)
    #: a row may hold; a longer one is quarantined. Batches keep this many slots per row.
    max_items: Optional[int] = None

    def __post_init__(self):
        where = f"schema.columns.{self.name}"
        if self.type in VECTORS:
            check(self.size is not None and self.size >= 1, f"{where}.size",
                  f"a {self.type} column declares its length: set size (values per row) >= 1")
        else:
            check(self.size is None, f"{where}.size", f"size is for vector and array<float|double> columns, "
                                                      f"not {self.type}")
        check(self.max_items is None or self.max_items >= 1, f"{where}.max_items", "must be >= 1")
        check(self.max_items is None or self.type in BAGS or self.type == "vector", f"{where}.max_items",
              f"max_items is for bags (array<string|int|long>) and sparse vectors, not {self.type}")

    @property
    def items(self) -> Optional[int]:
        """The most items a row holds: ``max_items``, for a bag :data:`DEFAULT_ITEMS` when unset."""
        return self.max_items or (DEFAULT_ITEMS if self.type in BAGS else None)


@dataclass(frozen=True)
class SchemaConfig:
    """Declared schema of the raw data: never inferred."""

    #: Every column of the source, in order, with its type: never inferred.
    columns: List[ColumnSpec]
    #: The column the model predicts.
    label: str
    #: ``classification``: the label is one of ``classes``; ``regression``: a number.
    task: Literal["classification", "regression"] = "classification"
    #: Classification: every label value, in the order the model's outputs take; a row with
    #: another label is quarantined.
    classes: List[str] = field(default_factory=list)
    #: Columns encoded as categories (one-hot or embeddings: ``features``).
    categorical: List[str] = field(default_factory=list)
    #: Columns used as numbers (imputed and scaled: ``features``).
    numeric: List[str] = field(default_factory=list)
    #: Columns of numbers appended to the features, each value scaled as numeric columns
    #: are (``features.scaler``): ``vector`` and ``array<float|double>`` columns, e.g.
    #: embeddings computed elsewhere. A missing one is quarantined (no imputation).
    vectors: List[str] = field(default_factory=list)
    #: ``vector`` columns kept sparse (``HashingTF``, ``CountVectorizer`` output): their
    #: non-zero entries, at most ``max_items``, reach the network as (index, value) pairs
    #: learned with a weighted ``EmbeddingBag``; a missing one is all zeros.
    sparse: List[str] = field(default_factory=list)
    #: ``array<string|int|long>`` columns as bags of ids (the items a user viewed), at most
    #: ``max_items`` each, learned with an ``EmbeddingBag`` (their mean); indexed or hashed
    #: as embedded categoricals are (``features.embedding``). A missing one is an empty bag.
    bags: List[str] = field(default_factory=list)
    #: Columns that identify a row: kept beside the predictions when scoring.
    keys: List[str] = field(default_factory=list)
    #: A boolean column marking the rows that validate each epoch (true) and those that
    #: train (false), instead of ``materialize.validation_fraction``'s seeded split. A row
    #: where it is missing is quarantined; scoring does not read it.
    validation_indicator: Optional[str] = None

    def __post_init__(self):
        names = [c.name for c in self.columns]
        check(len(names) > 0, "schema.columns", "declare at least one column")
        for i, n in enumerate(names):
            check(bool(NAME_RE.match(n)), f"schema.columns[{i}].name",
                   f"'{n}' is not a usable column name (letters, digits, '_', '-', '.')")
        dup = sorted({n for n in names if names.count(n) > 1})
        check(not dup, "schema.columns", f"duplicate column names {dup}")
        types = {c.name: c.type for c in self.columns}
        roles = (("categorical", self.categorical), ("numeric", self.numeric), ("vectors", self.vectors),
                 ("sparse", self.sparse), ("bags", self.bags), ("keys", self.keys))
        for key, group in roles:
            for i, n in enumerate(group):
                check(n in types, f"schema.{key}[{i}]", f"'{n}' is not among schema.columns {names}")
        for key, group, allowed in (("vectors", self.vectors, VECTORS), ("sparse", self.sparse, {"vector"}),
                                    ("bags", self.bags, BAGS)):
            for i, n in enumerate(group):
                check(types[n] in allowed, f"schema.{key}[{i}]",
                      f"'{n}' is declared as {types[n]}; schema.{key} takes {' or '.join(sorted(allowed))} columns")
        for key, group in (("categorical", self.categorical), ("keys", self.keys)):
            for i, n in enumerate(group):
                check(types[n] in DECLARED[:6], f"schema.{key}[{i}]",
                      f"'{n}' is declared as {types[n]}, which holds many values: use schema.vectors, "
                      "schema.sparse or schema.bags")
        for i, n in enumerate(self.vectors):
            size = self.column(n).size
            check(size <= MAX_DENSE_SIZE, f"schema.vectors[{i}]",
                  f"'{n}' holds {size} values, more than {MAX_DENSE_SIZE} dense numbers a row (each a float in "
                  "every batch and a column of the first layer): if it is mostly zeros (HashingTF, "
                  "CountVectorizer), move it to schema.sparse with max_items")
        for n in self.sparse:
            check(self.column(n).max_items is not None, f"schema.columns.{n}.max_items",
                  f"sparse vector '{n}' declares the most non-zero values a row holds: set max_items")
        for i, n in enumerate(self.numeric):
            check(types[n] in ("int", "long", "double", "float", "boolean"), f"schema.numeric[{i}]",
                   f"'{n}' is declared as {types[n]}; numeric features need int, long, double, float or boolean")
        featured = list(self.numeric) + list(self.categorical) + list(self.vectors) + list(self.sparse) \
            + list(self.bags)
        twice = sorted({n for n in featured if featured.count(n) > 1})
        check(not twice, "schema", f"columns {twice} have more than one role; give each one")
        if self.validation_indicator is not None:
            key, n = "schema.validation_indicator", self.validation_indicator
            check(n in types, key, f"'{n}' is not among schema.columns {names}")
            check(types[n] == "boolean", key, f"'{n}' is declared as {types[n]}; declare it boolean "
                                              "(true: a validation row, false: a training row)")
            check(n not in self.features and n != self.label, key,
                   f"'{n}' chooses the split: remove it from the features and the label")
        check(self.label in types, "schema.label", f"'{self.label}' is not among schema.columns {names}")
        check(self.label not in self.features, "schema.label",
               f"'{self.label}' is the label; remove it from the features (schema.numeric, categorical, vectors, "
               "sparse, bags)")
        check(types[self.label] in DECLARED[:6], "schema.label",
              f"'{self.label}' is declared as {types[self.label]}; a label is one value per row")
        if self.task == REGRESSION:
            check(not self.classes, "schema.classes", "a regression label is a number, not one of classes: "
                                                       "remove schema.classes (or set schema.task: classification)")
            check(types[self.label] in ("int", "long", "double", "float"), "schema.label",
                   f"'{self.label}' is declared as {types[self.label]}; a regression label needs a numeric type")
        else:
            check(len(self.classes) >= 2, "schema.classes",
                   "declare at least two classes (or set schema.task: regression for a numeric label)")
        check(len(set(self.classes)) == len(self.classes), "schema.classes", "classes must be distinct")

    @property
    def features(self) -> List[str]:
        return list(self.numeric) + list(self.categorical) + list(self.vectors) + list(self.sparse) \
            + list(self.bags)

    @property
    def many(self) -> List[str]:
        """The features holding many values per row: vectors, sparse vectors, bags."""
        return list(self.vectors) + list(self.sparse) + list(self.bags)

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

    @property
    def not_inputs(self) -> List[str]:
        """Declared columns that training reads and scoring does not: the label and the
        validation indicator."""
        return [self.label] + ([self.validation_indicator] if self.validation_indicator else [])

    @property
    def inputs(self) -> List[str]:
        """The declared columns a scorer reads (every column but :attr:`not_inputs`)."""
        return [c.name for c in self.columns if c.name not in self.not_inputs]

    @property
    def image_path_column(self) -> str:
        """An image job's path column: the declared column beside the label."""
        return next(c.name for c in self.columns if c.name != self.label)


@dataclass(frozen=True)
class ImageConfig:
    """How image files become pixels (``data.format: images``): decoded, converted and
    resized on the executors with Pillow, stored as uint8."""

    #: Pixels high after decoding (and resizing).
    height: int
    #: Pixels wide after decoding (and resizing).
    width: int
    #: ``L``: 8-bit grayscale (1 channel); ``RGB``: 3 channels.
    mode: Literal["L", "RGB"] = "L"
    #: Convert other modes to ``mode``; when false, an image in another mode is quarantined.
    convert: bool = False
    #: Resize other sizes to height x width; when false, they are quarantined.
    resize: bool = True
    #: Labels from a table instead of folder names: a CSV file with a header, or Parquet,
    #: with the path column (paths relative to the image folder) and ``schema.label``.
    labels: Optional[str] = None

    def __post_init__(self):
        check(self.height >= 1 and self.width >= 1, "data.image", "height and width must be >= 1 pixel")

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data lives and how to read it."""

    #: The training data's path; for ``table``, a table in the session's catalog
    #: (``[catalog.][database.]table``); for jdbc, see options; generated data has none.
    train: Optional[str] = None
    #: How ``train`` and ``test`` are read: files (csv, json lines, parquet, a folder of
    #: images), a jdbc source, a catalog table, or rows generated on the executors
    #: (``synthetic``).
    format: Literal["csv", "parquet", "json", "jdbc", "synthetic", "images", "table"] = "csv"
    #: A separate test split, read like ``train``; without it, ``materialize.test_fraction``
    #: carves one.
    test: Optional[str] = None
    #: Reader options (csv ``header``, jdbc ``url``/``dbtable``...); for ``synthetic``:
    #: ``rows``, ``seed``, ``partitions``, ``shape`` (adult, clicklog).
    options: Dict[str, str] = field(default_factory=dict)
    #: Texts that mean a missing value in a text source.
    null_values: List[str] = field(default_factory=lambda: ["?", ""])
    #: A NaN or infinite number (``1e400``, ``inf``, ``NaN``) in a double/float column:
    #: quarantine the row with a reason, or treat the value as missing (imputed).
    non_finite: Literal["quarantine", "missing"] = "quarantine"
    #: The largest share of rows that may be quarantined before the job stops with an error.
    max_bad_fraction: float = 0.01
    #: Images: a folder of files, ``<folder>/<label>/<name>``, the label from the parent folder.
    image: Optional[ImageConfig] = None

    def __post_init__(self):
        check(0.0 <= self.max_bad_fraction <= 1.0, "data.max_bad_fraction", "must be between 0 and 1")
        check((self.format == "images") == (self.image is not None), "data.image",
               "format 'images' needs data.image {height, width, mode}" if self.format == "images"
               else f"data.image is for format 'images', not '{self.format}'")
        check(self.format == "synthetic" or bool(self.train), "data.train",
               "required value missing (expected a string: the training data's path)")
        if self.format == "table":
            for key in ("train", "test"):
                value = getattr(self, key)
                check(value is None or name_problem(value) is None, f"data.{key}", name_problem(value or "") or "")
        if self.format == "jdbc":
            check("url" in self.options, "data.options.url", "jdbc sources need options.url (and dbtable or query)")
        if self.format == "synthetic":
            check(set(self.options) <= {"rows", "seed", "partitions", "shape"} and "rows" in self.options,
                   "data.options", "synthetic data takes options rows (required), seed, partitions and shape")
            for key in ("rows", "seed", "partitions"):
                check(str(self.options.get(key, "0")).isdigit(), f"data.options.{key}",
                       f"must be a whole number, not '{self.options.get(key)}'")
            check(self.options.get("shape", "adult") in SHAPES, "data.options.shape",
                   f"unknown synthetic shape '{self.options.get('shape')}': choose {' or '.join(SHAPES)}")
