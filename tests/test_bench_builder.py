"""Building a ground-truth table: which NAS-Bench-201 cells compute the same
function (hand-made cases, real networks with copied weights, and a
brute-force canonical form over every renaming of the operation instances),
then the builder itself: a local process pool, resuming after `limit` and
after a real SIGKILL, a protocol that changed, and Ray beside local processes."""
from __future__ import annotations

import copy
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

import pytest
import torch

from nasedu import bench_builder
from nasedu.bench_builder import PROTOCOL, ProtocolMismatchError, build, load_results, tasks, train_one
from nasedu.parallel import RayUnavailableError, run_tasks
from nasedu.spaces.nb201 import EDGES, NB201_OPS, NB201Arch, NB201Network, NB201Space, function_form, live_edges

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(PROTOCOL, epochs=1, eval_epochs=[1], space={"name": "nb201", "C": 2, "N": 1})
ARCHS = [  # six different functions
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
]

# Swapping nodes 1 and 2 (possible when edge 2<-1 is none) swaps edges 1<-0 / 2<-0 and 3<-1 / 3<-2.
MIRROR = [1, 0, 2, 3, 5, 4]
assert [EDGES[MIRROR[e]] for e in (0, 1, 4, 5)] == [(0, 2), (0, 1), (2, 3), (1, 3)]


def arch(text) -> NB201Arch:
    return NB201Arch.from_string(text) if isinstance(text, str) else NB201Arch(text)


def mirror(a) -> NB201Arch:
    assert a[2] == "none", "only a cell without edge 2<-1 has a mirror image"
    return NB201Arch(a[MIRROR[e]] for e in range(len(EDGES)))


def same_function(a, b) -> bool:
    return function_form(arch(a)) == function_form(arch(b))


# ---------------------------------------------------------------------------
# Which cells compute the same function
# ---------------------------------------------------------------------------

def test_the_space_has_5425_functions_and_the_build_trains_each_twice():
    cells = NB201Space().all()
    assert len({function_form(a) for a in cells}) == 5425
    todo = tasks()
    assert len(todo) == 2 * 5425 == len(set(todo))
    assert [seed for _, seed in todo] == [0] * 5425 + [1] * 5425  # seeds outermost: one complete seed first
    first = [NB201Arch.from_string(a) for a, _ in todo[:5425]]
    assert len({function_form(a) for a in first}) == 5425  # one representative per function
    assert [a.index for a in first] == sorted(a.index for a in first)
    assert all(live_edges(a) == a for a in first)  # no trained network carries a dead edge


