"""Strategies over seeds (`nasedu.compare`), on NAS-Bench-Macro's table: no training, seconds."""
import pytest

import nasedu
from nasedu.compare import compare

TABLE = dict(space="macro", benchmark="nas-bench-macro", epochs=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_compare_runs_every_strategy_and_seed_and_reports_the_truth(tmp_path, workers):
    runs = {"random, 5": ("random", {"samples_per_epoch": 5}), "random, 20": ("random", {"samples_per_epoch": 20})}
    c = compare(runs, seeds=[1, 0], workers=workers, progress=False, out=str(tmp_path), **TABLE)
    assert c.labels == list(runs) and all(list(c.results[k]) == [0, 1] for k in runs)  # seed order
    for label, (name, options) in runs.items():
        for seed, r in c.results[label].items():
            alone = nasedu.search(name, seed=seed, progress=False, **TABLE, **options)
            assert r.true_acc == alone.true_acc and str(r.architecture) == str(alone.architecture)
            assert r.strategy is None  # only the record comes back from a worker
    rows = c.rows()
    assert rows[0]["cost_ratio"] == pytest.approx(1.0)
    # 4 times the samples of the best-of-n: never worse on average, on the same seeds
    assert rows[1]["true_acc_mean"] >= rows[0]["true_acc_mean"]
    assert "random, 20" in c.summary() and "true accuracy" in c.summary()
    assert (tmp_path / "random,_5_seed0" / "checkpoint.pt").exists()


def test_compare_names_a_malformed_strategy():
    with pytest.raises(ValueError, match=r"give \(name, \{options\}\)"):
        compare({"darts": "darts"}, seeds=[0])
    with pytest.raises(ValueError, match="at least one strategy"):
        compare({}, seeds=[0])
