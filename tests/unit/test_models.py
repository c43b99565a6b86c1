import pytest
import torch

from sparkdl.core.config import ModelConfig
from sparkdl.core.models import build_model, freeze, load_matching, load_model, model_spec, save_model


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


def median_factory(input_width, outputs, hidden=4):
    """A custom factory that brings its own loss (an L1 loss: a median regression)."""
    net = torch.nn.Sequential(torch.nn.Linear(input_width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs))
    return net, lambda scores, labels: (scores[:, 0] - labels).abs().mean()


def test_a_custom_factory_may_bring_its_own_loss_and_the_objective_uses_it():
    from sparkdl.core.models import build_model_and_loss
    from sparkdl.training.rank.objective import Objective

    spec = model_spec(ModelConfig(kind="custom", factory=f"{__name__}:median_factory", factory_args={"hidden": 6}),
                      3, 0, task="regression", target={"mean": 10.0, "std": 2.0})
    model, loss = build_model_and_loss(spec)
    assert spec["outputs"] == 1 and model[0].out_features == 6 and callable(loss)
    objective = Objective("regression", "mse", target=spec["target"], custom=loss)
    out, y = torch.zeros(4, 1), torch.full((4,), 14.0)
    assert float(objective(out, y)) == pytest.approx(2.0)  # |0 - (14 - 10) / 2|: on the standardized target
    assert float(objective(out, y, reduction="sum")) == pytest.approx(8.0)


def test_regression_predictions_come_back_in_the_labels_units_and_classes_as_probabilities():
    from sparkdl.core.models import predictions
    from sparkdl.training.rank.objective import Objective

    spec = model_spec(ModelConfig(hidden=[4]), 3, 0, task="regression", target={"mean": 100.0, "std": 10.0})
    assert "threshold" not in spec
    assert predictions(torch.tensor([[0.0], [1.5]]), spec).tolist() == [100.0, 115.0]
    mse = Objective("regression", "mse", target=spec["target"])
    assert float(mse(torch.tensor([[1.5]]), torch.tensor([115.0]))) == pytest.approx(0.0)
    cls = model_spec(ModelConfig(hidden=[4]), 3, 3)
    p = predictions(torch.tensor([[0.0, 0.0, 0.0]]), cls)
    assert p.tolist()[0] == pytest.approx([1 / 3] * 3) and cls["threshold"] == 0.5
    weighted = Objective("classification", "cross_entropy", class_weights=[1.0, 3.0]).to("cpu")
    scores, labels = torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])
    plain = torch.nn.functional.cross_entropy(scores, labels, reduction="none")
    assert float(weighted(scores, labels)) == pytest.approx(float((plain[0] + 3 * plain[1]) / 4))
