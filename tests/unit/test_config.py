import textwrap
from pathlib import Path

import pytest

from sparkdl.core.config import JobConfig
from sparkdl.core.config.loading import load_config, parse_config
from sparkdl.core.errors import ConfigError

MINIMAL = {
    "data": {"train": "/data/train.csv"},
    "schema": {
        "columns": [{"name": "x", "type": "double"}, {"name": "c", "type": "string"}, {"name": "y", "type": "string"}],
        "numeric": ["x"], "categorical": ["c"], "label": "y", "classes": ["a", "b"],
    },
}


def _with(**changes):
    import copy

    raw = copy.deepcopy(MINIMAL)
    for path, value in changes.items():
        node = raw
        keys = path.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return raw


def test_minimal_config_gets_defaults():
    cfg = parse_config(MINIMAL)
    assert isinstance(cfg, JobConfig)
    assert cfg.spark.master == "local-cluster[2,1,1024]"
    assert cfg.train.allreduce.compression == "none" and cfg.train.allreduce.backward_passes_per_step == 1
    assert cfg.schema.features == ["x", "c"]


@pytest.mark.parametrize("raw, path, words", [
    (_with(train={"epochz": 3}), "train.epochz", "unknown key"),
    (_with(train={"epochs": "three"}), "train.epochs", "expected an integer"),
    (_with(train={"epochs": True}), "train.epochs", "expected an integer"),
    (_with(train={"optimizer": {"lr": "fast"}}), "train.optimizer.lr", "expected a number"),
    (_with(train={"allreduce": {"compression": "zstd"}}), "train.allreduce.compression",
     "'none', 'fp16', 'bf16', 'powersgd', 'topk'"),
    (_with(train={"epochs": 0}), "train.epochs", ">= 1"),
    (_with(schema__label="nope"), "schema.label", "not among schema.columns"),
    (_with(schema__numeric=["c"]), "schema.numeric[0]", "declared as string"),
    (_with(schema__columns=[{"name": "x", "type": "decimal"}]), "schema.columns[0].type", "one of"),
    (_with(schema__columns=[{"name": "x"}]), "schema.columns[0].type", "required value missing"),
    (_with(data={"format": "csv"}), "data.train", "required value missing"),
    (_with(spark={"conf": {"a": {"b": 1}}}), "spark.conf.a", "string or number"),
    (_with(model={"kind": "custom"}), "model.factory", "module:function"),
    (_with(train={"launch": {"env": {"HOROVOD-CYCLE": "1"}}}), "train.launch.env.HOROVOD-CYCLE",
     "environment variable name"),
    (_with(train={"lr": 0.1, "optimizer": {"lr": 0.2}}), "train.lr", "keep only 'train.optimizer.lr'"),
    # tasks and training controls
    (_with(schema__task="regression", schema__label="x", schema__numeric=[]), "schema.classes", "remove"),
    (_with(schema__task="regression", schema__classes=[]), "schema.label", "needs a numeric type"),
    (_with(schema__classes=[]), "schema.classes", "schema.task: regression"),
    (_with(train={"early_stopping": {"metric": "val_rmse"}}, materialize={"test_fraction": 0.1}),
     "train.early_stopping.metric", "not a metric a classification job produces"),
    (_with(train={"early_stopping": {"metric": "loss"}}), "train.early_stopping.metric", "validation metric"),
    (_with(train={"early_stopping": {"patience": 2}}), "materialize.test_fraction", "took no part"),
    (_with(data={"train": "/a.csv", "test": "/b.csv"}, materialize={"test_fraction": 0.1}),
     "materialize.test_fraction", "data.test is the test split"),
    (_with(train={"epochs": 5, "lr_schedule": {"warmup_epochs": 5}}), "train.lr_schedule.warmup_epochs",
     "not shorter than the run"),
    (_with(train={"epochs": 5, "lr_schedule": {"kind": "step", "step_epochs": 5}}),
     "train.lr_schedule.step_epochs", "never happens"),
    (_with(train={"lr_schedule": {"kind": "plateau", "metric": "val_r2"}}), "train.lr_schedule.metric",
     "not a metric"),
    (_with(train={"loss": "mse"}), "train.loss", "not a classification loss"),
    # generated data and embedding gradients
    (_with(data={"format": "synthetic", "options": {"rows": 10, "shape": "criteo"}}), "data.options.shape",
     "adult or clicklog"),
    (_with(data={"format": "synthetic", "options": {"rows": "many"}}), "data.options.rows", "whole number"),
    (_with(train={"allreduce": {"embedding_gradients": "lazy"}}), "train.allreduce.embedding_gradients",
     "'auto', 'dense', 'sparse'"),
    (_with(train={"allreduce": {"sparse_from_rows": 0}}), "train.allreduce.sparse_from_rows", ">= 1"),
    # options of one backend only name the backend that has them
    (_with(train={"backend": "mpi"}), "train.backend", "'horovod', 'torch'"),
    (_with(train={"strategy": "fsdp"}), "train.strategy", "option of train.backend: torch"),
    (_with(train={"backend": "torch", "horovod": {"cycle_time_ms": 1}}), "train.horovod",
     "options of train.backend: horovod (this job uses train.backend: torch)"),
    (_with(train={"ddp": {"bucket_cap_mb": 5}}), "train.ddp", "options of train.backend: torch"),
    (_with(train={"backend": "torch", "strategy": "fsdp", "ddp": {}}), "train.ddp", "strategy: fsdp"),
    (_with(train={"backend": "torch", "strategy": "fsdp", "allreduce": {"compression": "fp16"}}),
     "train.allreduce.compression", "train.strategy: fsdp"),
    # communication: each method names the backend and strategy that have it
    (_with(train={"allreduce": {"compression": "powersgd"}}), "train.allreduce.compression",
     "powersgd is an option of train.backend: torch with train.strategy: ddp; Horovod compresses with none or fp16"),
    (_with(train={"allreduce": {"compression": "bf16"}}), "train.allreduce.compression", "train.backend: torch"),
    (_with(train={"backend": "torch", "strategy": "fsdp", "allreduce": {"compression": "topk"}}),
     "train.allreduce.compression", "topk is an option of train.strategy: ddp"),
    (_with(train={"backend": "torch", "allreduce": {"compression": "fp16", "topk": {"ratio": 0.1}}}),
     "train.allreduce.topk", "apply to compression: topk (this job uses compression: fp16)"),
    (_with(train={"backend": "torch", "allreduce": {"compression": "topk", "topk": {"ratio": 0}}}),
     "train.allreduce.topk.ratio", "(0, 1]"),
    (_with(train={"backend": "torch", "allreduce": {"compression": "powersgd", "powersgd": {"start_step": 1}}}),
     "train.allreduce.powersgd.start_step", ">= 2"),
    (_with(train={"backend": "torch", "allreduce": {"compression": "powersgd", "powersgd": {"rank": 0}}}),
     "train.allreduce.powersgd.rank", ">= 1"),
    (_with(train={"local_sgd": {"period": 1}}), "train.local_sgd.period", ">= 2"),
    (_with(train={"local_sgd": {"period": 8, "host_period": 4}}), "train.local_sgd.host_period",
     "option of train.backend: torch"),
    (_with(train={"backend": "torch", "local_sgd": {"period": 8, "host_period": 3}}),
     "train.local_sgd.host_period", "divide it"),
    (_with(train={"local_sgd": {"period": 4}, "allreduce": {"compression": "fp16"}}), "train.local_sgd",
     "compresses nothing"),
    (_with(train={"backend": "torch", "strategy": "fsdp", "local_sgd": {}}), "train.local_sgd",
     "train.strategy: fsdp shards"),
    (_with(train={"backend": "torch", "strategy": "fsdp", "allreduce": {"embedding_gradients": "sparse"}}),
     "train.allreduce.embedding_gradients", "not an option of train.strategy: fsdp"),
    (_with(train={"horovod": {"cycle_time_ms": 0}}), "train.horovod.cycle_time_ms", "> 0"),
    # models split across ranks
    (_with(train={"strategy": "pipeline"}), "train.strategy", "pipeline is an option of train.backend: torch"),
    (_with(train={"backend": "torch", "strategy": "pipeline", "ranks": 3}), "train.pipeline.stages",
     "2 does not divide the 3 ranks"),
    (_with(train={"backend": "torch", "strategy": "tensor", "tensor": {"size": 4}, "ranks": 2}), "train.tensor.size",
     "4 does not divide the 2 ranks"),
    (_with(train={"backend": "torch", "strategy": "pipeline", "batch_size": 100, "pipeline": {"micro_batches": 8}}),
     "train.pipeline.micro_batches", "do not divide train.batch_size 100"),
    (_with(train={"backend": "torch", "strategy": "pipeline", "pipeline": {"schedule": "interleaved",
                                                                           "micro_batches": 3}}),
     "train.pipeline.micro_batches", "multiple of it"),
    (_with(train={"backend": "torch", "strategy": "pipeline", "allreduce": {"compression": "powersgd"}}),
     "train.allreduce.compression", "train.strategy: pipeline averages"),
    (_with(train={"backend": "torch", "strategy": "pipeline", "allreduce": {"backward_passes_per_step": 2}}),
     "train.allreduce.backward_passes_per_step", "train.pipeline.micro_batches instead"),
    (_with(train={"backend": "torch", "strategy": "pipeline", "mixed_precision": "fp16"}), "train.mixed_precision",
     "use bf16"),
    (_with(train={"backend": "torch", "strategy": "tensor", "local_sgd": {}}), "train.local_sgd",
     "train.strategy: tensor splits the model"),
    (_with(train={"backend": "torch", "pipeline": {"stages": 2}}), "train.pipeline",
     "options of train.strategy: pipeline"),
    (_with(train={"backend": "torch", "strategy": "pipeline", "pipeline": {"stages": 1}}), "train.pipeline.stages",
     ">= 2"),
    (_with(train={"class_weights": [1.0, 2.0, 3.0]}), "train.class_weights", "one per class"),
    (_with(train={"class_weights": "even"}), "train.class_weights", "'balanced'"),
    (_with(schema__classes=["a", "b", "c"], train={"decision_threshold": "best_f1"}), "train.decision_threshold",
     "3-class"),
    (_with(materialize={"validation_fraction": 0.5, "test_fraction": 0.45}), "materialize.test_fraction",
     "at least 10%"),
    # catalog tables
    (_with(data={"format": "table", "train": "data/adult.csv"}), "data.train", "is not a table name"),
    (_with(data={"format": "table", "train": "db.t", "test": "a.b.c.d"}), "data.test", "[catalog.][database.]table"),
    # images
    (_with(train={"augment": {"flip": True}}), "train.augment", "needs data.format: images"),
    (_with(data={"format": "images", "train": "/img"}), "data.image", "needs data.image"),
    (_with(data={"train": "/a.csv", "image": {"height": 2, "width": 2}}), "data.image", "not 'csv'"),
    (_with(data={"format": "images", "train": "/img", "image": {"height": 28, "width": 28}}), "schema.columns",
     "two string columns"),
])
@pytest.mark.filterwarnings("ignore:config key:FutureWarning")
def test_errors_name_the_key_path(raw, path, words):
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert e.value.path == path
    assert words in str(e.value)
    assert f"'{path}'" in str(e.value)


