"""Tests of the Speech Commands corpus in recipes: its recipe keys, and the shipped recipe
(``recipes/speech_commands/recipe.yaml``) on the defaults and end to end on synthetic voices."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, clip_names

from spkid.corpora.speech_commands import prepare_speech_commands
from spkid.corpora.synthetic import make_speakers
from spkid.errors import ConfigError, DataError
from spkid.recipes import STAGES, load_recipe, prepare_protocol, run_recipe

RECIPE = REPO_ROOT / "recipes" / "speech_commands" / "recipe.yaml"


def test_recipe_config_accepts_speech_commands(fake_speech_commands: Path, tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    document = {"recipe": {"corpus": "speech_commands"}, "data": {"root": str(fake_speech_commands)}}
    path.write_text(yaml.safe_dump(document))
    settings = load_recipe(path)
    assert settings.corpus == "speech_commands"
    assert settings.options["min_clips"] == 30 and settings.options["n_enroll"] == 10
    assert settings.output_dir.name == "speech_commands" and settings.output_dir.parent.name == "exp"
    with pytest.raises(DataError, match="no speaker has at least min_clips=30 clips"):
        prepare_protocol(settings)
    settings = load_recipe(path, ["recipe.min_clips=3", "recipe.n_enroll=2"])
    expected = prepare_speech_commands(fake_speech_commands, min_clips=3, n_enroll=2)
    assert prepare_protocol(settings) == expected


def test_recipe_config_rejects_bad_speech_commands_keys(fake_speech_commands: Path, tmp_path: Path):
    cases = [
        ({"min_clip": 3}, "unknown key recipe.min_clip for corpus speech_commands; did you mean 'min_clips'"),
        ({"enroll_fraction": 0.5}, "unknown key recipe.enroll_fraction for corpus speech_commands"),
        ({"min_clips": "30"}, "recipe.min_clips: expected int"),
        ({"n_enroll": 2.5}, "recipe.n_enroll: expected int"),
    ]
    path = tmp_path / "bad.yaml"
    for recipe, message in cases:
        document = {
            "recipe": {"corpus": "speech_commands", **recipe},
            "data": {"root": str(fake_speech_commands)},
        }
        path.write_text(yaml.safe_dump(document))
        with pytest.raises(ConfigError, match=message):
            load_recipe(path)
    path.write_text(yaml.safe_dump({"recipe": {"corpus": "speech_commands"}, "data": {"ubm_root": "x"}}))
    with pytest.raises(ConfigError, match="unknown key data.ubm_root for corpus speech_commands"):
        load_recipe(path)


def test_shipped_recipe_runs_the_defaults():
    document = yaml.safe_load(RECIPE.read_text())
    # Only recipe: and data:, so the run measures spkid's default features, UBM, enrollment and scoring.
    assert set(document) == {"recipe", "data"}
    settings = load_recipe(RECIPE)
    assert settings.corpus == "speech_commands"
    assert settings.data["root"] == (REPO_ROOT / "../shared/data/speech_commands_test_v0.02").absolute()
    assert settings.options["output_dir"] == "exp/speech_commands"
    assert (settings.n_jobs, settings.options["top_k"]) == (2, 5)
    assert (settings.options["min_clips"], settings.options["n_enroll"]) == (30, 10)


@pytest.fixture()
def synthetic_speech_commands(tmp_path: Path) -> Path:
    """Synthetic voices (spkid.corpora.synthetic) renamed into the Speech Commands layout: 3 speakers with 5
    one-second clips, 3 speakers with 3."""
    root = tmp_path / "speech_commands"
    generated = make_speakers(tmp_path / "generated", n_speakers=6, n_utterances=5, duration_s=1.0, seed=11)
    speakers = ["0a1b2c3d", "4e5f6a7b", "c0ffee00", "deadbeef", "f00dcafe", "12345678"]
    for index, (speaker, files) in enumerate(zip(speakers, generated.values(), strict=True)):
        names = clip_names(speaker, ".wav")[: 5 if index < 3 else 3]
        for file, name in zip(sorted(files), names, strict=False):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(file, root / name)
    return root


def test_shipped_recipe_runs_end_to_end(synthetic_speech_commands: Path, tmp_path: Path):
    overrides = [
        f"data.root={synthetic_speech_commands}",
        f"recipe.output_dir={tmp_path / 'exp'}",
        "recipe.n_jobs=1",
        "recipe.min_clips=5",
        "recipe.n_enroll=2",
        "recipe.top_k=2",
        "ubm.n_components=8",
        "ubm.max_iter=3",
        "score.cohort_size=4",
    ]
    lines: list[str] = []
    result = run_recipe(RECIPE, overrides=overrides, log=lines.append)
    assert {stage.name: stage.status for stage in result.stages} == {stage: "ran" for stage in STAGES}
    # the defaults' cmvn: auto made its choice at the enroll stage (on all the recipe's speakers, few as they
    # are), and the log says which
    assert any(line.startswith("  features.cmvn auto: loudness ") for line in lines), lines
    assert not (tmp_path / "exp" / "enroll" / "model" / "level-kept").exists()
    assert result.metrics["n_identification_tests"] == 3 * 3
    assert result.metrics["n_target"] == 9 and result.metrics["n_nontarget"] == 18
    assert 0.0 <= result.metrics["identification_accuracy"] <= 1.0
