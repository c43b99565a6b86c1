"""The column types a schema declares, and what each one is to Spark, to an input frame
and to MLflow: the one table every reader and scorer uses."""
from typing import Dict, FrozenSet, Optional

#: The types ``schema.columns[].type`` may declare: one value per row, or many (a Spark ML
#: vector, an array of numbers, an array of ids).
DECLARED = ("int", "long", "double", "float", "string", "boolean",
            "vector", "array<float>", "array<double>", "array<string>", "array<int>", "array<long>")
NUMERIC = frozenset({"int", "long", "double", "float"})
#: Many values per row: a ``VectorUDT`` (dense or sparse), or numbers of a fixed length.
VECTORS = frozenset({"vector", "array<float>", "array<double>"})
#: Many ids per row: a bag of items (multi-hot), learned with an ``EmbeddingBag``.
BAGS = frozenset({"array<string>", "array<int>", "array<long>"})
MANY = VECTORS | BAGS

#: The Spark SQL type a declared type parses to.
SPARK_TYPE: Dict[str, str] = {"int": "int", "long": "bigint", "double": "double", "float": "float",
                              "string": "string", "boolean": "boolean", "vector": "vector",
                              "array<float>": "array<float>", "array<double>": "array<double>",
                              "array<string>": "array<string>", "array<int>": "array<int>",
                              "array<long>": "array<bigint>"}

_INTEGERS = frozenset({"tinyint", "smallint", "int", "bigint"})
#: The Spark types an input column may have for each declared type (text is parsed row by
#: row); None: anything, cast to text.
SPARK_INPUTS: Dict[str, Optional[FrozenSet[str]]] = {
    "string": None,
    "boolean": frozenset({"boolean", "string"}),
    "int": _INTEGERS | {"string"},
    "long": _INTEGERS | {"string"},
    "float": _INTEGERS | {"float", "double", "string"},
    "double": _INTEGERS | {"float", "double", "string"},
    "vector": frozenset({"vector"}),
    "array<float>": frozenset(f"array<{t}>" for t in _INTEGERS | {"float", "double"}),
    "array<double>": frozenset(f"array<{t}>" for t in _INTEGERS | {"float", "double"}),
    "array<string>": frozenset(f"array<{t}>" for t in _INTEGERS | {"string"}),
    "array<int>": frozenset(f"array<{t}>" for t in _INTEGERS),
    "array<long>": frozenset(f"array<{t}>" for t in _INTEGERS),
}

#: The MLflow signature type of a declared type; None: any type (numbers and booleans
#: arrive as pandas reads them, ints, floats or text, and are parsed like scoring's input).
MLFLOW_TYPE: Dict[str, Optional[str]] = {"string": "string", "int": None, "long": None, "double": None,
                                         "float": None, "boolean": None,
                                         **{t: None for t in MANY}}

#: The largest finite float32: a bigger value cannot reach the network and is a bad value.
FLOAT32_MAX = 3.4028234663852886e38
