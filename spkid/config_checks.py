"""How settings are checked, in one way: each config section class declares a ``_parameter_constraints``
table (field -> allowed values, as scikit-learn's estimators do) that :func:`check_fields` applies, converting
YAML's numbers on the way (40.0 for an integer, 0 for a float); unknown keys and choices get a did-you-mean.

A table entry is an :class:`Interval`, an :class:`Options`, another :class:`Constraint`, None, ``bool``,
``str``, a string standing for itself (``"auto"``), or a list of these alternatives. Kept free of numpy, like
the generic config machinery (:mod:`spkid.config`) that uses it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spkid.errors import ConfigError, SpkidError, close_match_hint, describe_value, did_you_mean

__all__ = [
    "Constraint",
    "Interval",
    "Options",
    "WrongType",
    "check_field",
    "check_fields",
    "check_settings",
    "check_value",
    "close_match_hint",
    "coerce_value",
    "constraints_of",
    "describe_value",
    "did_you_mean",
]


# --------------------------------------------------------------------------------------------- constraints
class WrongType(Exception):
    """Raised by :meth:`Constraint.coerce` for a value not of its type ("expected ..." in the message)."""


class Constraint:
    """One kind of allowed value: converts a value to its type, then says whether the value is allowed. A kind
    that one setting alone needs may live beside it (``spkid.ubm.config.Subset``).

    ``expected`` completes "expected ..." for a value of the wrong type; ``allowed`` completes "must be ..."
    for a value of the right type that is not allowed.
    """

    expected: str = "a value"
    allowed: str = "a value"

    def coerce(self, value: Any) -> Any:
        """``value`` converted to this constraint's type; raises ``WrongType`` when it cannot be."""
        return value

    def admits(self, value: Any) -> bool:
        """Whether a converted value is allowed."""
        return True

    def choices(self) -> tuple[str, ...]:
        """The words a misspelt string is compared with for a did-you-mean."""
        return ()


def _as_int(value: Any) -> int:
    # YAML and arithmetic give 40.0 for 40: an integral number is an integer. True is not.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WrongType
    if isinstance(value, numbers.Integral):
        return int(value)
    if math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise WrongType


def _as_float(value: Any) -> float:
    # YAML gives 0 for 0.0: every real number is a float. True is not.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WrongType
    return float(value)


class Interval(Constraint):
    """Numbers of ``kind`` (int or float) from ``left`` to ``right``; None leaves a side unbounded.

    ``closed`` says which bounds belong to the interval: "both" (the default), "left", "right" or "neither".
    An unbounded side still excludes infinity; a bound of ``math.inf`` that ``closed`` includes admits it.
    NaN is never admitted. ``what`` replaces the generated description in messages.

    Examples
    --------
    >>> Interval(int, 1, None).allowed
    'a positive integer'
    >>> Interval(float, 0, None, closed="neither").allowed
    'a finite number > 0'
    >>> Interval(float, 0, 1, closed="left").allowed
    'a number in [0, 1)'
    """

    def __init__(
        self,
        kind: type,
        left: float | None,
        right: float | None,
        *,
        closed: str = "both",
        what: str | None = None,
    ) -> None:
        if kind not in (int, float):
            raise TypeError(f"Interval: kind must be int or float, not {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval: closed must be 'both', 'left', 'right' or 'neither', not {closed!r}")
        self.kind, self.left, self.right = kind, left, right
        self.closed_left, self.closed_right = closed in ("both", "left"), closed in ("both", "right")
        self.expected = what or ("an integer" if kind is int else "a number")
        self.allowed = what or self._describe()

    def coerce(self, value: Any) -> Any:
        return _as_int(value) if self.kind is int else _as_float(value)

    def admits(self, value: Any) -> bool:
        if math.isnan(value):
            return False
        left = -math.inf if self.left is None else self.left
        right = math.inf if self.right is None else self.right
        above = value > left or (self.closed_left and self.left is not None and value == left)
        below = value < right or (self.closed_right and self.right is not None and value == right)
        return above and below

    def _describe(self) -> str:
        left, right = self.left, self.right
        noun = "an integer" if self.kind is int else "a number"
        if self.kind is int and left is not None and right is None:
            lowest = math.ceil(left) if self.closed_left else math.floor(left) + 1  # least integer admitted
            names = {1: "a positive integer", 0: "a non-negative integer"}
            return names.get(lowest, f"an integer >= {lowest}")
        if right == math.inf and self.closed_right:
            right = None  # infinity admitted: "a number >= 0"
        elif self.kind is float and (left is None or right is None):
            noun = "a finite number"
        if left is None and right is None:
            return noun
        if right is None:
            return f"{noun} {'>=' if self.closed_left else '>'} {left:g}"
        if left is None:
            return f"{noun} {'<=' if self.closed_right else '<'} {right:g}"
        brackets = "[" if self.closed_left else "(", "]" if self.closed_right else ")"
        return f"{noun} in {brackets[0]}{left:g}, {right:g}{brackets[1]}"


