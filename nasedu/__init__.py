"""nasedu: learn Neural Architecture Search by running the real algorithms.

    >>> import nasedu
    >>> result = nasedu.search("darts", data="digits", epochs=2)
    >>> result.architecture.draw("normal")
    >>> nasedu.search("darts", space="nb201")                              # the same DARTS, another space
    >>> nasedu.search("random", space="macro", benchmark="nas-bench-macro")  # rewards from a table

The three parts of NAS are three kinds of object: a search space
(`nasedu.spaces`: the DARTS cell, NAS-Bench-201, NAS-Bench-Macro), a strategy
per paper (`nasedu.strategies`), and performance estimation (the shared
weights of a supernet, `nasedu.evaluate` to train from scratch, and the
ground-truth tables of `nasedu.bench`), driven by one loop (`nasedu.search`).
"""
from . import bench
from .budgets import BUDGETS, budget
from .data import load_dataset
from .genotypes import GENOTYPES, PRIMITIVES, Genotype, derive_genotype, load_genotype, parse_genotype
from .network import Network, count_parameters
from .search import Callback, History, SearchResult, choose_device, search, search_options
from .spaces import SPACES, get_space, load_architecture
from .strategies import STRATEGIES
from .supernet import Supernet
from . import viz  # last: the dashboard builds on the search loop

__version__ = "0.1.0"

__all__ = [
    "BUDGETS", "budget", "load_dataset", "GENOTYPES", "PRIMITIVES", "Genotype", "derive_genotype",
    "load_genotype", "parse_genotype", "Network", "count_parameters", "Callback", "History", "SearchResult",
    "choose_device", "search", "search_options", "STRATEGIES", "SPACES", "get_space", "load_architecture",
    "Supernet", "bench", "viz",
]
