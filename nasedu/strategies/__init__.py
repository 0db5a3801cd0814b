"""Search strategies, one file per paper. `STRATEGIES` maps the names the CLI
and `nasedu.search` accept to their classes."""
from .asng import ASNGNAS
from .base import Strategy, SupernetStrategy
from .darts import DARTS
from .nasp import NASP
from .random_search import RandomSearch
from .sge import SGE
from .snas import SNAS

STRATEGIES = {"darts": DARTS, "random": RandomSearch, "sge": SGE, "snas": SNAS, "nasp": NASP, "asng": ASNGNAS}

__all__ = ["Strategy", "SupernetStrategy", "DARTS", "RandomSearch", "SGE", "SNAS", "NASP", "ASNGNAS", "STRATEGIES",
           "get_strategy"]


def get_strategy(name):
    """The strategy class called `name` (e.g. ``"darts"``), or a `Strategy` subclass as it is."""
    if isinstance(name, type) and issubclass(name, Strategy):
        return name
    key = str(name).lower().replace("-", "_")
    if key not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[key]
