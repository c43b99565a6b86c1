import pytest
import torch

from sparkdl.config import ModelConfig
from sparkdl.models import build_model, freeze, load_matching, load_model, model_spec, save_model


def test_mlp_and_cnn_shapes():
    mlp = build_model(model_spec(ModelConfig(hidden=[16, 8]), 10, 3))
    assert mlp(torch.zeros(4, 10)).shape == (4, 3)
    cnn = build_model(model_spec(ModelConfig(kind="cnn", hidden=[4, 8], image_shape=(1, 8, 8)), 64, 10))
    assert cnn(torch.zeros(2, 64)).shape == (2, 10)


def test_cnn_shape_must_match_the_features():
    with pytest.raises(ValueError, match="image_shape"):
        model_spec(ModelConfig(kind="cnn", image_shape=(3, 8, 8)), 64, 10)


def test_factory_errors_name_the_factory():
    with pytest.raises(ValueError, match="cannot import 'nope_mod'"):
        build_model(model_spec(ModelConfig(kind="custom", factory="nope_mod:f"), 4, 2))
    with pytest.raises(ValueError, match="no callable 'Nope'"):
        build_model(model_spec(ModelConfig(kind="custom", factory="torch.nn:Nope"), 4, 2))


def test_save_load_round_trip(tmp_path):
    spec = model_spec(ModelConfig(hidden=[8]), 5, 2)
    model = build_model(spec)
    save_model(model, spec, tmp_path / "m")
    again, spec2 = load_model(tmp_path / "m")
    x = torch.randn(3, 5)
    assert spec2 == spec and torch.equal(again(x), model.eval()(x))


def test_fine_tuning_helpers():
    old = build_model(model_spec(ModelConfig(hidden=[8]), 5, 2))
    new = build_model(model_spec(ModelConfig(hidden=[8]), 5, 3))  # a new head: 3 classes
    loaded, skipped = load_matching(new, old.state_dict())
    assert set(loaded) == {"0.weight", "0.bias"} and skipped == ["3.bias", "3.weight"]
    assert torch.equal(new[0].weight, old[0].weight)
    assert freeze(new, ["0."]) == ["0.weight", "0.bias"] and not new[0].weight.requires_grad
    with pytest.raises(ValueError, match="matches no parameter"):
        freeze(new, ["encoder."])