def test_a_regression_job_and_its_controls_validate():
    raw = _with(schema__task="regression", schema__classes=[], schema__columns=[
        {"name": "x", "type": "double"}, {"name": "c", "type": "string"}, {"name": "y", "type": "double"}],
        train={"loss": "huber", "early_stopping": {"metric": "val_r2"},
               "lr_schedule": {"kind": "cosine", "warmup_epochs": 1.5}},
        materialize={"test_fraction": 0.1})
    cfg = parse_config(raw)
    assert cfg.loss == "huber" and cfg.train.early_stopping.direction == "max"
    assert parse_config(MINIMAL).loss == "cross_entropy"


def test_an_image_job_validates_against_its_model():
    raw = _with(data={"format": "images", "train": "/img", "image": {"height": 28, "width": 28}},
                schema__columns=[{"name": "path", "type": "string"}, {"name": "y", "type": "string"}],
                schema__numeric=[], schema__categorical=[], schema__keys=["path"],
                model={"kind": "cnn", "image_shape": [1, 28, 28]}, train={"augment": {"crop_padding": 2}})
    cfg = parse_config(raw)
    assert cfg.path_column == "path" and cfg.data.image.shape == (1, 28, 28)
    raw["model"]["image_shape"] = [3, 28, 28]
    with pytest.raises(ConfigError, match="does not match data.image"):
        parse_config(raw)


