"""Tests of spkid.config_checks: the constraint kinds (what each accepts, converts and rejects, and how they
say so), the one validator, and the constraint tables of the four config sections."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, ClassVar

import numpy as np
import pytest

from spkid.config_checks import (
    Interval,
    Options,
    check_field,
    check_fields,
    check_value,
    coerce_value,
    constraints_of,
)
from spkid.errors import ConfigError, ModelError
from spkid.features import FeatureConfig
from spkid.recognizer.config import load_config
from spkid.score import ScoreConfig
from spkid.ubm import EnrollConfig, UBMConfig
from spkid.ubm.config import Subset

SECTIONS = {"features": FeatureConfig, "ubm": UBMConfig, "enroll": EnrollConfig, "score": ScoreConfig}


# ------------------------------------------------------------------------------------------ constraint kinds
@pytest.mark.parametrize(
    ("value", "converted"),
    [(3, 3), (3.0, 3), (np.int64(3), 3), (np.float32(3.0), 3), (10**20, 10**20)],
)
def test_integer_intervals_take_integral_numbers_as_ints(value, converted):
    result = check_value("s.k", value, Interval(int, 1, None))
    assert result == converted and type(result) is int


@pytest.mark.parametrize("value", ["3", True, 2.5, float("nan"), float("inf"), None, [3]])
def test_integer_intervals_reject_other_types(value):
    with pytest.raises(ConfigError, match=rf"^s\.k={re.escape(repr(value))}: expected an integer$"):
        check_value("s.k", value, Interval(int, 1, None))


@pytest.mark.parametrize(("value", "converted"), [(0, 0.0), (2, 2.0), (np.float32(0.5), 0.5), (0.25, 0.25)])
def test_float_intervals_take_every_real_number_as_a_float(value, converted):
    result = check_value("s.k", value, Interval(float, None, None))
    assert result == converted and type(result) is float


@pytest.mark.parametrize("value", ["0.5", False, None, [0.5]])
def test_float_intervals_reject_other_types(value):
    with pytest.raises(ConfigError, match=r": expected a number$"):
        check_value("s.k", value, Interval(float, 0, 1))


@pytest.mark.parametrize(
    ("closed", "admitted"),
    [("both", [0, 0.5, 1]), ("left", [0, 0.5]), ("right", [0.5, 1]), ("neither", [0.5])],
)
def test_interval_bounds_follow_closed(closed, admitted):
    interval = Interval(float, 0, 1, closed=closed)
    for value in (-0.1, 0, 0.5, 1, 1.1, float("nan")):
        assert interval.admits(float(value)) == (value in admitted), (closed, value)


def test_unbounded_sides_exclude_infinity_unless_a_bound_admits_it():
    assert not Interval(float, 0, None).admits(math.inf)
    assert not Interval(float, None, None).admits(-math.inf)
    assert Interval(float, 0, math.inf).admits(math.inf)
    assert not Interval(float, 0, math.inf, closed="left").admits(math.inf)
    assert check_value("s.k", math.inf, Interval(float, 0, math.inf)) == math.inf


@pytest.mark.parametrize(
    ("interval", "allowed"),
    [
        (Interval(int, 1, None), "a positive integer"),
        (Interval(int, 0, None, closed="neither"), "a positive integer"),
        (Interval(int, 0, None), "a non-negative integer"),
        (Interval(int, 2, None), "an integer >= 2"),
        (Interval(int, 0, 2), "an integer in [0, 2]"),
        (Interval(float, 0, None), "a finite number >= 0"),
        (Interval(float, 0, None, closed="neither"), "a finite number > 0"),
        (Interval(float, None, 0, closed="neither"), "a finite number < 0"),
        (Interval(float, None, None), "a finite number"),
        (Interval(float, 0, math.inf), "a number >= 0"),
        (Interval(float, 0, 1), "a number in [0, 1]"),
        (Interval(float, 0, 1, closed="left"), "a number in [0, 1)"),
        (Interval(float, 0, 100, closed="right"), "a number in (0, 100]"),
        (Interval(int, 1, None, what="a rate in Hz"), "a rate in Hz"),
    ],
)
def test_interval_descriptions(interval, allowed):
    assert interval.allowed == allowed
    rejected = -5 if interval.kind is int else math.nan
    with pytest.raises(ConfigError, match=rf"^s\.k={rejected}: must be {re.escape(allowed)}$"):
        check_value("s.k", rejected, interval)


def test_interval_arguments_are_checked():
    with pytest.raises(TypeError):
        Interval(str, 0, 1)
    with pytest.raises(ValueError, match="closed"):
        Interval(float, 0, 1, closed="open")


def test_options_lower_case_strings_and_suggest_close_names():
    options = Options(("hann", "hamming"))
    assert check_value("features.window", "HANN", options) == "hann"
    with pytest.raises(
        ConfigError, match=r"^features\.window='hamm': must be one of hann, hamming \(did you mean"
    ):
        check_value("features.window", "hamm", options)
    with pytest.raises(ConfigError, match=r"^features\.window='zzz': must be one of hann, hamming$"):
        check_value("features.window", "zzz", options)
    with pytest.raises(ConfigError, match=r"^features\.window=3: expected a string$"):
        check_value("features.window", 3, options)


def test_integer_options_convert_like_integers():
    options = Options((2, 3))
    assert check_value("s.v", 2.0, options) == 2 and type(check_value("s.v", 2.0, options)) is int
    with pytest.raises(ConfigError, match=r"^s\.v=1: must be one of 2, 3$"):
        check_value("s.v", 1, options)
    with pytest.raises(ConfigError, match=r"^s\.v='2': expected an integer$"):
        check_value("s.v", "2", options)


@pytest.mark.parametrize("values", [("Hann",), (1, "a"), (True,)])
def test_options_must_be_lower_case_strings_or_integers(values):
    with pytest.raises((TypeError, ValueError)):
        Options(values)


def test_plain_entries_none_bool_str_and_literal_strings():
    assert check_value("s.k", None, [Interval(int, 1, None), None]) is None
    assert check_value("s.k", True, bool) is True
    assert check_value("s.k", "tcp://h:1", [str, None]) == "tcp://h:1"
    assert check_value("s.k", "AUTO", [Interval(int, 1, None), "auto"]) == "auto"
    with pytest.raises(ConfigError, match=r"^s\.k='yes': expected true or false$"):
        check_value("s.k", "yes", bool)
    with pytest.raises(ConfigError, match=r"^s\.k=1: expected true or false$"):
        check_value("s.k", 1, bool)
    with pytest.raises(ConfigError, match=r"^s\.k=3: expected a string or null$"):
        check_value("s.k", 3, [str, None])
    with pytest.raises(TypeError, match="not a constraint"):
        check_value("s.k", 3, int)


def test_alternatives_name_every_arm():
    rate = [Interval(int, 1, None, what="a rate in Hz"), "auto"]
    with pytest.raises(
        ConfigError, match=r"^s\.rate='atuo': must be a rate in Hz or 'auto' \(did you mean 'auto'\?\)$"
    ):
        check_value("s.rate", "atuo", rate)
    with pytest.raises(ConfigError, match=r"^s\.rate=\[1\]: expected a rate in Hz or 'auto'$"):
        check_value("s.rate", [1], rate)
    optional = [Interval(int, 1, None), None]
    with pytest.raises(ConfigError, match=r"^s\.k=0: must be a positive integer or None$"):
        check_value("s.k", 0, optional)
    with pytest.raises(ConfigError, match=r"^s\.k='x': expected an integer or null$"):
        check_value("s.k", "x", optional)
    jobs = [Interval(int, 1, None), Options((-1,), what="-1 (all cores)")]
    assert check_value("s.n_jobs", -1.0, jobs) == -1
    with pytest.raises(ConfigError, match=r"^s\.n_jobs=-2: must be a positive integer or -1 \(all cores\)$"):
        check_value("s.n_jobs", -2, jobs)
    with pytest.raises(ConfigError, match=r"^s\.n_jobs='all': expected an integer or -1 \(all cores\)$"):
        check_value("s.n_jobs", "all", jobs)


def test_subset_parses_lists_and_comma_separated_strings():
    adapt = Subset(("means", "weights", "variances"))
    assert check_value("enroll.adapt", "weights, means", adapt) == ("means", "weights")
    assert check_value("enroll.adapt", ["variances", "means", "means"], adapt) == ("means", "variances")
    for bad in ("means,covariances", "", (), [3]):
        with pytest.raises(
            ConfigError, match=r"^enroll\.adapt=.*: must be a non-empty subset of means, weights"
        ):
            check_value("enroll.adapt", bad, adapt)
    with pytest.raises(ConfigError, match=r"^enroll\.adapt=3: expected a list or a comma-separated string$"):
        check_value("enroll.adapt", 3, adapt)


def test_the_error_class_can_be_chosen():
    with pytest.raises(ModelError, match=r"^relevance_factor=-1: must be a number >= 0$"):
        check_field(EnrollConfig, "relevance_factor", -1, error=ModelError)
    assert check_field(EnrollConfig, "relevance_factor", 16) == 16.0


def test_coerce_value_is_the_loaders_type_check():
    assert coerce_value(40.0, Interval(int, 1, None), "--set: features.n_mels") == 40
    assert coerce_value(-3, Interval(int, 1, None), "x") == -3  # ranges are the section class's business
    with pytest.raises(ConfigError, match=r"^--set: features\.n_mels: expected an integer, got str 'many'$"):
        coerce_value("many", Interval(int, 1, None), "--set: features.n_mels")


# ------------------------------------------------------------------------------------------ tables
@dataclasses.dataclass(frozen=True)
class Section:
    size: int = 2
    scale: float = 1.0
    mode: str = "fast"

    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "size": Interval(int, 1, None),
        "scale": Interval(float, 0, None),
        "mode": Options(("fast", "slow")),
    }

    def __post_init__(self) -> None:
        check_fields(self, "demo")


def test_check_fields_converts_and_names_section_key_value():
    section = Section(size=3.0, scale=2, mode="SLOW")
    assert (section.size, section.scale, section.mode) == (3, 2.0, "slow")
    assert type(section.size) is int and type(section.scale) is float
    with pytest.raises(ConfigError, match=r"^demo\.scale=-1: must be a finite number >= 0$"):
        Section(scale=-1)


def test_a_table_must_cover_exactly_the_fields():
    @dataclasses.dataclass(frozen=True)
    class Missing:
        size: int = 2
        mode: str = "fast"
        _parameter_constraints: ClassVar[dict[str, Any]] = {"size": Interval(int, 1, None), "other": bool}

    message = r"fields without a constraint: \['mode'\], constraints without a field: \['other'\]"
    with pytest.raises(TypeError, match=message):
        constraints_of(Missing)
    assert constraints_of(dataclasses.make_dataclass("Plain", [("size", int)])) is None


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_field_of_the_config_sections_has_a_constraint(section):
    cls = SECTIONS[section]
    fields = {field.name for field in dataclasses.fields(cls)}
    assert set(cls._parameter_constraints) == fields
    assert constraints_of(cls) is cls._parameter_constraints
    defaults = cls()
    assert cls(**{name: getattr(defaults, name) for name in fields}) == defaults  # defaults pass the table


@pytest.mark.parametrize(
    ("section", "field"),
    [(section, field.name) for section, cls in SECTIONS.items() for field in dataclasses.fields(cls)],
)
def test_every_setting_is_checked_and_named(section, field):
    with pytest.raises(ConfigError, match=rf"^{section}\.{field}=<object object at .*>: expected "):
        SECTIONS[section](**{field: object()})


def test_feature_config_to_dict_is_unchanged():
    # Cache keys and stored models hash this dict: the values and their types must not drift.
    expected = {
        "sample_rate": 16000,
        "frame_length_ms": 25.0,
        "frame_shift_ms": 10.0,
        "n_fft": None,
        "pre_emphasis": 0.97,
        "window": "hann",
        "n_mels": 40,
        "f_min_hz": 20.0,
        "f_max_hz": 3800.0,
        "log_mel_range_db": 80.0,
        "n_ceps": 20,
        "use_log_energy": False,
        "lifter": 22.0,
        "delta_width": 2,
        "delta_order": 2,
        "vad": "none",
        "vad_threshold_fraction": 0.2,
        "vad_range_db": 40.0,
        "vad_noise_percentile": 10.0,
        "vad_silence_dbfs": -80.0,
        "vad_context_frames": 2,
        "min_speech_ms": 100.0,
        "cmvn": "utterance",
        "cmvn_window_frames": 300,
        "cmvn_variance": True,
        "cmvn_frames": "speech",
        "cmvn_relevance_frames": 300.0,
        "bands": "single",
        "frontend_version": 3,
    }
    from_yaml = FeatureConfig.from_dict({"n_mels": 40.0, "f_min_hz": 20, "window": "Hann"})
    for config in (FeatureConfig(), from_yaml):
        settings = config.to_dict()
        assert settings == expected
        assert [type(value) for value in settings.values()] == [type(value) for value in expected.values()]
    assert hash(FeatureConfig(n_mels=40.0)) == hash(FeatureConfig())


def test_the_loader_checks_real_sections_by_their_tables():
    config = load_config(None, ["features.n_mels=30.0", "features.sample_rate=8000", "ubm.tol=0"])
    assert config.features.n_mels == 30 and type(config.features.n_mels) is int
    assert config.ubm.tol == 0.0 and type(config.ubm.tol) is float
    with pytest.raises(ConfigError, match=r"^--set: features\.n_mels: expected an integer, got str 'many'$"):
        load_config(None, ["features.n_mels=many"])
    with pytest.raises(ConfigError, match=r"^--set: features\.sample_rate: expected a rate in Hz or 'auto'"):
        load_config(None, ["features.sample_rate=[1]"])
    with pytest.raises(ConfigError, match=r"^--set: ubm\.n_components=-3: must be a positive integer$"):
        load_config(None, ["ubm.n_components=-3"])
    with pytest.raises(ConfigError, match=r"^--set: features\.cmvn='warp': must be one of .*'warping'"):
        load_config(None, ["features.cmvn=warp"])
