"""The `nasedu` command: search, draw an architecture, train one from scratch.

    nasedu search darts --data digits --epochs 4 --out runs/darts
    nasedu search darts --space nb201 --data digits
    nasedu search random --space macro --benchmark nas-bench-macro
    nasedu draw DARTS_V2 --out cells
    nasedu train DARTS_V2 --data digits
    nasedu bench show nb201-digits
    nasedu bench build runs/nb201-digits --workers 2     # or --address auto for a Ray cluster

Run ``nasedu COMMAND --help`` for each command's options.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

__all__ = ["main", "build_parser"]

EXIT_DIVERGED = 1       # a loss or the architecture parameters became NaN or infinite
EXIT_USAGE = 2          # bad arguments, bad files, a data set that cannot be had (argparse's code too)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class CLIError(ValueError):
    """A problem with the command line the user can fix; printed without a traceback."""


def _int_at_least(minimum: int, words: str):
    """An argparse type: a whole number >= `minimum`, else a message saying so."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {words}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "at least 1")
_nonnegative_int = _int_at_least(0, "0 or more")


def _fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def _say(text=""):
    """Print to stdout without breaking a tqdm bar on stderr."""
    from tqdm.auto import tqdm

    tqdm.write(str(text), file=sys.stdout)


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------

_Formatter = argparse.RawDescriptionHelpFormatter


SEARCH_HELP = """\
Run an architecture search (one strategy per paper) on a search space and
derive the architecture it found.

Shows a progress bar and one line per epoch, and writes into --out:
  architecture.json         the derived architecture and its space (load it with `nasedu draw` / `nasedu train`)
  <part>.svg                its drawings (normal.svg and reduce.svg for the DARTS cell)
  history.json              per-step and per-epoch metrics
  checkpoint.pt             the whole state, saved every epoch and on Ctrl-C

Running the same command again on the same --out resumes from the checkpoint
instead of starting over (and does nothing if the search had finished). Ctrl-C
stops at the next step boundary and saves a checkpoint.

Any option of the space or of the strategy can be set with -o NAME=VALUE
(e.g. -o N=1 for NAS-Bench-201's cells per stage, -o alpha_lr=0.01 for DARTS).

examples:
  nasedu search darts --data digits --epochs 4
  nasedu search darts --space nb201 --data digits
  nasedu search random --space macro --benchmark nas-bench-macro --epochs 5
  nasedu search darts --budget full --out runs/darts-cifar10     # on a GPU
  nasedu search darts --data synthetic --epochs 2 --C 4 --layers 2 --out /tmp/tiny
"""

DRAW_HELP = """\
Draw an architecture as SVG files, one per part (<name>_normal.svg and
<name>_reduce.svg for a DARTS genotype, <name>_cell.svg for NAS-Bench-201,
<name>_network.svg for NAS-Bench-Macro), and print their paths.

ARCHITECTURE is a published genotype's name (see --list), an architecture.json
or genotype JSON file, a text file holding a printed genotype
(Genotype(normal=[('sep_conv_3x3', 0), ...], ...)), a search's --out folder,
or, with --space, an architecture written out (a NAS-Bench-201 arch string, a
NAS-Bench-Macro code).

examples:
  nasedu draw --list
  nasedu draw DARTS_V2 --out cells
  nasedu draw runs/darts-digits-seed0
  nasedu draw --space macro 22212220
"""