def test_an_image_labels_table_resolves_against_the_config_file(tmp_path):
    (tmp_path / "job.yaml").write_text(textwrap.dedent("""
        data: {format: images, train: img, image: {height: 8, width: 8, labels: tables/labels.csv}}
        schema:
          columns: [{name: path, type: string}, {name: y, type: string}]
          label: y
          classes: [a, b]
        model: {kind: cnn, image_shape: [1, 8, 8]}
    """))
    image = load_config(tmp_path / "job.yaml").data.image
    assert image.labels == str(tmp_path / "tables" / "labels.csv")


def test_load_yaml_resolves_relative_paths_and_overrides(tmp_path):
    (tmp_path / "job.yaml").write_text(textwrap.dedent("""
        name: t
        data: {train: data/train.csv, test: /abs/test.csv}
        schema:
          columns: [{name: x, type: double}, {name: y, type: string}]
          numeric: [x]
          label: y
          classes: [a, b]
    """))
    cfg = load_config(tmp_path / "job.yaml", ["train.epochs=3", "spark.conf.spark.ui.enabled=false"])
    assert cfg.data.train == str(tmp_path / "data" / "train.csv")
    assert cfg.data.test == "/abs/test.csv"
    assert cfg.train.epochs == 3
    assert cfg.spark.conf == {"spark.ui.enabled": "false"}


