"""Every numeric argument of every public operator is checked up front (issue 11, item 3):
wrong types - floats for counts, bools, strings, None - NaN, infinities and out-of-range values
raise InvalidArgumentError / ArgumentTypeError naming the method and the argument, when the
pipeline is written, not when it runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamnb import (
    ArgumentTypeError,
    CircuitBreaker,
    DeadLetter,
    InvalidArgumentError,
    RetryPolicy,
    Stream,
)


async def _aid(x: Any) -> Any:
    return x


S = Stream([1, 2, 3])

#: (method, argument, call with the value, minimum allowed or None for any int)
INT_ARGS: list[tuple[str, str, Callable[[Any], object], int | None]] = [
    ("map", "concurrency", lambda v: S.map(_aid, concurrency=v), 1),
    ("enumerate", "start", lambda v: S.enumerate(v), None),
    ("take", "n", lambda v: S.take(v), 0),
    ("skip", "n", lambda v: S.skip(v), 0),
    ("sample", "every", lambda v: S.sample(v), 1),
    ("batch", "size", lambda v: S.batch(v), 1),
    ("batch", "size", lambda v: S.batch(v, within=1.0), 1),
    ("buffer", "size", lambda v: S.buffer(v), 1),
    ("merge", "buffer", lambda v: S.merge(S, buffer=v), 1),
    ("monitor", "total", lambda v: S.monitor("m", total=v), 0),
    ("monitor", "log_every_items", lambda v: S.monitor("m", log_every_items=v), 1),
    ("window", "last", lambda v: S.window(last=v), 1),
    ("DeadLetter", "maxlen", lambda v: DeadLetter(maxlen=v), 1),
    ("RetryPolicy", "max_attempts", lambda v: RetryPolicy(max_attempts=v), 1),
    ("CircuitBreaker", "failure_threshold", lambda v: CircuitBreaker(failure_threshold=v), 1),
]

#: (method, argument, call with the value, minimum, minimum excluded)
NUMBER_ARGS: list[tuple[str, str, Callable[[Any], object], float, bool]] = [
    ("throttle", "rate", lambda v: S.throttle(v), 0.0, True),
    ("batch", "within", lambda v: S.batch(10, within=v), 0.0, True),
    ("buffer", "put_timeout", lambda v: S.buffer(10, put_timeout=v), 0.0, True),
    ("monitor", "log_every", lambda v: S.monitor("m", log_every=v), 0.0, True),
    ("window", "seconds", lambda v: S.window(seconds=v), 0.0, True),
    ("RetryPolicy", "initial", lambda v: RetryPolicy(initial=v), 0.0, False),
    ("RetryPolicy", "multiplier", lambda v: RetryPolicy(multiplier=v), 1.0, False),
    ("RetryPolicy", "max_delay", lambda v: RetryPolicy(max_delay=v), 0.0, False),
    ("CircuitBreaker", "reset_timeout", lambda v: CircuitBreaker(reset_timeout=v), 0.0, False),
]

#: int arguments whose default is None (``map(concurrency=None)``: 1, or what the executor
#: prefers)
OPTIONAL = {
    ("map", "concurrency"),
    ("monitor", "total"),
    ("monitor", "log_every_items"),
    ("window", "last"),
}

not_an_int = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=5),
    st.just(None),
    st.lists(st.integers(), max_size=2),
)
not_a_number = st.one_of(st.booleans(), st.text(max_size=5), st.just([1.0]))


def _named(exc: BaseException, method: str, arg: str) -> None:
    text = str(exc).lower()
    assert method.lower() in text and arg.lower() in text, str(exc)


@pytest.mark.parametrize(("method", "arg", "call", "minimum"), INT_ARGS)
@given(value=not_an_int)
def test_counts_refuse_what_is_not_an_int(
    method: str, arg: str, call: Callable[[Any], object], minimum: int | None, value: Any
) -> None:
    if value is None and (method, arg) in OPTIONAL:
        return  # None is these arguments' default: "not given"
    with pytest.raises(ArgumentTypeError) as info:
        call(value)
    _named(info.value, method, arg)


@pytest.mark.parametrize(("method", "arg", "call", "minimum"), INT_ARGS)
@given(data=st.data())
def test_counts_check_their_range(
    method: str, arg: str, call: Callable[[Any], object], minimum: int | None, data: Any
) -> None:
    if minimum is None:
        call(data.draw(st.integers(-(10**6), 10**6)))  # any int goes
        return
    with pytest.raises(InvalidArgumentError) as info:
        call(data.draw(st.integers(max_value=minimum - 1)))
    _named(info.value, method, arg)
    call(data.draw(st.integers(minimum, minimum + 1000)))  # the bound itself is fine


@pytest.mark.parametrize(("method", "arg", "call", "minimum", "exclusive"), NUMBER_ARGS)
@given(value=not_a_number)
def test_numbers_refuse_what_is_not_a_number(
    method: str,
    arg: str,
    call: Callable[[Any], object],
    minimum: float,
    exclusive: bool,
    value: Any,
) -> None:
    with pytest.raises(ArgumentTypeError) as info:
        call(value)
    _named(info.value, method, arg)


@pytest.mark.parametrize(("method", "arg", "call", "minimum", "exclusive"), NUMBER_ARGS)
@given(data=st.data())
def test_numbers_refuse_nan_infinity_and_out_of_range(
    method: str,
    arg: str,
    call: Callable[[Any], object],
    minimum: float,
    exclusive: bool,
    data: Any,
) -> None:
    below = st.floats(max_value=minimum, exclude_max=not exclusive, allow_nan=False)
    bad = data.draw(st.one_of(st.just(math.nan), st.just(math.inf), below))
    with pytest.raises(InvalidArgumentError) as info:
        call(bad)
    _named(info.value, method, arg)
    call(data.draw(st.floats(minimum + 0.001, minimum + 1000.0)))  # in range: accepted


@pytest.mark.parametrize(
    "call",
    [
        lambda: S.batch(2.5),  # type: ignore[arg-type]
        lambda: S.buffer("10"),  # type: ignore[arg-type]
        lambda: S.throttle(math.nan),
        lambda: S.batch(100, within=math.nan),
        lambda: S.buffer(10, put_timeout=math.nan),
        lambda: S.window(seconds="5"),  # type: ignore[arg-type]
        lambda: S.buffer(10, overflow="explode"),  # type: ignore[arg-type]
        lambda: S.map(str, on_error="ignore"),  # type: ignore[arg-type]
    ],
)
def test_the_examples_of_the_issue(call: Callable[[], object]) -> None:
    with pytest.raises((InvalidArgumentError, ArgumentTypeError)):
        call()


async def test_terminals_check_their_limits() -> None:
    with pytest.raises(ArgumentTypeError, match=r"collect\(limit="):
        await S.collect(limit=2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"to_pandas\(limit=0\)"):
        await S.to_pandas(limit=0)
    with pytest.raises(InvalidArgumentError, match=r"for_each\(concurrency=0\)"):
        await S.for_each(print, concurrency=0)
