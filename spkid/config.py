"""YAML configs → frozen dataclasses, with ``--set section.key=value`` overrides and strict checking.

The generic machinery: a strict YAML loader, ``--set`` overrides, and building typed config sections from
given section classes (frozen dataclasses owned by the modules that use them) plus free-form mapping
sections. Unknown sections and keys are rejected with a did-you-mean; values are type-checked by the section
class's constraint table (:mod:`spkid.config_checks`), or against its annotations when it has none, and the
section class then checks the values themselves. Values never become code (no ``!new:``). The four-section
:class:`~spkid.recognizer.config.Config` built with it lives in :mod:`spkid.recognizer.config`, above the
packages that own its sections.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from spkid.config_checks import Interval, coerce_value, constraints_of, describe_value, did_you_mean
from spkid.errors import ConfigError

__all__ = [
    "FREE_SECTIONS",
    "SectionClasses",
    "build_sections",
    "default_config_path",
    "parse_override",
    "read_config_file",
    "resolve_section_classes",
    "yaml_load",
]

#: Free-form mapping sections, passed through unchecked for recipes.
FREE_SECTIONS: tuple[str, ...] = ("data", "recipe")

#: Section name -> its class, or ``"module:Class"`` naming it (imported when the config is built).
SectionClasses = Mapping[str, "type | str"]


# --------------------------------------------------------------------------------------------- YAML
class _StrictLoader(yaml.SafeLoader):
    """Safe loader that rejects duplicate keys and reads ``1e-4`` as a float (as YAML 1.2 does)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str, *, source: str, show_line: bool = True) -> Any:
    """Parse YAML text safely; syntax errors become :class:`ConfigError` naming ``source`` and the line.

    ``show_line=False`` leaves the line number out (a ``--set`` value is one line).
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader derives from SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None and show_line else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None


def default_config_path() -> Path:
    """The ``default.yaml`` shipped inside the package (identical to ``configs/default.yaml``)."""
    return Path(__file__).resolve().parent / "configs" / "default.yaml"


# --------------------------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[str, list[str], Any]:
    """Split ``"section.key=value"`` into ``(section, key_path, value)``; the value is parsed as YAML.

    Examples
    --------
    >>> parse_override("ubm.n_components=256")
    ('ubm', ['n_components'], 256)
    >>> parse_override("enroll.adapt=[means, variances]")
    ('enroll', ['adapt'], ['means', 'variances'])
    """
    key, sep, raw_value = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. ubm.n_components=256")
    value = yaml_load(raw_value, source=f"--set {key}", show_line=False) if raw_value.strip() else None
    return parts[0], parts[1:], value


# --------------------------------------------------------------------------------------------- loading
def read_config_file(path: str | Path) -> Any:
    """The parsed YAML document of the config file ``path`` (None for an empty file).

    Raises
    ------
    ConfigError
        Missing or unreadable file, or a YAML syntax error (with its line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from None
    return yaml_load(text, source=str(path))


def resolve_section_classes(
    standard: Mapping[str, type], overrides: SectionClasses | None = None
) -> dict[str, type]:
    """``standard`` with entries replaced by ``overrides`` (a class, or ``"module:Class"``, imported here)."""
    spec: dict[str, Any] = {**standard, **(overrides or {})}
    classes = {}
    for name, target in spec.items():
        if isinstance(target, str):
            module_name, _, class_name = target.partition(":")
            target = getattr(importlib.import_module(module_name), class_name)
        classes[name] = target
    return classes


def build_sections(
    raw: Any,
    overrides: Sequence[str],
    source: str,
    classes: Mapping[str, type],
    *,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """The typed sections and the free-form ones of a config document, ``--set`` overrides applied.

    Parameters
    ----------
    raw : object
        The parsed document: a mapping of section name to a mapping of keys (anything else is an error).
    overrides : sequence of str
        ``section.key=value`` strings applied after ``raw``, in order.
    source : str
        What errors blame (a file name, ``"defaults"``, ``"config"``).
    classes : mapping of str to type
        The typed sections: name -> section class (a dataclass, optionally with ``from_dict``).
    defaults : mapping, optional
        Section -> settings that apply before ``raw``'s (where a config's defaults differ from the class's).

    Returns
    -------
    sections : dict of str to object
        One built section object per entry of ``classes``.
    free : dict of str to mapping
        Each of :data:`FREE_SECTIONS` as a read-only mapping.

    Raises
    ------
    ConfigError
        Unknown section or key (with a did-you-mean), wrong value type, or a value the section class rejects.
    """
    known = [*classes, *FREE_SECTIONS]
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of sections ({', '.join(known)}), got {describe_value(raw)}"
        )
    merged: dict[str, dict[str, Any]] = {}
    from_overrides: dict[str, set[str]] = {}  # section -> keys last set by --set, so errors can say so
    for section, body in raw.items():
        if section not in known:
            raise ConfigError(f"{source}: unknown section {section!r}{did_you_mean(section, known)}")
        if body is not None and not isinstance(body, Mapping):
            raise ConfigError(
                f"{source}: section {section!r} must be a mapping of keys, got {describe_value(body)}"
            )
        merged[str(section)] = copy.deepcopy(dict(body or {}))
    for section, settings in (defaults or {}).items():
        merged[section] = {**settings, **merged.get(section, {})}
    for text in overrides:
        section, key_path, value = _parse_override_with_hint(text, classes)
        where = f"--set {'.'.join([section, *key_path])}"
        if section not in known:
            all_keys = {f"{s}.{f.name}": s for s, cls in classes.items() for f in dataclasses.fields(cls)}
            hint = did_you_mean(".".join([section, *key_path]), list(all_keys))
            raise ConfigError(f"{where}: unknown section {section!r}{hint or did_you_mean(section, known)}")
        if section in classes and len(key_path) > 1:
            raise ConfigError(f"{where}: section {section!r} has no nested keys")
        target = merged.setdefault(section, {})
        for part in key_path[:-1]:
            child = target.get(part)
            target[part] = child = dict(child) if isinstance(child, Mapping) else {}
            target = child
        target[key_path[-1]] = value
        from_overrides.setdefault(section, set()).add(key_path[0])
    sections = {
        name: _build_section(name, cls, merged.get(name, {}), source, from_overrides.get(name, set()))
        for name, cls in classes.items()
    }
    free = {name: types.MappingProxyType(merged.get(name, {})) for name in FREE_SECTIONS}
    return sections, free


def _parse_override_with_hint(text: str, classes: Mapping[str, type]) -> tuple[str, list[str], Any]:
    try:
        return parse_override(text)
    except ConfigError as exc:
        bare_key = text.partition("=")[0].strip()
        owners = [name for name, cls in classes.items() if bare_key in _field_names(cls)]
        if "." in bare_key or not owners:
            raise
        raise ConfigError(f"{exc}; did you mean {owners[0]}.{bare_key}?") from None


def _field_names(cls: type) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def _build_section(
    name: str, cls: type, values: Mapping[str, Any], source: str, overridden: set[str] = frozenset()
) -> Any:
    """Type-check and build one section; errors name ``--set`` instead of ``source`` for overridden keys."""

    def origin(key: str | None) -> str:
        # A value from --set is blamed on --set; with no file, every non-default value came from --set.
        return "--set" if key in overridden or (overridden and source == "defaults") else source

    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    table = constraints_of(cls)
    try:
        hints = {} if table is not None else typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the class's own checks
        hints = {}
    checked = {}
    for key, value in values.items():
        if key not in fields:
            qualified = [f"{name}.{field}" for field in fields]
            hint = did_you_mean(f"{name}.{key}", qualified) or f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"{origin(key)}: unknown key {name}.{key}{hint}")
        where = f"{origin(key)}: {name}.{key}"
        if table is not None:  # the class converts and checks the value again, by the same table
            coerce_value(value, table[key], where)
            checked[key] = value
        else:
            checked[key] = _check_type(value, hints.get(key, Any), where)
    try:
        if hasattr(cls, "from_dict"):
            return cls.from_dict(checked)
        return cls(**checked)
    except ConfigError as exc:
        message = str(exc)
        prefix = "" if message.startswith(name) else f"{name}: "
        named = re.match(rf"{re.escape(name)}\.(\w+)", message)  # "ubm.n_components=-3: must be ..."
        raise ConfigError(f"{origin(named.group(1) if named else None)}: {prefix}{message}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin(None)}: {name}: {exc}") from None