@pytest.mark.parametrize("raw, path", [
    ({0: None, "": None}, "0"), ({"": 1}, "''"), ({**MINIMAL, "train": {True: 1}}, "train.True")])
def test_keys_that_are_not_names_are_config_errors(raw, path):
    with pytest.raises(ConfigError, match="keys must be non-empty names") as e:  # was a TypeError from sorted()
        parse_config(raw)
    assert e.value.path == path


def test_overrides_that_are_empty_or_not_yaml_are_config_errors(tmp_path):
    (tmp_path / "job.yaml").write_text("data: {train: x}\n")
    with pytest.raises(ConfigError, match="key.path=value") as e:
        load_config(tmp_path / "job.yaml", [""])
    assert e.value.path == "--set ''"
    with pytest.raises(ConfigError, match="is not valid YAML") as e:  # was yaml's ReaderError
        load_config(tmp_path / "job.yaml", ["train.epochs=\x1f"])
    assert e.value.path == "train.epochs"


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "job.yaml").write_text("data: {train: x}\n")
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(tmp_path / "job.yaml", ["epochs3"])


def test_shipped_configs_are_valid():
    from pathlib import Path

    confs = sorted((Path(__file__).parents[2] / "conf").glob("*.yaml"))
    assert confs, "conf/ has no job configs"
    for path in confs:
        load_config(path)


