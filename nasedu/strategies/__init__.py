"""Search strategies, one file per paper. `STRATEGIES` maps the names the CLI
and `nasedu.search` accept to their classes."""
from .base import Strategy
from .darts import DARTS

STRATEGIES = {"darts": DARTS}

__all__ = ["Strategy", "DARTS", "STRATEGIES", "get_strategy"]


def get_strategy(name):
    """The strategy class called `name` (e.g. ``"darts"``)."""
    if isinstance(name, type) and issubclass(name, Strategy):
        return name
    key = str(name).lower().replace("-", "_")
    if key not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[key]