TRAIN_HELP = """\
Train an architecture from scratch and report its test accuracy and parameter
count: the papers' performance estimation (DARTS Section 3.2, Appendix A.2).

For a DARTS genotype on cifar10 the defaults are the paper's network (20
cells, 36 channels, auxiliary head, drop path 0.2, cutout) for 100 epochs
instead of 600; on every other data set a small network (5 cells, 8 channels)
without those regularisers, for 10 epochs, which takes well under a minute on
a laptop CPU for digits. Architectures of other spaces train in their space's
network (the one their search used) for 10 epochs. Every default can be overridden.

examples:
  nasedu train DARTS_V2 --data digits
  nasedu train runs/darts-digits-seed0 --epochs 20 --seed 1
  nasedu train --space nb201 "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
  nasedu train DARTS_V2 --data cifar10 --out runs/train-darts-v2       # on a GPU
"""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nasedu", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Learn Neural Architecture Search by running the real algorithms.",
        epilog="examples:\n  nasedu search darts --data digits --epochs 4\n  nasedu draw DARTS_V2\n"
               "  nasedu train DARTS_V2 --data digits\n\nRun `nasedu COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"nasedu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # -- search ---------------------------------------------------------------
    p = sub.add_parser("search", help="run an architecture search", description=SEARCH_HELP,
                       formatter_class=_Formatter)
    p.add_argument("strategy", help="search strategy, e.g. darts or random (one per paper; see nasedu.STRATEGIES)")
    p.add_argument("--space", default="darts", metavar="NAME",
                   help="search space: darts (the DARTS cell), nb201 (NAS-Bench-201), macro (NAS-Bench-Macro) "
                        "or chain (NAS-RL's chain, for nas_rl); default: darts")
    p.add_argument("--data", default=None, metavar="NAME",
                   help="data set: digits (offline), synthetic, mnist, fashion_mnist or cifar10 "
                        "(default: the budget's: digits for quick, cifar10 for full)")
    p.add_argument("--benchmark", default=None, metavar="TABLE",
                   help="search a ground-truth table instead of training (strategies that need only a reward), "
                        "e.g. nas-bench-macro with --space macro")
    p.add_argument("--budget", choices=["quick", "full"], default=None,
                   help="quick (small supernet, minutes on a CPU) or full (the paper's settings, for a GPU); "
                        "default: $NASEDU_BUDGET, else full with a CUDA GPU and quick without")
    p.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                   help="search epochs (default: the budget's)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed: initial weights and batch order; the data split is fixed (default: 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: runs/<strategy>-<data>-seed<seed>)")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                   help="batch size (default: the budget's)")
    p.add_argument("--device", default=None, metavar="D",
                   help="cpu, cuda, cuda:1, mps (default: $NASEDU_DEVICE, else the best one)")
    p.add_argument("--C", type=_positive_int, default=None, dest="C", metavar="C",
                   help="supernet width: initial channels (default: the budget's)")
    p.add_argument("--layers", type=_positive_int, default=None, metavar="N",
                   help="supernet depth: number of cells (default: the budget's)")
    p.add_argument("-o", "--option", action="append", default=[], metavar="NAME=VALUE", type=_option,
                   help="any option of the space or the strategy (repeatable), e.g. -o N=1 -o alpha_lr=0.01")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the per-epoch lines stay)")
    p.set_defaults(run=_cmd_search)

    # -- draw -----------------------------------------------------------------
    p = sub.add_parser("draw", help="draw an architecture (a genotype's two cells, ...) as SVG",
                       description=DRAW_HELP, formatter_class=_Formatter)
    p.add_argument("architecture", nargs="?", metavar="NAME_OR_FILE",
                   help="published genotype name (see --list), architecture or genotype file, or a search folder")
    p.add_argument("--space", default=None, metavar="NAME",
                   help="read ARCHITECTURE as an architecture of this space (nb201, macro)")
    p.add_argument("--out", default=".", metavar="DIR", help="folder to write the SVG files into (default: .)")
    p.add_argument("--list", action="store_true", help="list the published genotypes and exit")
    p.set_defaults(run=_cmd_draw)

    # -- train ----------------------------------------------------------------
    p = sub.add_parser("train", help="train an architecture from scratch and test it", description=TRAIN_HELP,
                       formatter_class=_Formatter)
    p.add_argument("architecture", metavar="ARCHITECTURE",
                   help="published genotype name, architecture or genotype file, or a search folder")
    p.add_argument("--space", default=None, metavar="NAME",
                   help="read ARCHITECTURE as an architecture of this space (nb201, macro)")
    p.add_argument("--data", default="digits", metavar="NAME",
                   help="data set: digits (offline), synthetic, mnist, fashion_mnist or cifar10 (default: digits)")
    p.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                   help="training epochs (default: 100 for cifar10, 10 otherwise)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed: initial weights and batch order; the data split is fixed (default: 0)")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                   help="batch size (default: 96 for cifar10, 64 otherwise)")
    p.add_argument("--lr", type=float, default=0.025,
                   help="initial learning rate, cosine-annealed to 0 (default: 0.025)")
    p.add_argument("--C", type=_positive_int, default=None, dest="C", metavar="C",
                   help="network width: initial channels (default: 36 for cifar10, 8 otherwise)")
    p.add_argument("--layers", type=_positive_int, default=None, metavar="N",
                   help="network depth: number of cells, at least 3 (default: 20 for cifar10, 5 otherwise)")
    p.add_argument("--auxiliary", action=argparse.BooleanOptionalAction, default=None,
                   help="auxiliary head weighted 0.4 (default: on for cifar10, off otherwise)")
    p.add_argument("--drop-path-prob", type=float, default=None, metavar="P",
                   help="drop path probability, grown linearly from 0 over the epochs "
                        "(default: 0.2 for cifar10, 0 otherwise)")
    p.add_argument("--cutout", type=_nonnegative_int, default=None, metavar="PIXELS",
                   help="cutout length in pixels, 0 for none (default: 16 for cifar10, 0 otherwise)")
    p.add_argument("--device", default=None, metavar="D",
                   help="cpu, cuda, cuda:1, mps (default: $NASEDU_DEVICE, else the best one)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write train.json (settings, per-epoch history, result) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the per-epoch lines stay)")
    p.set_defaults(run=_cmd_train)

    # -- bench ------------------------------------------------------------------
    p = sub.add_parser("bench", help="ground-truth tables: show one, or build the NAS-Bench-201 digits table",
                       description="Show a ground-truth table, or build the nb201-digits table (resumable: run "
                                   "the same command again after a stop) and finish it into the file nasedu loads.")
    bench = p.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    q = bench.add_parser("show", help="summarise a table: size, accuracy range, best and worst")
    q.add_argument("name", nargs="?", default="nb201-digits", help="nb201-digits or nas-bench-macro")
    q.set_defaults(run=_cmd_bench_show)
    q = bench.add_parser("build", help="train every cell (saved as it goes; run again to resume)")
    q.add_argument("out", metavar="DIR", help="folder for the protocol and the result shards")
    q.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="local worker processes (default: $NASEDU_WORKERS, else one per core)")
    q.add_argument("--address", default=None, metavar="ADDR",
                   help="run on Ray at this address instead (auto, ray://host:10001, or local)")
    q.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="stop after N new trainings")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(run=_cmd_bench_build)
    q = bench.add_parser("finish", help="write the finished build as a compressed table")
    q.add_argument("out", metavar="DIR", help="the build's folder")
    q.add_argument("table", metavar="FILE", help="where to write the table (e.g. nasedu/tables/nb201-digits.json.gz)")
    q.add_argument("--where", default=None, help="where the build ran, recorded in the table")
    q.set_defaults(run=_cmd_bench_finish)
    return parser