def test_flat_train_keys_of_0_1_still_load_with_a_warning_naming_the_new_key():
    old = _with(train={"lr": 0.01, "optimizer": "sgd", "compression": "fp16", "shuffle_buffer": 0,
                       "init_from": "run-1", "start_timeout_s": 30, "env": {"A": "1"}, "max_attempts": 1})
    with pytest.warns(FutureWarning) as record:
        cfg = parse_config(old)
    t = cfg.train
    assert (t.optimizer.name, t.optimizer.lr, t.allreduce.compression, t.loader.shuffle_buffer) == ("sgd", 0.01,
                                                                                                  "fp16", 0)
    assert (t.fine_tune.init_from, t.launch.start_timeout_s, t.launch.env, t.failure.max_attempts) == \
        ("run-1", 30.0, {"A": "1"}, 1)
    messages = [str(w.message) for w in record]
    assert "config key 'train.lr' is deprecated" in messages[1] and "use 'train.optimizer.lr'" in messages[1]
    assert any("'train.optimizer' is deprecated" in m and "'train.optimizer.name'" in m for m in messages)
    assert len(messages) == 8


def test_the_removed_reader_key_is_ignored_with_a_reason_so_old_runs_still_load():
    with pytest.warns(FutureWarning, match="'train.reader' is ignored: sparkdl reads every dataset with pyarrow"):
        cfg = parse_config(_with(train={"reader": "petastorm"}))
    assert cfg.train.loader.shuffle_buffer == 10000


def test_with_values_sets_dotted_keys_and_validates():
    cfg = parse_config(MINIMAL).with_values({"train.epochs": 2, "train.optimizer.lr": 0.5})
    assert cfg.train.epochs == 2 and cfg.train.optimizer.lr == 0.5
    with pytest.raises(ConfigError, match="train.epochs"):
        cfg.with_values({"train.epochs": 0})


def test_generated_data_needs_no_path_but_files_do():
    assert parse_config(_with(data={"format": "synthetic", "options": {"rows": 10}})).data.train is None


def test_large_embedding_tables_take_sparse_gradients_by_default():
    allreduce = parse_config(MINIMAL).train.allreduce
    assert (allreduce.sparse_table(99_999), allreduce.sparse_table(100_000)) == (False, True)
    dense = parse_config(_with(train={"allreduce": {"embedding_gradients": "dense"}})).train.allreduce
    sparse = parse_config(_with(train={"allreduce": {"embedding_gradients": "sparse"}})).train.allreduce
    assert not dense.sparse_table(10 ** 7) and sparse.sparse_table(2)



def test_scoring_reads_its_input_with_the_runs_options_in_any_format():
    from sparkdl.serving.score import input_data_config

    generated = parse_config(_with(data={"format": "synthetic", "options": {"rows": 10}})).data
    data = input_data_config(generated, "/in/new.csv", "csv")  # was a ConfigError: no data.train
    assert (data.format, data.train, data.test) == ("csv", "/in/new.csv", None)
    assert input_data_config(parse_config(MINIMAL).data, "/in/x.csv", None).format == "csv"
    with pytest.raises(ConfigError, match="trained on generated data, so scoring /in/y needs its format"):
        input_data_config(generated, "/in/y", None)  # never generate rows in place of the input


def test_table_names_are_names_not_paths(tmp_path):
    (tmp_path / "job.yaml").write_text(textwrap.dedent("""
        name: t
        data: {format: table, train: lakehouse.adult, test: "`spark_catalog`.lakehouse.adult_test"}
        schema:
          columns: [{name: x, type: double}, {name: y, type: string}]
          numeric: [x]
          label: y
          classes: [a, b]
    """))
    cfg = load_config(tmp_path / "job.yaml")  # not resolved against the config file's folder
    assert (cfg.data.train, cfg.data.test) == ("lakehouse.adult", "`spark_catalog`.lakehouse.adult_test")
    from sparkdl.serving.score import input_data_config

    assert input_data_config(cfg.data, "lakehouse.new_rows", None).train == "lakehouse.new_rows"
    with pytest.raises(ConfigError, match="'--input'.*'/in/x.csv' is not a table name"):
        input_data_config(cfg.data, "/in/x.csv", None)


