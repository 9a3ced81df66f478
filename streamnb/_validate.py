"""Up-front checks of the arguments of public operators and constructors.

Every numeric argument streamnb accepts goes through one of these, so a wrong value fails
where it was written - naming the method and the argument - and never later, deep in a run
(``batch('10')`` used to fail with "'<' not supported between 'str' and 'int'", ``throttle(nan)``
silently lifted the rate limit). Bools are refused as numbers; NaN and infinities are refused
unless a bound is explicitly allowed to be infinite.

Example::

    check_int("batch", "size", size, minimum=1)
    check_seconds("batch", "within", within)           # float > 0, finite
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["check_choice", "check_int", "check_number", "check_seconds"]


def check_int(method: str, arg: str, value: Any, *, minimum: int | None = 0) -> int:
    """``value`` as an int >= ``minimum``; floats (even 3.0), bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(
            f"{method}({arg}={value!r}): expected an int, got {type(value).__name__}"
        )
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{method}({arg}={value}): must be >= {minimum}")
    return value


def check_number(
    method: str,
    arg: str,
    value: Any,
    *,
    minimum: float | None = None,
    exclusive: bool = False,
    maximum: float | None = None,
    allow_inf: bool = False,
) -> float:
    """``value`` as a float in range; NaN (and infinities unless ``allow_inf``) refused.

    ``minimum`` is inclusive unless ``exclusive``; ``maximum`` is inclusive.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentTypeError(
            f"{method}({arg}={value!r}): expected a number, got {type(value).__name__}"
        )
    x = float(value)
    if math.isnan(x):
        raise InvalidArgumentError(f"{method}({arg}=nan): must be a number, not NaN")
    if math.isinf(x) and not allow_inf:
        raise InvalidArgumentError(f"{method}({arg}={x}): must be finite")
    if minimum is not None and (x <= minimum if exclusive else x < minimum):
        op = ">" if exclusive else ">="
        raise InvalidArgumentError(f"{method}({arg}={value!r}): must be {op} {minimum:g}")
    if maximum is not None and x > maximum:
        raise InvalidArgumentError(f"{method}({arg}={value!r}): must be <= {maximum:g}")
    return x


def check_seconds(method: str, arg: str, value: Any) -> float:
    """A duration: a finite number of seconds > 0."""
    return check_number(method, arg, value, minimum=0.0, exclusive=True)


def check_choice(method: str, arg: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (strings)."""
    if value not in choices:
        raise InvalidArgumentError(
            f"{method}({arg}={value!r}): expected one of {', '.join(map(repr, choices))}"
        )
    return str(value)