#: Scalar annotations as constraint-table entries, so sections without a table convert values the same way.
_SCALARS: dict[Any, Any] = {
    bool: bool,
    int: Interval(int, None, None),
    float: Interval(float, None, None),
    str: str,
    type(None): None,
}
_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """``value`` converted to fit ``annotation`` (a field of a section class without a constraint table):
    scalars as the constraint tables convert them, lists to tuples for tuple fields, strings to Paths."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in _SCALARS:
        return coerce_value(value, _SCALARS[annotation], where)
    if origin is typing.Union or origin is types.UnionType:
        for arm in args:
            try:
                return _check_type(value, arm, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {' or '.join(map(_name, args))}, got {describe_value(value)}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(arg) for arg in args}:
            return value
        hint = did_you_mean(value, [str(arg) for arg in args]) if isinstance(value, str) else ""
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}{hint}")
    if annotation is Path:
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
        return value  # Any, or an annotation this checker does not model: the section class validates it
    raise ConfigError(f"{where}: expected {_name(annotation)}, got {describe_value(value)}")


def _check_sequence(value: Sequence[Any], kind: type, args: tuple[Any, ...], where: str) -> Any:
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        items = [_check_type(item, arg, f"{where}[{i}]") for i, (item, arg) in pairs]
    else:
        item_type = args[0] if args else Any
        items = [_check_type(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    return tuple(items) if kind is tuple else items


def _name(annotation: Any) -> str:
    if annotation in _NAMES:
        return _NAMES[annotation]
    origin = typing.get_origin(annotation)
    if origin in (tuple, list) or annotation in (tuple, list):
        return "a list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))