# (a) node 1 reads only `none`: it is always zero and the edges out of it change nothing.
DEAD_NODE_1 = arch(["none", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"])
DEAD_NODE_1_PRUNED = arch(["none", "nor_conv_3x3", "none", "nor_conv_1x1", "none", "avg_pool_3x3"])
# (b) edge 2<-1 is none, so nodes 1 and 2 can swap.
UNORDERED = arch(["nor_conv_3x3", "nor_conv_1x1", "none", "avg_pool_3x3", "nor_conv_3x3", "skip_connect"])


def test_dead_edges_out_of_a_zero_node_change_nothing():
    assert live_edges(DEAD_NODE_1) == DEAD_NODE_1_PRUNED
    assert same_function(DEAD_NODE_1, DEAD_NODE_1_PRUNED)
    space = NB201Space()
    assert space.canonical(DEAD_NODE_1) == space.canonical(DEAD_NODE_1_PRUNED)
    # ... but the same edges out of a live node 1 do matter
    alive = list(DEAD_NODE_1)
    alive[0] = "nor_conv_3x3"
    assert live_edges(alive) == arch(alive)
    assert not same_function(alive, ["nor_conv_3x3", "nor_conv_3x3", "none", "nor_conv_1x1", "none", "avg_pool_3x3"])
    # node 2 never reaches the output: the edges into it are dead
    unused = arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    assert live_edges(unused) == arch("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    assert same_function(unused, live_edges(unused))


def test_mirror_image_is_the_same_function():
    other = mirror(UNORDERED)
    assert other == arch(["nor_conv_1x1", "nor_conv_3x3", "none", "avg_pool_3x3", "skip_connect", "nor_conv_3x3"])
    assert other != UNORDERED and same_function(UNORDERED, other)
    space = NB201Space()
    assert space.canonical(UNORDERED) == space.canonical(other)
    # with edge 2<-1 in use the nodes are ordered, and swapping the operations changes the function
    chained = list(UNORDERED)
    chained[2] = "nor_conv_3x3"
    swapped = [chained[MIRROR[e]] for e in range(len(EDGES))]
    assert not same_function(chained, swapped)


def test_skip_connect_is_the_identity():
    a = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    b = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|"
    assert same_function(a, b)
    # a chain of skips is the input itself: conv(skip(skip(x))) is conv(x)
    assert same_function("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|",
                         "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    # the identity cell is no convolution
    assert not same_function("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
                             "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|")
    # a skip replaced by a pooling is another function
    assert not same_function(a, "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|")


def test_an_instance_used_twice_is_not_two_instances():
    # A: two convolutions, each pooled once. B: one convolution, pooled twice.
    a = arch(["nor_conv_3x3", "nor_conv_3x3", "none", "none", "avg_pool_3x3", "avg_pool_3x3"])
    b = arch(["nor_conv_3x3", "none", "skip_connect", "none", "avg_pool_3x3", "avg_pool_3x3"])
    assert live_edges(a) == a and live_edges(b) == b
    assert not same_function(a, b)
    assert same_function(a, mirror(a))  # A's mirror image is A's function
    # B pools its one convolution twice: two poolings, not one
    assert not same_function(b, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|avg_pool_3x3~1|none~2|")


def test_two_parallel_convolutions_are_not_one():
    one = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"              # c(x)
    twice = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|"  # c(x) + c(x)
    two = "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"       # c1(x) + c2(x)
    two_via_node_2 = "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"
    three = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|skip_connect~1|skip_connect~2|"
    forms = [function_form(arch(t)) for t in (one, twice, two, three)]
    assert len(set(forms)) == 4
    assert same_function(two, two_via_node_2)
    # parallel convolutions of different kinds on one input: order does not matter, kind does
    assert same_function("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|",
                         "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|")
    assert not same_function("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|",
                             "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|")


# ---------------------------------------------------------------------------
# The same function for real: networks with copied weights agree
# ---------------------------------------------------------------------------

OP_KEY = re.compile(r"^cells\.(\d+)\.ops\.(\d+)\.(.*)$")


def _perturbed(net, keys):
    """`net` with the parameters and BatchNorm statistics under `keys` moved away
    from their initial values (so BatchNorm is no identity in eval mode)."""
    g = torch.Generator().manual_seed(1)
    state = net.state_dict()
    for k in keys:
        t = state[k]
        if not t.is_floating_point():
            continue
        if k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(t.shape, generator=g, dtype=t.dtype)
        else:
            state[k] = t + 0.3 * torch.randn(t.shape, generator=g, dtype=t.dtype)
    net.load_state_dict(state)
    return net


def _copy_and_compare(a, b, edge_map):
    """Build both networks with different seeds, copy the weights of `a`'s net
    into `b`'s (an op on edge e of b comes from edge edge_map[e] of a, the
    skeleton as it is), and compare outputs in eval and train mode (in
    float64, so that summing the same terms in another order cannot matter)."""
    torch.manual_seed(0)
    net_a = NB201Network(a, C=4, N=1, num_classes=10, in_channels=1).double()
    torch.manual_seed(1)
    net_b = NB201Network(b, C=4, N=1, num_classes=10, in_channels=1).double()

    def source(key):
        m = OP_KEY.match(key)
        return key if m is None else f"cells.{m[1]}.ops.{edge_map[int(m[2])]}.{m[3]}"

    keys_b = list(net_b.state_dict())
    sources = {k: source(k) for k in keys_b}
    assert any(OP_KEY.match(k) for k in keys_b)
    _perturbed(net_a, set(sources.values()))  # dead ops of a keep their initial (zero-shift) BatchNorm
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        assert not torch.allclose(net_a.eval()(x), net_b.eval()(x), atol=1e-3)  # different weights differ
        state_a = net_a.state_dict()
        net_b.load_state_dict({k: state_a[s].clone() for k, s in sources.items()})
        for mode in ("eval", "train"):
            getattr(net_a, mode)(), getattr(net_b, mode)()
            out_a, out_b = net_a(x), net_b(x)
            assert out_a.abs().max() > 0.1
            torch.testing.assert_close(out_b, out_a, atol=1e-5, rtol=0, msg=lambda m: f"{mode}: {m}")


def test_a_cell_with_dead_edges_computes_what_its_live_edges_compute():
    _copy_and_compare(DEAD_NODE_1, DEAD_NODE_1_PRUNED, edge_map=list(range(len(EDGES))))


def test_mirror_image_computes_the_same_function():
    _copy_and_compare(UNORDERED, mirror(UNORDERED), edge_map=MIRROR)


# ---------------------------------------------------------------------------
# Brute force: every renaming of the operation instances
# ---------------------------------------------------------------------------

def brute_force_form(cell):
    """Written apart from `function_form`: expand every node into the list of
    terms it sums (the input "x" or an instance: a conv or pooling edge and
    what it reads), drop operations on a zero node and instances the output
    does not read, then take the smallest description over every numbering
    of the instances."""
    nodes = [["x"]]
    reads = {}
    for j in range(1, 4):
        summed = []
        for e, (i, t) in enumerate(EDGES):
            op = cell[e]
            if t != j or op == "none" or not nodes[i]:
                continue
            if op == "skip_connect":
                summed += nodes[i]
            else:
                reads[e] = (op, tuple(nodes[i]))
                summed.append(e)
        nodes.append(summed)
    used, stack = set(), [t for t in nodes[3] if t != "x"]
    while stack:
        e = stack.pop()
        if e not in used:
            used.add(e)
            stack += [t for t in reads[e][1] if t != "x"]
    ids = sorted(used)
    best = None
    for numbers in itertools.permutations(range(len(ids))):
        name = {"x": -1, **dict(zip(ids, numbers))}
        form = (tuple(sorted((name[e], reads[e][0], tuple(sorted(name[t] for t in reads[e][1]))) for e in ids)),
                tuple(sorted(name[t] for t in nodes[3])))
        if best is None or form < best:
            best = form
    return best


def _partition(cells, key):
    groups = defaultdict(set)
    for c in cells:
        groups[key(c)].add(c)
    return {frozenset(g) for g in groups.values()}


def test_function_form_partitions_like_the_brute_force():
    rng = random.Random(0)
    pools = [(NB201_OPS, 150), (["none", "skip_connect", "nor_conv_3x3"], 150),
             (["none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3"], 100)]
    cells = {NB201Arch(rng.choice(ops) for _ in EDGES) for ops, n in pools for _ in range(n)}
    cells |= {mirror(c) for c in cells if c[2] == "none"}
    cells = sorted(cells, key=lambda c: c.index)
    assert len(cells) > 450
    ours, brute = _partition(cells, function_form), _partition(cells, brute_force_form)
    merged = [g for g in brute if len(g) > 1]
    assert len(merged) > 50  # the sample does put different cells of one function together
    assert ours == brute
    space = NB201Space()
    for c in cells[::5]:  # the representative is the first cell of the same function
        rep = space.canonical(c)
        assert brute_force_form(rep) == brute_force_form(c) and rep.index <= c.index


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------

def _check_record(r):
    assert r["epochs"] == [1]
    for key in ("val_acc", "test_acc"):
        assert isinstance(r[key], list) and len(r[key]) == 1 and all(0.0 <= a <= 1.0 for a in r[key])
    assert r["seconds"] > 0 and r["train_loss"] > 0


def test_build_in_a_local_process_pool(tmp_path):
    out = tmp_path / "out"
    archs = ARCHS[:4]
    results = build(str(out), protocol=SMALL, archs=archs, workers=2, progress=False)
    assert len(results) == 8 and set(results) == set(tasks(SMALL, archs)) == {(a, s) for a in archs for s in (0, 1)}
    for (a, seed), r in results.items():
        assert (r["arch"], r["seed"]) == (a, seed)
        _check_record(r)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-00000.json"]
    assert load_results(str(out)) == results
    assert json.loads((out / "protocol.json").read_text()) == SMALL


def test_build_resumes_after_a_limit(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    archs = ARCHS[:3]
    trained = []

    def counting(task, protocol):
        trained.append(task)
        return train_one(task, protocol)

    monkeypatch.setattr(bench_builder, "train_one", counting)
    first = build(out, protocol=SMALL, archs=archs, workers=1, progress=False, limit=3)
    assert len(first) == 3 and trained == tasks(SMALL, archs)[:3]
    first = copy.deepcopy(first)
    results = build(out, protocol=SMALL, archs=archs, workers=1, progress=False)
    assert trained == tasks(SMALL, archs)  # the second build trained only the other 3
    assert len(results) == 6 and load_results(out) == results
    assert all(results[task] == record for task, record in first.items())  # the first 3, seconds and all
    shards = sorted(p.name for p in (tmp_path / "out" / "shards").iterdir())
    assert shards == ["shard-00000.json", "shard-00001.json"]
    for r in results.values():
        _check_record(r)
    assert build(out, protocol=SMALL, archs=archs, workers=1, progress=False) == results and len(trained) == 6


KILLED_BUILD = """
import json, sys
from nasedu.bench_builder import build
out, protocol, archs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
build(out, protocol=protocol, archs=archs, workers=1, progress=False)
"""


def test_a_killed_build_resumes_and_trains_each_task_once(tmp_path):
    out = str(tmp_path / "out")
    todo = tasks(SMALL, ARCHS)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, out, json.dumps(SMALL), json.dumps(ARCHS)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not load_results(out):
            assert proc.poll() is None, f"the build exited early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no result within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = load_results(out)
    assert 1 <= len(before) < len(todo)
    results = build(out, protocol=SMALL, archs=ARCHS, workers=1, progress=False)
    records = []
    for path in sorted((tmp_path / "out" / "shards").glob("shard-*.json")):
        records += json.loads(path.read_text())
    counts = Counter((r["arch"], r["seed"]) for r in records)
    assert set(counts) == set(todo) and set(counts.values()) == {1}
    assert set(results) == set(todo) and all(results[t] == before[t] for t in before)
    for r in results.values():
        _check_record(r)


def test_a_changed_protocol_in_the_same_folder_is_refused(tmp_path):
    out = str(tmp_path / "out")
    assert build(out, protocol=SMALL, archs=ARCHS[:1], progress=False, limit=0) == {}
    with pytest.raises(ProtocolMismatchError, match=r"differs in: lr\)"):
        build(out, protocol=dict(SMALL, lr=0.05), archs=ARCHS[:1], progress=False, limit=0)
    with pytest.raises(ProtocolMismatchError, match=r"differs in: seeds, space\)"):
        build(out, protocol=dict(SMALL, seeds=[0], space={"name": "nb201", "C": 4, "N": 1}), progress=False, limit=0)
    with pytest.raises(ProtocolMismatchError, match=r"differs in: threads\)"):
        build(out, protocol={k: v for k, v in SMALL.items() if k != "threads"}, progress=False, limit=0)
    # the same protocol written with a tuple is the same protocol
    assert build(out, protocol=dict(SMALL, eval_epochs=(1,)), archs=ARCHS[:1], progress=False, limit=0) == {}
    assert json.loads((tmp_path / "out" / "protocol.json").read_text()) == SMALL


# ---------------------------------------------------------------------------
# Ray beside local processes
# ---------------------------------------------------------------------------

def _ray_importable():
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _ray_build(*args, **kwargs):
    """`build` on a local Ray, tried twice: on a loaded 2-core machine Ray's own
    agent can miss its fixed 15 s start-up deadline (a Ray limit, not ours)."""
    try:
        return build(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - Ray raises plain exceptions for a failed start
        if "timed out" not in str(error).lower():
            raise
        return build(*args, **kwargs)


@pytest.mark.skipif(not _ray_importable(), reason="ray is not installed (pip install 'nasedu[ray]')")
def test_a_build_resumed_on_ray_gives_the_records_of_local_processes(tmp_path):
    archs = ARCHS[:2]
    local = build(tmp_path / "local", protocol=SMALL, archs=archs, workers=1, progress=False)
    # start locally, stop after one training, finish on Ray: the same shards, the same records
    build(tmp_path / "ray", protocol=SMALL, archs=archs, workers=1, limit=1, progress=False)
    remote = _ray_build(tmp_path / "ray", protocol=SMALL, archs=archs, address="local", workers=2, progress=False)
    import ray

    from nasedu.parallel import shutdown

    assert ray.is_initialized()  # kept for the next call, as a pool is
    shutdown()
    assert not ray.is_initialized()  # the Ray run_tasks started stops with shutdown() (or at exit)
    assert set(local) == set(remote) == set(tasks(SMALL, archs))
    assert len(load_results(tmp_path / "ray")) == len(remote)
    for task in local:
        a, b = local[task], remote[task]
        assert (a["arch"], a["seed"], a["epochs"]) == (b["arch"], b["seed"], b["epochs"]) == (*task, [1])
        for key in ("val_acc", "test_acc"):
            assert a[key] == pytest.approx(b[key], abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)


def test_the_process_pool_is_kept_between_calls():
    """NAS-RL calls run_tasks once per update: its workers start once, not per call."""
    from helpers import process_id

    from nasedu.parallel import shutdown

    shutdown()
    first = {pid for _, pid in run_tasks(process_id, range(4), workers=2, progress=False)}
    second = {pid for _, pid in run_tasks(process_id, range(4), workers=2, progress=False)}
    assert os.getpid() not in first and 1 <= len(first) <= 2
    assert second <= first  # the same worker processes
    shutdown()
    third = {pid for _, pid in run_tasks(process_id, range(4), workers=2, progress=False)}
    assert not third & first  # shutdown() stopped them: fresh ones
    shutdown()


def test_a_ray_address_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayUnavailableError, match=r"address='x' asks for Ray, which is not installed.*nasedu\[ray\]"):
        run_tasks(abs, [1, -2], address="x", progress=False)  # at the call, before any result
    assert issubclass(RayUnavailableError, ImportError)
    assert list(run_tasks(abs, [1, -2], workers=1, progress=False)) == [(1, 1), (-2, 2)]  # no address: no Ray
