"""The docs that run: every public function and class of the package faces shows an ``Examples`` section.

The examples themselves are run by pytest's ``--doctest-modules`` over ``spkid/`` (pyproject.toml), so an
example that stops being true fails the suite; this test makes sure none is missing.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

#: The package faces whose public names must each carry a runnable example.
FACES = ("features", "gmm", "ubm", "score", "metrics", "store", "recognizer", "serve")


def public_objects(face: str) -> list[tuple[str, object]]:
    """``(name, object)`` of every function and class in the face's ``__all__``."""
    module = importlib.import_module(f"spkid.{face}")
    objects = [(name, getattr(module, name)) for name in module.__all__]
    # unwrap: a function behind functools.cache (or another wrapper) is still a public function
    return [
        (name, obj)
        for name, obj in objects
        if inspect.isfunction(inspect.unwrap(obj)) or inspect.isclass(obj)
    ]


def has_example(obj: object) -> bool:
    """Whether the docstring has a numpydoc ``Examples`` section holding at least one ``>>>`` line."""
    text = inspect.getdoc(obj) or ""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Examples" and set(lines[i + 1].strip()) == {"-"}:
            section = "\n".join(lines[i + 2 :])
            return bool(doctest.DocTestParser().get_examples(section))
    return False


@pytest.mark.parametrize("face", FACES)
def test_every_public_name_has_a_runnable_example(face: str):
    missing = [name for name, obj in public_objects(face) if not has_example(obj)]
    assert not missing, f"spkid.{face}: no Examples section with a >>> line in: {', '.join(missing)}"


def test_example_check_sees_a_missing_section():
    def documented() -> None:
        """Do nothing.

        Examples
        --------
        >>> documented()
        """

    def undocumented() -> None:
        """Do nothing (no examples)."""

    assert has_example(documented)
    assert not has_example(undocumented)
