"""Search spaces: which architectures exist, how they are encoded, derived,
drawn, counted and built (see `nasedu.spaces.base.SearchSpace`).

- ``"darts"``: the DARTS cell (Liu et al. 2019), `DartsCellSpace`;
- ``"nb201"``: the NAS-Bench-201 cell (Dong & Yang 2020), `NB201Space`;
- ``"macro"``: the NAS-Bench-Macro chain (Su et al. 2021), `MacroSpace`;
- ``"chain"``: NAS-RL's chain of convolutions with skips (Zoph & Le 2017), `ChainSpace`.

``get_space("nb201", C=8)`` builds one; ``get_space(space.config())``
rebuilds a space from the settings a checkpoint or a history saved.
"""
from __future__ import annotations

import inspect
import json
import os

from .base import Architecture, ArchitectureError, SearchSpace, Table
from .chain import ChainArch, ChainSpace
from .darts import DartsCellSpace
from .macro import MacroArch, MacroSpace
from .nb201 import NB201Arch, NB201Space

SPACES = {"darts": DartsCellSpace, "nb201": NB201Space, "macro": MacroSpace, "chain": ChainSpace}

__all__ = ["SPACES", "get_space", "space_name", "space_options", "load_architecture", "save_architecture", "SearchSpace",
           "Architecture", "ArchitectureError", "Table", "DartsCellSpace", "NB201Space", "NB201Arch", "MacroSpace",
           "MacroArch", "ChainSpace", "ChainArch"]

ALIASES = {"darts_cell": "darts", "nas_bench_201": "nb201", "nasbench201": "nb201", "nas_bench_macro": "macro",
           "nas_rl_chain": "chain"}


def space_name(name) -> str:
    """The registry name of space `name` (aliases such as ``"nas-bench-201"`` resolved)."""
    key = str(name).lower().replace("-", "_")
    return ALIASES.get(key, key)


def space_options(name) -> dict:
    """The options space `name` takes, with their defaults."""
    key = space_name(name)
    if key not in SPACES:
        raise ValueError(f"unknown search space {name!r}; available: {', '.join(SPACES)}")
    cls = SPACES[key]
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()}


def get_space(space="darts", **options) -> SearchSpace:
    """A search space: a `SearchSpace` (returned as it is, or rebuilt with
    `options` changed), a name (``"darts"``, ``"nb201"``, ``"macro"``) with
    options, or the dict of a space's `config()`."""
    if isinstance(space, SearchSpace):
        return space if not options else type(space)(**{**_options_of(space), **options})
    if isinstance(space, dict):
        options = {**{k: v for k, v in space.items() if k != "name"}, **options}
        space = space.get("name", "darts")
    key = space_name(space)
    if key not in SPACES:
        raise ValueError(f"unknown search space {space!r}; available: {', '.join(SPACES)}")
    return SPACES[key](**options)


def _options_of(space: SearchSpace) -> dict:
    return {k: v for k, v in space.config().items() if k != "name"}


ARCHITECTURE_FILE = "architecture.json"


def save_architecture(space: SearchSpace, architecture, path) -> None:
    """Write `architecture` with its space's settings as JSON (what a search
    folder's ``architecture.json`` holds)."""
    from ..checkpoint import atomic_write

    text = json.dumps({"space": space.config(), "architecture": architecture.to_data()}, indent=1)
    atomic_write(path, lambda f: f.write((text + "\n").encode()))


def load_architecture(name_or_path, space=None):
    """``(space, architecture)`` from a search folder (its architecture.json,
    or genotype.json from older versions), an ``architecture.json`` file, a
    genotype file (JSON or the printed ``Genotype(...)``), a published
    genotype's name (``"DARTS_V2"``), or the text of an architecture of
    `space` (a NAS-Bench-201 arch string, a NAS-Bench-Macro code). Raises
    ArchitectureError saying what was expected."""
    from ..genotypes import GENOTYPES

    text = str(name_or_path)
    if os.path.isdir(text):
        found = [os.path.join(text, f) for f in (ARCHITECTURE_FILE, "genotype.json") if os.path.isfile(os.path.join(text, f))]
        if not found:
            raise ArchitectureError(f"{text} is a folder without {ARCHITECTURE_FILE}; "
                                    "give an architecture file or a search's out folder")
        text = found[0]
    if os.path.isfile(text):
        return _load_file(text, space)
    if space is None and text in GENOTYPES:
        return DartsCellSpace.fitting(GENOTYPES[text]), GENOTYPES[text]
    if space is None:
        if os.sep in text or "/" in text or os.path.splitext(text)[1]:
            raise ArchitectureError(f"architecture file {text!r} not found")
        raise ArchitectureError(f"{text!r} is neither a published genotype nor a file; published genotypes: "
                                f"{', '.join(GENOTYPES)} (or give the space of an architecture written out, "
                                "e.g. a NAS-Bench-201 arch string with space 'nb201')")
    s = get_space(space)
    return s, s.parse(text)


def _load_file(path, space):
    from ..genotypes import genotype_from_data, parse_genotype

    try:
        with open(path, encoding="utf-8") as f:
            content = f.read()
    except UnicodeDecodeError:
        raise ArchitectureError(f"{path} is not a text file; expected an architecture.json, genotype JSON "
                                "or a printed Genotype(...)") from None
    except OSError as e:
        raise ArchitectureError(f"cannot read {path}: {e.strerror or e}") from None
    stripped = content.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(content)
        except json.JSONDecodeError as e:
            raise ArchitectureError(f"{path}: not valid JSON: {e}") from None
        if isinstance(data, dict) and "architecture" in data and "space" in data:
            s = get_space(data["space"])
            return s, _in_file(path, s.from_data, data["architecture"])
        if space is None:  # a plain genotype, as the DARTS code and older nasedu wrote them
            g = _in_file(path, genotype_from_data, data)
            return DartsCellSpace.fitting(g), g
        s = get_space(space)
        return s, _in_file(path, s.from_data, data)
    if space is None:
        g = _in_file(path, parse_genotype, content.strip())
        return DartsCellSpace.fitting(g), g
    s = get_space(space)
    return s, _in_file(path, s.parse, content.strip())


def _in_file(path, read, value):
    try:
        return read(value)
    except ArchitectureError as e:
        raise type(e)(f"{path}: {e}") from None
