"""Tests of the Speech Commands v0.02 preparer (speech-commands-sid protocol), its recipe registration and
the shipped recipe: a tiny fake tree in the published layout, the error cases, the real test set counts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from spkid.corpora.protocol import Protocol
from spkid.corpora.speech_commands import list_clips, prepare_speech_commands
from spkid.corpora.synthetic import make_speakers
from spkid.errors import ConfigError, DataError
from spkid.recipe import STAGES, run_recipe
from spkid.recipe_config import load_recipe, prepare_protocol

RATE = 16000
REPO_ROOT = Path(__file__).resolve().parent.parent
# As in conftest.py: the shared data beside the repository, or where SPKID_SHARED_DATA points.
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
RECIPE = REPO_ROOT / "recipes" / "speech_commands" / "recipe.yaml"
REAL_ROOT = SHARED_DATA / "speech_commands_test_v0.02"
ENROLLED = ["0a1b2c3d", "4e5f6a7b", "c0ffee00"]  # 5 clips each
POOL = ["deadbeef", "f00dcafe"]  # 2 clips each


def clip_names(speaker: str, ext: str) -> list[str]:
    """Five clips of an enrolled speaker over two words and ``_unknown_``, in sorted relative-path order."""
    return [
        f"_unknown_/bed_{speaker}_nohash_0{ext}",
        f"_unknown_/wow_{speaker}_nohash_1{ext}",
        f"no/{speaker}_nohash_0{ext}",
        f"yes/{speaker}_nohash_0{ext}",
        f"yes/{speaker}_nohash_1{ext}",
    ]


#: Relative path of every clip of the fake tree (the third speaker in FLAC, as in ../shared/data).
FAKE_CLIPS = [
    *clip_names(ENROLLED[0], ".wav"),
    *clip_names(ENROLLED[1], ".wav"),
    *clip_names(ENROLLED[2], ".flac"),
    f"yes/{POOL[0]}_nohash_0.wav",
    f"_unknown_/cat_{POOL[0]}_nohash_3.wav",
    f"no/{POOL[1]}_nohash_0.flac",
    f"no/{POOL[1]}_nohash_1.flac",
]


def write_clip(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    signal = 0.1 * np.random.default_rng(seed).standard_normal(RATE // 10)
    soundfile.write(path, signal.astype(np.float32), RATE, subtype="PCM_16")
    return path


@pytest.fixture()
def fake_root(tmp_path: Path) -> Path:
    """A tiny Speech Commands tree in the published layout, plus what a release holds beside the clips."""
    root = tmp_path / "speech_commands"
    for seed, relative in enumerate(FAKE_CLIPS):
        write_clip(root / relative, seed)
    # Not clips: the release's noise and silence folders, its top-level documents, stray non-audio files.
    write_clip(root / "_background_noise_" / "white_noise.wav", 100)
    write_clip(root / "_silence_" / "clip_000.wav", 101)
    (root / "README.md").write_text("Speech Commands\n")
    (root / "testing_list.txt").write_text("yes/0a1b2c3d_nohash_0.wav\n")
    (root / "yes" / ".DS_Store").write_bytes(b"\0")
    (root / "no" / "notes.txt").write_text("not audio\n")
    return root


def ids(utterances) -> list[str]:
    return [utterance.id for utterance in utterances]


# ------------------------------------------------------------------------------------------------ preparer
def test_list_clips_reads_both_formats_and_skips_what_is_not_a_clip(fake_root: Path):
    clips = list_clips(fake_root)
    assert ids(clips) == sorted(name.rsplit(".", 1)[0] for name in FAKE_CLIPS)
    by_id = {clip.id: clip for clip in clips}
    clip = by_id[f"_unknown_/bed_{ENROLLED[0]}_nohash_0"]
    assert clip.speaker == ENROLLED[0]
    assert clip.path == fake_root / "_unknown_" / f"bed_{ENROLLED[0]}_nohash_0.wav"
    assert by_id[f"yes/{ENROLLED[2]}_nohash_1"].path.suffix == ".flac"
    assert {clip.speaker for clip in clips} == {*ENROLLED, *POOL}
    assert not any(char.isspace() for clip in clips for char in clip.id)


def test_protocol_splits_in_sorted_relative_path_order(fake_root: Path):
    protocol = prepare_speech_commands(fake_root, min_clips=3, n_enroll=2)
    assert protocol.name == "speech_commands:3:2"
    assert list(protocol.enroll) == ENROLLED
    for speaker in ENROLLED:
        # The _unknown_ clips sort first ('_' < 'a'), so they enroll; the word-folder clips are the tests.
        assert ids(protocol.enroll[speaker]) == [
            f"_unknown_/bed_{speaker}_nohash_0", f"_unknown_/wow_{speaker}_nohash_1",
        ]  # fmt: skip
    tests = [("no", 0), ("yes", 0), ("yes", 1)]
    assert ids(protocol.test) == sorted(f"{word}/{s}_nohash_{n}" for s in ENROLLED for word, n in tests)
    assert ids(protocol.train) == [
        f"_unknown_/cat_{POOL[0]}_nohash_3", f"no/{POOL[1]}_nohash_0", f"no/{POOL[1]}_nohash_1",
        f"yes/{POOL[0]}_nohash_0",
    ]  # fmt: skip
    assert {clip.speaker for clip in protocol.train} == set(POOL)
    assert len(protocol.trials) == len(protocol.test) * len(ENROLLED) == 27
    assert sum(trial.target for trial in protocol.trials) == 9
    assert all(
        trial.target == (trial.test.split("/")[-1].split("_")[0] == trial.enroll) for trial in protocol.trials
    )
    # min_clips is "at least": with 5 every enrolled speaker still qualifies; the rest go to the pool.
    assert list(prepare_speech_commands(fake_root, min_clips=5, n_enroll=4).enroll) == ENROLLED


def test_protocol_round_trips_through_json(fake_root: Path, tmp_path: Path):
    protocol = prepare_speech_commands(fake_root, min_clips=3, n_enroll=2)
    protocol.save(tmp_path / "protocol.json")
    assert Protocol.load(tmp_path / "protocol.json") == protocol


def test_layout_errors(fake_root: Path, tmp_path: Path):
    with pytest.raises(DataError, match=r"nowhere: no such Speech Commands folder"):
        list_clips(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    (empty / "_background_noise_").mkdir(parents=True)
    write_clip(empty / "_background_noise_" / "running_tap.wav", 0)
    with pytest.raises(DataError, match=r"empty: no <word>/<speaker>_nohash_<n>.wav or .flac clips"):
        prepare_speech_commands(empty)

    bad = write_clip(fake_root / "yes" / "0A1B2C3D_nohash_2.wav", 0)  # upper-case hex: not the layout
    with pytest.raises(DataError, match=r"yes/0A1B2C3D_nohash_2.wav: expected <word>/<speaker>_nohash_<n>"):
        list_clips(fake_root)
    bad.unlink()
    bad = write_clip(fake_root / "_unknown_" / f"{ENROLLED[0]}_nohash_2.flac", 0)  # no word before speaker
    with pytest.raises(DataError, match=r"_nohash_2.flac: expected _unknown_/<word>_<speaker>_nohash_<n>"):
        prepare_speech_commands(fake_root, min_clips=3, n_enroll=2)
    bad.unlink()
    write_clip(fake_root / "yes" / f"{ENROLLED[0]}_nohash_0.flac", 0)  # the same clip twice
    with pytest.raises(DataError, match=rf"clip yes/{ENROLLED[0]}_nohash_0 also exists as"):
        list_clips(fake_root)


def test_split_errors(fake_root: Path):
    with pytest.raises(DataError, match=r"n_enroll \(3\) must be smaller than min_clips \(3\)"):
        prepare_speech_commands(fake_root, min_clips=3, n_enroll=3)
    with pytest.raises(DataError, match="n_enroll must be at least 1, got 0"):
        prepare_speech_commands(fake_root, min_clips=3, n_enroll=0)
    with pytest.raises(DataError, match=r"no speaker has at least min_clips=6 clips \(the most is 5\)"):
        prepare_speech_commands(fake_root, min_clips=6, n_enroll=2)
    with pytest.raises(DataError, match="the UBM pool is empty; raise min_clips"):
        prepare_speech_commands(fake_root, min_clips=2, n_enroll=1)


@pytest.mark.realdata
def test_real_speech_commands_protocol():
    """The speech-commands-sid counts of ../shared/data/README.md on the real test set."""
    if not REAL_ROOT.is_dir():
        pytest.skip(f"real-audio test needs {REAL_ROOT} (the shared Speech Commands test set); not here")
    protocol = prepare_speech_commands(REAL_ROOT)
    assert len(list_clips(REAL_ROOT)) == 4482
    assert len(protocol.enroll) == 53
    assert all(len(clips) == 10 for clips in protocol.enroll.values())
    assert len(protocol.test) == 2132
    assert len(protocol.train) == 1820
    assert len({clip.speaker for clip in protocol.train}) == 186
    assert not {clip.speaker for clip in protocol.train} & set(protocol.enroll)
    assert len(protocol.trials) == 2132 * 53 and sum(trial.target for trial in protocol.trials) == 2132


# ------------------------------------------------------------------------------------------------ recipe
def test_recipe_config_accepts_speech_commands(fake_root: Path, tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    document = {"recipe": {"corpus": "speech_commands"}, "data": {"root": str(fake_root)}}
    path.write_text(yaml.safe_dump(document))
    settings = load_recipe(path)
    assert settings.corpus == "speech_commands"
    assert settings.options["min_clips"] == 30 and settings.options["n_enroll"] == 10
    assert settings.output_dir.name == "speech_commands" and settings.output_dir.parent.name == "exp"
    with pytest.raises(DataError, match="no speaker has at least min_clips=30 clips"):
        prepare_protocol(settings)
    settings = load_recipe(path, ["recipe.min_clips=3", "recipe.n_enroll=2"])
    assert prepare_protocol(settings) == prepare_speech_commands(fake_root, min_clips=3, n_enroll=2)


def test_recipe_config_rejects_bad_speech_commands_keys(fake_root: Path, tmp_path: Path):
    cases = [
        ({"min_clip": 3}, "unknown key recipe.min_clip for corpus speech_commands; did you mean 'min_clips'"),
        ({"enroll_fraction": 0.5}, "unknown key recipe.enroll_fraction for corpus speech_commands"),
        ({"min_clips": "30"}, "recipe.min_clips: expected int"),
        ({"n_enroll": 2.5}, "recipe.n_enroll: expected int"),
    ]
    path = tmp_path / "bad.yaml"
    for recipe, message in cases:
        document = {"recipe": {"corpus": "speech_commands", **recipe}, "data": {"root": str(fake_root)}}
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
        f"data.root={synthetic_speech_commands}", f"recipe.output_dir={tmp_path / 'exp'}", "recipe.n_jobs=1",
        "recipe.min_clips=5", "recipe.n_enroll=2", "recipe.top_k=2",
        "ubm.n_components=8", "ubm.max_iter=3", "score.cohort_size=4",
    ]  # fmt: skip
    result = run_recipe(RECIPE, overrides=overrides)
    assert {stage.name: stage.status for stage in result.stages} == {stage: "ran" for stage in STAGES}
    assert result.metrics["n_identification_tests"] == 3 * 3
    assert result.metrics["n_target"] == 9 and result.metrics["n_nontarget"] == 18
    assert 0.0 <= result.metrics["identification_accuracy"] <= 1.0