# ---------------------------------------------------------------------------
# Reading an architecture argument
# ---------------------------------------------------------------------------

def _option(text):
    """An argparse type: NAME=VALUE, the value read as JSON (numbers, true, lists) or else as text."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _read_architecture(arg, space=None):
    """(space, architecture, label) for a published name, a file, a search folder or, with `space`, a text."""
    from .architecture import ArchitectureError
    from .spaces import load_architecture

    try:
        s, architecture = load_architecture(arg, space)
    except ArchitectureError as e:
        raise CLIError(str(e)) from None
    path = os.path.normpath(arg)
    label = os.path.basename(path) if os.path.isdir(arg) else os.path.splitext(os.path.basename(path))[0]
    if not os.path.exists(arg):
        label = s.name if space else arg  # an architecture written out: name the files after its space
    return s, architecture, label


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

def _cmd_search(args):
    from .budgets import budget_settings
    from .callbacks import PrintLog
    from .search import Callback, CheckpointMismatchError, search
    from .strategies import get_strategy

    cls = get_strategy(args.strategy)  # ValueError naming the available strategies
    settings = budget_settings(args.budget, cls.name, args.space, args.data)
    data = args.benchmark or args.data or settings["data"]
    space = "" if args.space == "darts" else f"{args.space}-"
    out = args.out or os.path.join("runs", f"{cls.name}-{space}{str(data).lower().replace('-', '_')}-seed{args.seed}")
    options = dict(args.option)
    for name in ("C", "layers"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)

    class _Start(Callback):
        def on_search_start(self, run):
            self.resumed_at, self.total = run.global_step, run.total_steps
            if run.global_step and run.global_step >= run.total_steps:
                _say(f"the search in {out} already finished all {run.config['epochs']} epochs; nothing to train")

    start = _Start()
    _say(f"{cls.name} search of the {args.space} space on {data} ({settings['budget']} budget), writing into {out}")
    try:
        result = search(cls.name, args.data, space=args.space, benchmark=args.benchmark, budget=settings["budget"],
                        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device, out=out,
                        resume=True, callbacks=[start, PrintLog(print=_say)], progress=not args.no_progress,
                        **options)
    except CheckpointMismatchError as e:
        raise CLIError(f"{e.problem} Pass another --out, or delete {out} to start over there.") from None
    except TypeError as e:  # an unknown -o option: the message lists the options there are
        raise CLIError(str(e).replace("search() got", "got").replace("option(s)", "-o option(s)")) from None
    if result.interrupted:
        done = len(result.history.epochs)
        print(f"nasedu: search stopped after {done} finished epoch(s); the checkpoint is in {out}. "
              f"To resume, run the same command again:\n  {_resume_command(args, out)}", file=sys.stderr)
        return EXIT_INTERRUPTED

    written = [os.path.join(out, name) for name in ("architecture.json", "history.json", "checkpoint.pt")]
    try:
        from .viz import save_cell_svgs

        written[1:1] = [str(p) for p in save_cell_svgs(result.architecture, out)]
    except RuntimeError as e:  # neither graphviz's `dot` nor kaleido: the search result is still good
        print(f"nasedu: warning: could not draw the architecture: {e}", file=sys.stderr)
    _say("wrote: " + ", ".join(written))
    return 0


def _resume_command(args, out):
    parts = ["nasedu", "search", args.strategy]
    for flag, value in (("--space", None if args.space == "darts" else args.space), ("--data", args.data),
                        ("--benchmark", args.benchmark), ("--budget", args.budget), ("--epochs", args.epochs),
                        ("--seed", args.seed), ("--batch-size", args.batch_size), ("--C", args.C),
                        ("--layers", args.layers), ("--device", args.device)):
        if value is not None:
            parts += [flag, str(value)]
    for name, value in args.option:
        parts += ["-o", f"{name}={json.dumps(value) if not isinstance(value, str) else value}"]
    parts += ["--out", out]
    return " ".join(shlex.quote(p) for p in parts)


def _cmd_draw(args):
    from .genotypes import GENOTYPES

    if args.list:
        for name in GENOTYPES:
            print(name)
        return 0
    if not args.architecture:
        raise CLIError("give a genotype name or an architecture file to draw, or --list to list the published ones")
    _, architecture, label = _read_architecture(args.architecture, args.space)
    from .viz import save_cell_svgs

    try:
        paths = save_cell_svgs(architecture, args.out, prefix=f"{label}_")
    except RuntimeError as e:  # no way to render SVG here: say how to get one
        print(f"nasedu: error: {e}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def _cmd_train(args):
    from .data import DATASETS
    from .evaluate import train_architecture, train_defaults, train_genotype

    space, architecture, label = _read_architecture(args.architecture, args.space)
    key = str(args.data).lower().replace("-", "_")
    if key not in DATASETS:
        raise CLIError(f"unknown data set {args.data!r}; available: {', '.join(DATASETS)}")
    if args.drop_path_prob is not None and not 0.0 <= args.drop_path_prob < 1.0:
        raise CLIError(f"--drop-path-prob must be in [0, 1), got {args.drop_path_prob}")
    darts = space.name == "darts"
    if not darts:
        given = [flag for flag, value in (("--layers", args.layers), ("--auxiliary", args.auxiliary),
                                          ("--drop-path-prob", args.drop_path_prob), ("--cutout", args.cutout))
                 if value is not None]
        if given:
            raise CLIError(f"{', '.join(given)} apply to DARTS cells only; this is a {space.title} architecture")
    defaults = train_defaults(key) if darts else {"epochs": 10, "budget": f"{space.title} network"}
    epochs = args.epochs or defaults["epochs"]
    _say(f"training {label} from scratch on {args.data} ({defaults['budget']} defaults, {epochs} epochs)")

    def log(r):
        _say(f"epoch {r['epoch'] + 1}/{epochs}  train loss {_fmt(r['train_loss'])} acc {_fmt(r['train_acc'])}  "
             f"val loss {_fmt(r['val_loss'])} acc {_fmt(r['val_acc'])}  lr {r['lr']:.4f}  ({r['seconds']:.1f} s)")

    common = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                  progress=not args.no_progress, callback=log)
    if darts:
        result = train_genotype(architecture, args.data, C=args.C, layers=args.layers, auxiliary=args.auxiliary,
                                drop_path_prob=args.drop_path_prob, cutout_length=args.cutout, **common)
        c = result.config
        _say(f"network: {c['layers']} cells, C={c['C']}, auxiliary {'on' if c['auxiliary'] else 'off'}, "
             f"drop path {c['drop_path_prob']}, cutout {c['cutout']}")
    else:
        common = {k: v for k, v in common.items() if v is not None}
        result = train_architecture(architecture, args.data, space=space, **({"C": args.C} if args.C else {}), **common)
        c = result.config
        _say(f"network: the {space.title} network of {space.config()}")
    _say(f"test accuracy: {result.test_acc:.4f} ({100 * result.test_acc:.2f}%)  "
         f"val accuracy: {result.val_acc:.4f}")
    _say(f"parameters: {result.params:,} ({result.params_m:.3f} M, auxiliary head excluded)  "
         f"time: {result.seconds:.1f} s")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "train.json")
        with open(path, "w") as f:
            json.dump({"space": space.config(), "architecture": architecture.to_data(), "config": c,
                       "test_acc": result.test_acc, "val_acc": result.val_acc, "params": result.params,
                       "seconds": result.seconds, "history": result.history}, f, indent=1)
        _say(f"wrote: {path}")
    return 0


# ---------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------

def _cmd_bench_show(args):
    from . import bench

    table = bench.load(args.name)
    _say(repr(table))
    for label, record in (("best", table.best()), ("worst", table.worst())):
        _say(f"{label:>6}: {record.test_acc:.4f}  {record.architecture}")
    build = table.meta.get("build")
    if build:
        _say(f"built from {build['trainings']:,} trainings, {build['cpu_seconds'] / 3600:.1f} CPU-hours "
             f"({build['where']})")
    return 0


def _cmd_bench_build(args):
    from .bench_builder import build, tasks

    results = build(args.out, workers=args.workers, address=args.address, limit=args.limit,
                    progress=not args.no_progress)
    total = len(tasks())
    _say(f"{len(results):,} of {total:,} trainings saved in {args.out}"
         + ("" if len(results) < total else f"; next: nasedu bench finish {args.out} TABLE"))
    return 0


def _cmd_bench_finish(args):
    from .bench_builder import finish

    try:
        table = finish(args.out, args.table, where=args.where)
    except RuntimeError as e:
        raise CLIError(str(e)) from None
    _say(f"wrote {args.table}: {len(table['records']):,} distinct cells from {table['build']['trainings']:,} trainings")
    return 0


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def main(argv=None) -> int:
    """Run the `nasedu` command with `argv` (default: ``sys.argv[1:]``) and
    return its exit status: 0, 1 when a search diverged (NaN), 2 for a
    problem with the arguments or files, 130 when stopped by Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with argparse's message, 0 for --help / --version
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE

    from .data import DatasetUnavailableError
    from .search import SearchDiverged

    try:
        return args.run(args)
    except SearchDiverged as e:
        print(f"nasedu: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("\nnasedu: stopped (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, DatasetUnavailableError) as e:
        # Our own errors (CLIError, GenotypeError, CheckpointMismatchError, unknown
        # strategy / data set / budget) are ValueErrors with a message that says what to do.
        print(f"nasedu: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
