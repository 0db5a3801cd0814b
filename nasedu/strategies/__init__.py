"""Search strategies, one file per paper. `STRATEGIES` maps the names the CLI
and `nasedu.search` accept to their classes."""
from .asng import ASNGNAS
from .base import Strategy, SupernetStrategy
from .beta_darts import BetaDARTS
from .darts import DARTS
from .darts_minus import DARTSMinus
from .enas import ENAS
from .nas_rl import NASRL
from .nasp import NASP
from .random_search import RandomSearch
from .random_ws import RandomWS
from .sdarts import SDARTSADV, SDARTSRS
from .sge import SGE
from .snas import SNAS

STRATEGIES = {"darts": DARTS, "random": RandomSearch, "sge": SGE, "snas": SNAS, "nasp": NASP, "asng": ASNGNAS,
              "sdarts_rs": SDARTSRS, "sdarts_adv": SDARTSADV, "darts_minus": DARTSMinus, "beta_darts": BetaDARTS,
              "nas_rl": NASRL, "enas": ENAS, "random_ws": RandomWS}

__all__ = ["Strategy", "SupernetStrategy", "DARTS", "RandomSearch", "SGE", "SNAS", "NASP", "ASNGNAS", "SDARTSRS",
           "SDARTSADV", "DARTSMinus", "BetaDARTS", "NASRL", "ENAS", "RandomWS",
           "STRATEGIES", "get_strategy"]


def get_strategy(name):
    """The strategy class called `name` (e.g. ``"darts"``), or a `Strategy` subclass as it is."""
    if isinstance(name, type) and issubclass(name, Strategy):
        return name
    key = str(name).lower().replace("-", "_")
    if key not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[key]
