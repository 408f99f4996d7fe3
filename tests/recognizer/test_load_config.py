"""Tests of load_config (spkid.recognizer.config on spkid.config's machinery): YAML loading, --set overrides,
strict keys and types, the shipped default.yaml."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest
import yaml

from spkid.config import default_config_path
from spkid.errors import ConfigError
from spkid.recognizer.config import Config, apply_overrides, config_from_dict, config_to_yaml, load_config


# Small stand-in sections, so these tests exercise the generic machinery whatever the real classes hold.
@dataclasses.dataclass(frozen=True)
class FeatSection:
    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    n_fft: int | None = None

    def __post_init__(self) -> None:
        if self.frame_shift_ms > self.frame_length_ms:
            raise ConfigError(f"features.frame_shift_ms={self.frame_shift_ms}: exceeds frame_length_ms")


@dataclasses.dataclass(frozen=True)
class UbmSection:
    n_components: int = 512
    tol: float = 1e-4
    backend: Literal["local", "joblib", "dask"] = "local"
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.n_components < 1:
            raise ConfigError(f"ubm.n_components={self.n_components}: must be >= 1")


@dataclasses.dataclass(frozen=True)
class EnrollSection:
    relevance_factor: float = 16.0
    adapt: tuple[str, ...] = ("means",)


@dataclasses.dataclass(frozen=True)
class ScoreSection:
    top_c: int = 5
    normalization: str = "none"

    def to_dict(self) -> dict:
        return {"top_c": self.top_c, "normalization": self.normalization}

    @classmethod
    def from_dict(cls, values: dict) -> ScoreSection:
        return cls(**values)


SECTIONS = {"features": FeatSection, "ubm": UbmSection, "enroll": EnrollSection, "score": ScoreSection}


def load(path=None, overrides=()):
    return load_config(path, overrides, section_classes=SECTIONS)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ loading
def test_defaults_without_a_file():
    config = load()
    assert config == Config(FeatSection(), UbmSection(), EnrollSection(), ScoreSection())
    assert dict(config.data) == {} and dict(config.recipe) == {}


def test_file_values_and_overrides_in_order(tmp_path):
    path = write(tmp_path, "ubm:\n  n_components: 64\n  tol: 1e-3\nfeatures:\n  sample_rate: 8000\n")
    config = load(path, ["ubm.n_components=32", "ubm.n_components=16", "enroll.adapt=[means, weights]"])
    assert config.ubm.n_components == 16
    assert config.ubm.tol == pytest.approx(1e-3) and isinstance(config.ubm.tol, float)
    assert config.features.sample_rate == 8000
    assert config.enroll.adapt == ("means", "weights")  # list -> tuple for a tuple field
    assert config.score == ScoreSection()  # untouched sections keep defaults


def test_int_widens_to_float():
    config = load(None, ["ubm.tol=1"])
    assert config.ubm.tol == 1.0 and isinstance(config.ubm.tol, float)


def test_empty_file_and_empty_section_give_defaults(tmp_path):
    assert load(write(tmp_path, "")) == load()
    assert load(write(tmp_path, "ubm:\n")) == load()


def test_free_sections_pass_through(tmp_path):
    path = write(tmp_path, "data:\n  root: /corpus\nrecipe:\n  corpus: librispeech\n  split: {n: 5}\n")
    config = load(path, ["data.root=/elsewhere", "recipe.split.n=3", "recipe.new=x"])
    assert dict(config.data) == {"root": "/elsewhere"}
    assert dict(config.recipe) == {"corpus": "librispeech", "split": {"n": 3}, "new": "x"}


@pytest.mark.parametrize(
    ("text", "overrides", "pattern"),
    [
        ("ubm:\n  n_componets: 3\n", [], r"unknown key ubm.n_componets; did you mean 'ubm.n_components'\?"),
        ("ubmm:\n  n_components: 3\n", [], r"unknown section 'ubmm'; did you mean 'ubm'\?"),
        ("", ["ubm.n_componets=3"], r"unknown key ubm.n_componets; did you mean 'ubm.n_components'\?"),
        ("", ["ubn.n_components=3"], r"unknown section 'ubn'; did you mean 'ubm.n_components'\?"),
        ("", ["n_components=3"], r"did you mean ubm.n_components\?"),
        ("ubm:\n  zzz: 3\n", [], r"unknown key ubm.zzz; valid keys: n_components, tol, backend, verbose"),
        ("", ["ubm.n_components.x=3"], r"section 'ubm' has no nested keys"),
    ],
)
def test_unknown_sections_and_keys_suggest_the_right_one(tmp_path, text, overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load(write(tmp_path, text), overrides)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("ubm.n_components=abc", r"ubm.n_components: expected an integer, got str 'abc'"),
        ("ubm.n_components=true", r"ubm.n_components: expected an integer, got bool True"),
        ("ubm.n_components=2.5", r"ubm.n_components: expected an integer, got float 2.5"),
        ("ubm.tol=[1, 2]", r"ubm.tol: expected a number, got list \[1, 2\]"),
        ("ubm.tol=yes", r"ubm.tol: expected a number, got bool True"),
        ("ubm.verbose=1", r"ubm.verbose: expected true or false, got int 1"),
        ("features.n_fft=big", r"features.n_fft: expected an integer or null, got str 'big'"),
        ("enroll.adapt=[means, 3]", r"enroll.adapt\[1\]: expected a string, got int 3"),
        ("enroll.adapt=3", r"enroll.adapt: expected a list, got int 3"),
        ("ubm.backend=dsak", r"ubm.backend: expected one of 'local', 'joblib', 'dask', got 'dsak'; did you"),
    ],
)
def test_wrong_types_name_key_expected_and_got(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load(None, [override])


def test_invalid_values_are_rejected_by_the_section_class(tmp_path):
    path = write(tmp_path, "features:\n  frame_length_ms: 20\n  frame_shift_ms: 30\n")
    with pytest.raises(ConfigError, match=r"config.yaml: features.frame_shift_ms=30.0: exceeds frame_length"):
        load(path)
    with pytest.raises(ConfigError, match=r"ubm.n_components=-4: must be >= 1"):
        load(None, ["ubm.n_components=-4"])


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("ubm:\n  n_components: [1, 2\n", r"config.yaml:3: invalid YAML"),
        ("ubm:\n  n_components: 1\n   tol: 2\n", r"config.yaml:3: invalid YAML"),
        ("ubm:\n  tol: 1\n  tol: 2\n", r"config.yaml:3: invalid YAML: duplicate key 'tol'"),
        ("- 1\n- 2\n", r"config.yaml: expected a mapping of sections"),
        ("ubm: 3\n", r"section 'ubm' must be a mapping of keys, got int 3"),
        ("ubm: !!python/object:os.system {}\n", r"config.yaml:1: invalid YAML"),
    ],
)
def test_bad_yaml_names_file_and_line(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found"):
        load(tmp_path / "nope.yaml")


def test_yaml_round_trip_and_apply_overrides(tmp_path):
    config = load(None, ["ubm.n_components=8", "enroll.adapt=[means, variances]", "data.root=/x"])
    text = config_to_yaml(config)
    assert yaml.safe_load(text)["enroll"]["adapt"] == ["means", "variances"]
    path = write(tmp_path, text)
    assert load(path) == config
    changed = apply_overrides(config, ["ubm.tol=0.5"], section_classes=SECTIONS)
    assert changed.ubm.tol == 0.5 and changed.ubm.n_components == 8 and changed.enroll == config.enroll
    assert config_from_dict(config.to_dict(), section_classes=SECTIONS) == config


def test_config_is_frozen():
    config = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.ubm = UbmSection(n_components=3)


# ------------------------------------------------------------------------------------------ real sections
def test_real_feature_config_section(tmp_path):
    from spkid.features import FeatureConfig

    classes = {**SECTIONS, "features": FeatureConfig}
    config = load_config(None, ["features.sample_rate=8000", "features.n_fft=512"], section_classes=classes)
    assert config.features == FeatureConfig(
        sample_rate=8000, n_fft=512, cmvn="auto", cmvn_relevance_frames=3000.0, bands="auto"
    )
    with pytest.raises(ConfigError, match=r"features.frame_shift_ms=30.0: is larger than frame_length_ms"):
        load_config(None, ["features.frame_shift_ms=30"], section_classes=classes)
    with pytest.raises(ConfigError, match=r"features.sample_rate=.fast.: must be a rate in Hz or .auto."):
        load_config(None, ["features.sample_rate=fast"], section_classes=classes)


def test_real_sections_parse_their_own_string_forms():
    config = load_config(None, ["enroll.adapt=means,weights", "score.top_c=null", "ubm.n_jobs=-1"])
    assert config.enroll.adapt == ("means", "weights")
    assert config.score.top_c is None and config.ubm.n_jobs == -1
    with pytest.raises(ConfigError, match=r"ubm.n_components"):
        load_config(None, ["ubm.n_components=-3"])
    with pytest.raises(ConfigError, match=r"enroll.adapt"):
        load_config(None, ["enroll.adapt=[means, nonsense]"])


def test_default_yaml_documents_every_setting_and_equals_the_defaults():
    config = load_config(default_config_path())
    assert config == load_config(None)
    raw = yaml.safe_load(default_config_path().read_text())
    for section in ("features", "ubm", "enroll", "score"):
        assert set(raw[section]) == set(config.to_dict()[section]), section
    for line in default_config_path().read_text().splitlines():
        if line.startswith("  ") and ":" in line:  # every setting line carries a comment
            assert "#" in line, line
