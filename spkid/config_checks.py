"""Checks shared by configs and their section dataclasses: unknown keys and choices with a did-you-mean, and
values checked against type annotations.

Kept free of numpy, like the generic config machinery (:mod:`spkid.config`) that uses it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spkid.errors import ConfigError


def _closest(word: object, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (difflib ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def close_match_hint(word: object, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the candidate closest to ``word``, or ``""`` when none is close."""
    close = _closest(word, candidates)
    return f" (did you mean '{close}'?)" if close else ""


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


def check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` (ints widened to float, sequences to tuples) if it fits ``annotation``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is typing.Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arm in (arg for arg in args if arg is not type(None)):
            try:
                return check_type(value, arm, where)
            except ConfigError:
                continue
        expected = " or ".join(_name(arg) for arg in args)
        raise ConfigError(f"{where}: expected {expected}, got {describe_value(value)}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(arg) for arg in args}:
            return value
        options = [str(arg) for arg in args]
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}{hint}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif annotation is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif origin in (tuple, list) or annotation in (tuple, list):
        if isinstance(value, (list, tuple)):
            return _check_sequence(value, origin or annotation, args, where)
        if isinstance(value, str) and args and args[0] is str:
            return value  # e.g. enroll.adapt=means,weights: the section class parses the string form
    elif origin in (dict, Mapping) or annotation in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
    else:
        return value  # an annotation this checker does not model: the section class validates it
    raise ConfigError(f"{where}: expected {_name(annotation)}, got {describe_value(value)}")


def _check_sequence(value: Sequence[Any], kind: type, args: tuple[Any, ...], where: str) -> Any:
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        items = [check_type(item, arg, f"{where}[{i}]") for i, (item, arg) in pairs]
    else:
        item_type = args[0] if args else Any
        items = [check_type(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    return tuple(items) if kind is tuple else items


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the candidate closest to ``word``, or ``""`` when none is close."""
    close = _closest(word, candidates)
    return f"; did you mean {close!r}?" if close else ""


def _name(annotation: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation)
    if origin in (tuple, list) or annotation in (tuple, list):
        return "a list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def describe_value(value: Any) -> str:
    """``"<type> <repr>"``, the repr cut at 40 characters, for error messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