class Options(Constraint):
    """One of ``values``: strings (lower case; a value is lower-cased first, so YAML's ``HANN`` is "hann") or
    integers. ``what`` replaces "one of ..." in messages.

    Examples
    --------
    >>> Options(("utterance", "sliding")).allowed
    'one of utterance, sliding'
    """

    def __init__(self, values: Sequence[str] | Sequence[int], *, what: str | None = None) -> None:
        self.values = tuple(values)
        self.text = all(isinstance(value, str) for value in self.values)
        if not self.text and not all(type(value) is int for value in self.values):
            raise TypeError(f"Options: values must be all strings or all integers, got {self.values!r}")
        if self.text and any(value != value.lower() for value in self.values):
            raise ValueError(f"Options: string values must be lower case, got {self.values!r}")
        self.expected = what or ("a string" if self.text else "an integer")
        self.allowed = what or f"one of {', '.join(map(str, self.values))}"

    def coerce(self, value: Any) -> Any:
        if not self.text:
            return _as_int(value)
        if not isinstance(value, str):
            raise WrongType
        return value.lower()

    def admits(self, value: Any) -> bool:
        return value in self.values

    def choices(self) -> tuple[str, ...]:
        return self.values if self.text else ()


class _OfType(Constraint):
    """Any value of one type, unconverted: ``bool``, ``str`` or None in a table."""

    def __init__(self, kind: type, expected: str, allowed: str) -> None:
        self.kind, self.expected, self.allowed = kind, expected, allowed

    def coerce(self, value: Any) -> Any:
        if not isinstance(value, self.kind):
            raise WrongType
        return value


_PLAIN = {
    None: _OfType(type(None), "null", "None"),
    bool: _OfType(bool, "true or false", "true or false"),
    str: _OfType(str, "a string", "a string"),
}


def _alternatives(spec: Any) -> tuple[Constraint, ...]:
    """A table entry as constraints: one, or a list of alternatives, where None, ``bool`` and ``str`` stand
    for values of those types and a string for itself (``"auto"``)."""
    arms = []
    for item in spec if isinstance(spec, list) else [spec]:
        if isinstance(item, str):
            arms.append(Options((item,), what=repr(item)))
        elif isinstance(item, Constraint) or item in _PLAIN:
            arms.append(item if isinstance(item, Constraint) else _PLAIN[item])
        else:
            raise TypeError(f"not a constraint: {item!r}")
    return tuple(arms)


def _either(phrases: Iterable[str]) -> str:
    unique = list(dict.fromkeys(phrases))
    return unique[0] if len(unique) == 1 else f"{', '.join(unique[:-1])} or {unique[-1]}"


def _converted(arms: Sequence[Constraint], value: Any) -> list[tuple[Constraint, Any]]:
    """``(arm, value converted by it)`` for each alternative whose type ``value`` has."""
    pairs = []
    for arm in arms:
        try:
            pairs.append((arm, arm.coerce(value)))
        except WrongType:
            continue
    return pairs