def test_table_writer_stages_beside_the_target_and_renames_within_its_catalog():
    from sparkdl.core.errors import TableError
    from sparkdl.core.tables import TableWriter, suffixed

    w = TableWriter(None, "spark_catalog.lakehouse.scores", "overwrite")
    assert w.staging.startswith("`spark_catalog`.`lakehouse`.`scores__sparkdl_staging_")
    assert w._rename_to == "`lakehouse`.`scores`"  # RENAME TO names no catalog
    assert TableWriter(None, "scores", "append")._rename_to == "`scores`"
    assert suffixed("lakehouse.scores", "_quarantine") == "lakehouse.scores_quarantine"
    assert suffixed("`lakehouse`.`scores`", "_quarantine") == "`lakehouse`.`scores_quarantine`"
    with pytest.raises(TableError, match="--output-table: 'my scores' is not a table name"):
        TableWriter(None, "my scores", "error")
    with pytest.raises(TableError, match="mode 'replace' is not one of error, overwrite, append"):
        TableWriter(None, "scores", "replace")


def test_backend_settings_become_what_each_backend_reads():
    t = parse_config(_with(train={"horovod": {"cycle_time_ms": 2.5, "fusion_threshold_mb": 1}})).train
    assert t.backend == "horovod" and t.horovod.env() == {"HOROVOD_CYCLE_TIME": "2.5",
                                                          "HOROVOD_FUSION_THRESHOLD": str(1024 * 1024)}
    t = parse_config(_with(train={"backend": "torch", "ddp": {"bucket_cap_mb": 5}})).train
    assert t.ddp_settings.bucket_cap_mb == 5 and t.strategy == "ddp"
    t = parse_config(_with(train={"backend": "torch", "strategy": "fsdp"})).train
    assert t.sparse_table(10**7) is False and t.ddp_settings.bucket_cap_mb == 25  # FSDP keeps every table dense


def test_the_configuration_page_is_generated_from_the_config_classes():
    from sparkdl.core.config.reference import render, undocumented

    REPO = Path(__file__).resolve().parents[2]

    assert undocumented() == []  # every key says what it does, above its field
    page = (REPO / "docs" / "configuration.md").read_text()
    assert page == render(), "stale: python -m sparkdl.core.config.reference > docs/configuration.md"
    for key in ("spark.remote", "spark.connect_timeout_s", "train.launch.event_host", "progress.display",
                "tracking.uri", "schema.columns[].type", "features.columns.<name>.encoding"):
        assert f"| `{key}` |" in page



def test_each_backend_owns_its_rules_and_names_its_class():
    import importlib

    from sparkdl.core.config.backends import RULES

    t = parse_config(_with(train={"backend": "torch", "allreduce": {"compression": "fp16"}})).train
    with pytest.raises(ConfigError, match=r"tables of \['uid'\] take sparse ones"):
        RULES["torch"].check_tables(t, ["uid"])
    RULES["torch"].check_tables(t, [])  # no sparse table: fp16 is fine
    RULES["horovod"].check_tables(t, ["uid"])  # Horovod's sparse allreduce takes any table
    for backend in RULES:
        local = parse_config(_with(train={"backend": backend, "local_sgd": {"period": 4}})).train
        with pytest.raises(ConfigError, match=r"train.local_sgd.*tables of \['uid'\] take sparse gradients"):
            RULES[backend].check_tables(local, ["uid"])
    topk = parse_config(_with(train={"backend": "torch", "allreduce": {"compression": "topk"}})).train
    with pytest.raises(ConfigError, match=r"topk under train.backend: torch compresses dense gradients only"):
        RULES["torch"].check_tables(topk, ["uid"])
    for name, rules in RULES.items():
        module, cls = rules.implementation.split(":")
        assert getattr(importlib.import_module(module), cls).__name__ == cls and rules.name == name


def test_a_custom_models_own_sparse_table_meets_the_same_rule_on_the_rank():
    from torch import nn

    from sparkdl.training.backends.torchdist import TorchBackend

    t = parse_config(_with(train={"backend": "torch", "allreduce": {"compression": "fp16"}})).train
    net = nn.Sequential(nn.Embedding(10, 2, sparse=True))
    with pytest.raises(ConfigError, match=r"tables of \['0.weight'\] take sparse ones"):  # before joining DDP
        TorchBackend("ddp").prepare(net, t, 0.01, None)
