"""The NAS-Bench-Macro table that ships with nasedu: complete, unchanged from
the published file, with its licence, and queried through `nasedu.bench`."""
import gzip
import hashlib
import json
from collections import defaultdict
from importlib import resources

import numpy as np
import pytest

import nasedu
from nasedu.architecture import ArchitectureError
from nasedu.spaces import MacroArch

# sha256 of data/nas-bench-macro_cifar10.json at xiusu/NAS-Bench-Macro@61a2bfc, as published.
PUBLISHED_SHA256 = "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297"


@pytest.fixture(scope="module")
def bench():
    return nasedu.bench.load("nas-bench-macro")


def test_the_shipped_file_is_the_published_one_with_its_licence():
    tables = resources.files("nasedu.tables")
    raw = gzip.decompress(tables.joinpath("nas-bench-macro_cifar10.json.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == PUBLISHED_SHA256
    licence = tables.joinpath("NAS-BENCH-MACRO-LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    readme = tables.joinpath("NAS-BENCH-MACRO.md").read_text()
    assert "61a2bfc" in readme and "Apache-2.0" in readme


def test_integrity_count_ranges_and_duplicates(bench):
    assert len(bench) == 6561 and len(bench.architectures()) == 3969
    accs = bench.accuracies(distinct=False)
    assert accs.shape == (6561,) and 0.45 < accs.min() < 0.46 and 0.93 < accs.max() < 0.932
    assert 0.909 < np.median(accs) < 0.911  # 90.99 %, as the published statistics
    by_network = defaultdict(set)
    for arch in bench.architectures(distinct=False):
        r = bench.query(arch)
        assert len(r.test_accs) == 3 and r.test_acc == pytest.approx(np.mean(r.test_accs))
        assert 0 < r.params and 0 < r.flops and all(0 < a < 1 for a in r.test_accs)
        by_network[arch.canonical()].add((r.test_acc, r.params, r.flops))
    assert len(by_network) == 3969 and all(len(v) == 1 for v in by_network.values())  # duplicates agree


def test_best_worst_rank_and_percentile(bench):
    best, worst = bench.best(), bench.worst()
    assert best.architecture == "22212220" and best.test_acc == pytest.approx(0.93127, abs=1e-4)
    assert worst.architecture == "00000000" and worst.test_acc == pytest.approx(0.45363, abs=1e-4)
    assert bench.rank("22212220") == 1 == bench.rank("22212202")  # the same network, written two ways
    assert bench.rank("00000000") == 3969 and bench.percentile("00000000") == 0.0
    assert [r.test_acc for r in bench.best(5)] == sorted((r.test_acc for r in bench.best(5)), reverse=True)
    r = bench.query("11111111")
    assert bench.rank("11111111") == 1 + int(np.sum(bench.accuracies() > r.test_acc))


def test_sample_is_uniform_over_distinct_networks_and_reproducible(bench):
    a, b = bench.sample(50, seed=1), bench.sample(50, seed=1)
    assert a == b and len(set(a)) == 50 and all(x == x.canonical() for x in a)
    assert bench.sample(50, seed=2) != a
    assert all(isinstance(x, MacroArch) for x in bench.sample(5, seed=0, distinct=False))
    with pytest.raises(ValueError, match="between 0 and 3969"):
        bench.sample(4000)


def test_bad_queries_say_what_a_code_is(bench):
    with pytest.raises(ArchitectureError, match="nas-bench-macro: a NAS-Bench-Macro architecture is 8 digits"):
        bench.query("2221222")
    with pytest.raises(ValueError, match="unknown benchmark 'nas-bench-101'; available: nas-bench-macro"):
        nasedu.bench.load("nas-bench-101")
    assert "22212220" in bench and "2221222x" not in bench


def test_the_table_is_found_for_its_space_and_data(bench):
    assert nasedu.bench.for_space(nasedu.get_space("macro"), "cifar10") is bench
    assert nasedu.bench.for_space(nasedu.get_space("macro"), "digits") is None
    assert nasedu.bench.for_space(nasedu.get_space("darts"), "cifar10") is None
    assert json.loads(json.dumps(bench.summary()))["distinct"] == 3969


def test_table_searches_select_on_validation_accuracy_where_the_table_records_it():
    """nb201-digits records validation accuracies: a table search selects on them, never on the test accuracy
    that judges it; NAS-Bench-Macro records only test accuracies, which are then all there is."""
    nb201, macro = nasedu.bench.load("nb201-digits"), nasedu.bench.load("nas-bench-macro")
    cell = next(r.architecture for r in nb201.best(50) if r.val_acc != r.test_acc)
    assert nb201.search_accuracy(cell) == nb201.query(cell).val_acc != nb201.accuracy(cell)
    assert macro.search_accuracy("22222222") == macro.accuracy("22222222")
    r = nasedu.search("random", space="nb201", benchmark="nb201-digits", epochs=1, samples_per_epoch=30, progress=False)
    assert r.strategy.best_reward == nb201.query(r.architecture).val_acc == max(s["reward"] for s in r.history.steps)
    assert r.true_acc == nb201.accuracy(r.architecture)