def check_value(name: str, value: Any, spec: Any, *, error: type[SpkidError] = ConfigError) -> Any:
    """``value`` converted by the first alternative of ``spec`` (a constraint-table entry) that admits it.

    Raises
    ------
    ConfigError (or ``error``)
        ``"<name>=<value>: expected an integer"`` when no alternative takes the value's type,
        ``"<name>=<value>: must be a positive integer"`` when none admits it (with a did-you-mean for a
        misspelt choice).
    """
    arms = _alternatives(spec)
    converted = _converted(arms, value)
    if not converted:
        raise error(f"{name}={value!r}: expected {_either(arm.expected for arm in arms)}")
    for arm, result in converted:
        if arm.admits(result):
            return result
    choices = [choice for arm in arms for choice in arm.choices()]
    hint = close_match_hint(value.lower(), choices) if isinstance(value, str) else ""
    raise error(f"{name}={value!r}: must be {_either(arm.allowed for arm in arms)}{hint}")


def coerce_value(value: Any, spec: Any, where: str) -> Any:
    """``value`` converted by the first alternative of ``spec`` that takes its type, without checking ranges
    (the config loader's type check: ``"<where>: expected an integer, got str 'x'"``)."""
    converted = _converted(_alternatives(spec), value)
    if not converted:
        expected = _either(arm.expected for arm in _alternatives(spec))
        raise ConfigError(f"{where}: expected {expected}, got {describe_value(value)}")
    return converted[0][1]


def constraints_of(cls: type) -> Mapping[str, Any] | None:
    """``cls._parameter_constraints``, or None when ``cls`` has no table.

    Raises
    ------
    TypeError
        The table misses a field of ``cls`` or names one it does not have (a fault of the class).
    """
    table = getattr(cls, "_parameter_constraints", None)
    if table is None:
        return None
    fields = {field.name for field in dataclasses.fields(cls)}
    if set(table) != fields:
        raise TypeError(
            f"{cls.__name__}._parameter_constraints: fields without a constraint: "
            f"{sorted(fields - set(table))}, constraints without a field: {sorted(set(table) - fields)}"
        )
    return table


def check_fields(settings: Any, section: str) -> None:
    """Convert and check every field of the frozen dataclass ``settings`` by its class's constraint table,
    storing the converted values; messages name ``<section>.<field>=<value>``. Called by ``__post_init__``,
    before the class's cross-field rules."""
    table = constraints_of(type(settings))
    if table is None:
        raise TypeError(f"{type(settings).__name__} has no _parameter_constraints")
    for field in dataclasses.fields(settings):
        value = check_value(f"{section}.{field.name}", getattr(settings, field.name), table[field.name])
        object.__setattr__(settings, field.name, value)


def check_field(
    cls: type, field: str, value: Any, *, name: str | None = None, error: type[SpkidError] = ConfigError
) -> Any:
    """``value`` checked by the constraint of ``cls``'s ``field``, for code that takes the same setting as a
    plain argument (messages name ``name``, by default ``field``)."""
    table = constraints_of(cls)
    if table is None:
        raise TypeError(f"{cls.__name__} has no _parameter_constraints")
    return check_value(name or field, value, table[field], error=error)


# --------------------------------------------------------------------------------------------- keys
def check_settings(section: str, cls: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``settings`` as a dict after rejecting keys that are not fields of ``cls`` (with a hint).

    Raises
    ------
    ConfigError
        ``"<section>: unknown setting '<key>' (did you mean '<field>'?)"``, or when ``settings`` is not a
        mapping.
    """
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{section}: expected a mapping of settings, got {type(settings).__name__}")
    known = [field.name for field in dataclasses.fields(cls)]
    for key in settings:
        if key not in known:
            raise ConfigError(f"{section}: unknown setting '{key}'{close_match_hint(key, known)}")
    return dict(settings)
