"""nasedu: learn Neural Architecture Search by running the real algorithms.

    >>> import nasedu
    >>> result = nasedu.search("darts", data="digits", epochs=2)
    >>> nasedu.viz.draw_cell(result.genotype, "normal")

The three parts of NAS are three kinds of object: a search space
(`nasedu.ops`, `nasedu.genotypes`), a supernet holding the shared weights
(`nasedu.supernet`), and a strategy per paper (`nasedu.strategies`), driven by
one loop (`nasedu.search`).
"""
from .budgets import BUDGETS, budget
from .data import load_dataset
from .genotypes import GENOTYPES, PRIMITIVES, Genotype, derive_genotype, load_genotype, parse_genotype
from .network import Network, count_parameters
from .search import Callback, History, SearchResult, choose_device, search
from .strategies import STRATEGIES
from .supernet import Supernet
from . import viz  # last: the dashboard builds on the search loop

__version__ = "0.1.0"

__all__ = [
    "BUDGETS", "budget", "load_dataset", "GENOTYPES", "PRIMITIVES", "Genotype", "derive_genotype",
    "load_genotype", "parse_genotype", "Network", "count_parameters", "Callback", "History", "SearchResult",
    "choose_device", "search", "STRATEGIES", "Supernet", "viz",
]
