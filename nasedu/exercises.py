"""Checking the answers to the notebooks' exercises.

Every exercise starts with ``answer = None`` so that "Run all" never breaks;
its check cell calls `check`, which says clearly whether the answer is right:

    >>> check("edges of a 5-node cell", None, 20)
    ⏳ edges of a 5-node cell: not answered yet (replace None with your answer and run this cell again)
    >>> check("edges of a 5-node cell", 20, 20)
    ✅ edges of a 5-node cell: correct
    True

`check` prints rather than raises, so a wrong answer never stops a notebook.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["check", "matches"]


def matches(answer, expected, rel: float = 1e-6) -> bool:
    """Whether `answer` equals `expected`: numbers within a relative tolerance
    `rel` (integers exactly), sequences and mappings element by element, and a
    callable `expected` is a test applied to `answer`."""
    if callable(expected):
        return bool(expected(answer))
    if isinstance(expected, bool) or isinstance(answer, bool):
        return answer is expected
    if isinstance(expected, int) and isinstance(answer, int):
        return answer == expected
    if isinstance(expected, (int, float)) and isinstance(answer, (int, float)):
        return math.isclose(answer, expected, rel_tol=rel, abs_tol=0.0 if expected else rel)
    if hasattr(answer, "tolist") and not isinstance(answer, (str, bytes)):  # tensors and arrays
        answer = answer.tolist()
    if isinstance(expected, Mapping):
        return (isinstance(answer, Mapping) and set(answer) == set(expected)
                and all(matches(answer[k], v, rel) for k, v in expected.items()))
    if isinstance(expected, (list, tuple)):
        return (isinstance(answer, (list, tuple)) and len(answer) == len(expected)
                and all(matches(a, e, rel) for a, e in zip(answer, expected)))
    return answer == expected


def check(name: str, answer, expected, hint: str = "", *, rel: float = 1e-6):
    """Print whether `answer` to exercise `name` is right and return True/False
    (None while the answer is still None). `expected` is a value or a test
    ``answer -> bool``; `hint` is shown after a wrong answer."""
    if answer is None:
        print(f"⏳ {name}: not answered yet (replace None with your answer and run this cell again)")
        return None
    try:
        right = matches(answer, expected, rel)
    except Exception as err:  # a test that cannot even read the answer means the answer has the wrong form
        right, hint = False, f"{hint} (checking it raised {type(err).__name__}: {err})".strip()
    if right:
        print(f"✅ {name}: correct")
        return True
    print(f"❌ {name}: {answer!r:.200} is not right." + (f" Hint: {hint}" if hint else ""))
    return False
