"""Property: whatever structure or text a YAML file holds, the config loader returns a
JobConfig or raises ConfigError naming a key, never another exception."""
import copy
import warnings

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkdl.core.config import JobConfig
from sparkdl.core.config.loading import load_config, parse_config
from sparkdl.core.errors import ConfigError
from tests.unit.test_config import MINIMAL

CASES = {"structures": 0, "texts": 0, "overrides": 0}
KEYS = ["data", "schema", "train", "model", "spark", "features", "materialize", "name", "columns", "label",
        "classes", "numeric", "categorical", "optimizer", "lr", "epochs", "launch", "env", "format", "options",
        "hidden", "image_shape", "kind", "factory", "ranks", "batch_size", "type", "reader", "allreduce"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["csv", "mlp", "adam", "x", "y", "double", "string"]))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3), st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


def _check(outcome):
    if isinstance(outcome, ConfigError):
        assert outcome.path and str(outcome).startswith("config key '")
    else:
        assert isinstance(outcome, JobConfig)


def _parse(raw, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated keys warn; that is not what is tested
        try:
            return parse_config(raw, **kw)
        except ConfigError as e:
            return e


@settings(max_examples=400, deadline=None)
@given(top=st.dictionaries(keys, values, max_size=6), path=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3),
       value=values)
def test_any_structure_gives_a_config_or_a_config_error(top, path, value):
    CASES["structures"] += 1
    _check(_parse(top))  # a structure of its own
    raw = copy.deepcopy(MINIMAL)  # a valid config with one value replaced somewhere
    node = raw
    for k in path[:-1]:
        node = node.setdefault(k, {}) if isinstance(node.get(k, {}), dict) else node
    node[path[-1]] = value
    _check(_parse(raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), st.builds(yaml.safe_dump, values)))
def test_any_file_text_gives_a_config_or_a_config_error(tmp_path, text):
    CASES["texts"] += 1
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            outcome = load_config(path)
        except ConfigError as e:
            outcome = e
    _check(outcome)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.lists(st.one_of(st.text(max_size=30),
                                    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(
                                        ["train.epochs", "train.optimizer.lr", "spark.conf.a.b", "data.options.x",
                                         "train.launch.env.A", "model.hidden", "schema.label", "x.y.z", "train"]),
                                        st.text(max_size=12))), max_size=3))
def test_any_override_gives_a_config_or_a_config_error(tmp_path, overrides):
    CASES["overrides"] += 1
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            outcome = load_config(path, overrides)
        except ConfigError as e:
            outcome = e
    _check(outcome)


def test_zz_case_counts(capsys):
    """Runs last in this module: how many generated cases the properties above ran."""
    with capsys.disabled():
        print(f"\nconfig loader property cases: {CASES}")
    assert all(n > 0 for n in CASES.values()) or set(CASES.values()) == {0}  # all ran, or module run partially
