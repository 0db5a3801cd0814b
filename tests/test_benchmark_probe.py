"""The measurement behind the quick budget's 16x16 digits (benchmarks/alpha_gradient_seeds.py):
its signal share on hand-made gradients, and that probing a search leaves the search unchanged."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import nasedu

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_path = Path(__file__).resolve().parent.parent / "benchmarks" / "alpha_gradient_seeds.py"
_spec = importlib.util.spec_from_file_location("alpha_gradient_seeds", _path)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_signal_share_is_one_without_batch_noise_and_near_zero_for_noise_alone():
    g = np.random.default_rng(0).normal(size=(400, 50))
    assert probe.signal_share(np.tile(g[0], (8, 1))) == pytest.approx(1.0)
    assert abs(probe.signal_share(g)) < 0.01
    # signal s plus noise of the same size per entry: |s|^2 / (|s|^2 + |n|^2) = 1/2
    assert probe.signal_share(g[0] + g[1:]) == pytest.approx(0.5, abs=0.15)


def test_probing_the_alpha_gradient_leaves_the_search_unchanged():
    options = dict(data="synthetic", C=4, layers=3, steps=2, multiplier=2, epochs=2, warmup_epochs=1,
                   batch_size=32, seed=0, progress=False)
    plain = nasedu.search("darts", **options)
    probed = probe.AlphaGradientProbe(batches=3)
    result = nasedu.search("darts", callbacks=[probed], **options)
    assert len(probed.epochs) == 2 and probed.epochs[0]["normal"].shape == (3, plain.strategy.alpha["normal"].numel())
    assert result.architecture == plain.architecture
    for name, alpha in plain.strategy.alpha.items():
        assert (result.strategy.alpha[name] == alpha).all()
    assert result.oneshot_val_acc == plain.oneshot_val_acc and result.supernet_val_acc == plain.supernet_val_acc
