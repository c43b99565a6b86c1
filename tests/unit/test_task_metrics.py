"""Metrics from summed statistics equal the same metrics computed directly on all rows,
however the rows are split among ranks."""
import numpy as np
import pytest

from sparkdl.core.task_metrics import BINS, StatsLayout, metric_names


def _split_sum(layout, outputs, y, parts=3):
    total = layout.zeros()
    for idx in np.array_split(np.arange(len(y)), parts):
        part = layout.zeros()
        layout.update(part, outputs[idx], y[idx])
        total += part
    return total


def test_multiclass_metrics_match_direct_computation():
    rng = np.random.default_rng(0)
    k, n = 5, 997
    logits = rng.normal(size=(n, k))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, k, n)
    layout = StatsLayout("classification", k)
    m = layout.finalize(_split_sum(layout, p, y))
    pred = p.argmax(1)
    assert m["rows"] == n
    assert m["accuracy"] == pytest.approx((pred == y).mean())
    assert m["log_loss"] == pytest.approx(-np.log(p[np.arange(n), y]).mean())
    f1s = []
    for c in range(k):
        tp = np.sum((pred == c) & (y == c))
        f1s.append(2 * tp / (np.sum(pred == c) + np.sum(y == c)))
    assert m["macro_f1"] == pytest.approx(np.mean(f1s))
    confusion = np.array(m["confusion"])
    assert confusion.sum() == n and confusion[2, 3] == np.sum((y == 2) & (pred == 3))
    assert "auc" not in m and set(metric_names("classification", k)) <= set(m)


def test_binary_curve_metrics_match_brute_force():
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.random(n) < 0.1).astype(np.int64)
    # scores on bin centres, so histogram ties are exactly the scores' own ties
    score = (np.clip(np.round(rng.beta(2, 5, n) + 0.3 * y, 3), 0, 0.999) * BINS).astype(int) / BINS + 0.5 / BINS
    p = np.stack([1 - score, score], 1)
    layout = StatsLayout("classification", 2)
    m = layout.finalize(_split_sum(layout, p, y))
    pos, neg = score[y == 1], score[y == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert m["auc"] == pytest.approx(greater / (len(pos) * len(neg)))
    thresholds = np.unique(score)[::-1]
    ap, last_recall, best = 0.0, 0.0, (0.0, None)
    for t in thresholds:
        hit = score >= t
        tp = np.sum(hit & (y == 1))
        precision, recall = tp / hit.sum(), tp / y.sum()
        ap += (recall - last_recall) * precision
        last_recall = recall
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        if f1 > best[0]:
            best = (f1, t)
    assert m["pr_auc"] == pytest.approx(ap)
    assert m["best_f1"] == pytest.approx(best[0])
    assert m["best_f1_threshold"] == pytest.approx(best[1] - 0.5 / BINS)  # the bin's lower edge
    hit = score >= 0.5
    tp = np.sum(hit & (y == 1))
    assert m["precision"] == pytest.approx(tp / hit.sum()) and m["recall"] == pytest.approx(tp / y.sum())
    assert m["accuracy"] == pytest.approx(np.mean(hit == (y == 1)))
    # at another threshold the confusion matrix moves with it
    low = layout.finalize(_split_sum(layout, p, y), threshold=0.2)
    assert np.array(low["confusion"])[1, 1] == np.sum((score >= 0.2) & (y == 1)) and low["threshold"] == 0.2


def test_regression_metrics_match_direct_computation():
    rng = np.random.default_rng(2)
    y = rng.normal(200_000, 100_000, 1001)
    pred = y + rng.normal(0, 50_000, len(y))
    layout = StatsLayout("regression")
    m = layout.finalize(_split_sum(layout, pred, y, parts=4))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(pred - y)))
    assert m["r2"] == pytest.approx(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))
    assert m["rows"] == len(y)
