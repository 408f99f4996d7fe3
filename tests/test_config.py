"""Tests of spkid.config's generic parts: ``--set`` parsing (values read as YAML), the shipped default.yaml.

Loading configs with sections is tested in ``tests/recognizer/test_load_config.py``.
"""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT

from spkid.config import default_config_path, parse_override
from spkid.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubm.n_components=256", ("ubm", ["n_components"], 256)),
        ("ubm.tol=1e-4", ("ubm", ["tol"], 1e-4)),  # YAML 1.1 would read this as a string
        ("ubm.tol=-2.5E+3", ("ubm", ["tol"], -2500.0)),
        ("features.n_fft=null", ("features", ["n_fft"], None)),
        ("features.n_fft=", ("features", ["n_fft"], None)),
        ("ubm.verbose=true", ("ubm", ["verbose"], True)),
        ("enroll.adapt=[means, variances]", ("enroll", ["adapt"], ["means", "variances"])),
        ("data.root=/data/My Corpus", ("data", ["root"], "/data/My Corpus")),
        ("recipe.split.seed=3", ("recipe", ["split", "seed"], 3)),
        ("score.normalization=a=b", ("score", ["normalization"], "a=b")),
    ],
)
def test_parse_override_types_values_as_yaml(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["ubm.n_components", "n_components=3", ".x=1", "ubm.=1", "=3"])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_override(text)


def test_parse_override_yaml_error_names_the_key():
    with pytest.raises(ConfigError, match=r"--set ubm.n_components.*invalid YAML"):
        parse_override("ubm.n_components=[1, 2")


def test_default_yaml_copies_are_identical():
    repo_copy = REPO_ROOT / "configs" / "default.yaml"
    assert default_config_path().read_bytes() == repo_copy.read_bytes()
