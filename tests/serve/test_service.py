"""SpeakerService in-process: the same answers as ``spkid.recognizer.identify`` / ``verify``, and the CPUs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from spkid.recognizer import (
    Recognizer,
    enroll_from_audio,
    identify,
    load_config,
    remove_speaker,
    train_ubm_from_audio,
    verify,
)
from spkid.serve import NotFoundError, SpeakerService

#: 16 components with top-C 10: scoring reads the speaker bank (raw scores: a cohort of 3 is too small to
#: normalise with; adaptive S-norm, the default, with a cohort of 10); exact scoring reads the speaker files.
SETTINGS = {
    "bank": ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=3"],
    "bank, asnorm": ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=10"],
    "speaker files": ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=10", "score.top_c=null"],
}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def model(request: pytest.FixtureRequest, synthetic_corpus: Path, tmp_path_factory) -> dict:
    """A model with 5 of the 6 speakers enrolled (3 files each); the last speaker is held back."""
    root = tmp_path_factory.mktemp("service")
    speakers = {p.name: sorted(p.glob("*.wav")) for p in sorted(synthetic_corpus.iterdir()) if p.is_dir()}
    model_dir = root / "model"
    train_ubm_from_audio(model_dir, [synthetic_corpus], load_config(None, SETTINGS[request.param]))
    names = sorted(speakers)
    enroll_from_audio(model_dir, {name: speakers[name][:3] for name in names[:-1]})
    tests = [files[3] for files in speakers.values()] + [files[4] for files in speakers.values()]
    return {"dir": model_dir, "tests": tests, "speakers": speakers, "kind": request.param}


def _identify_both(service: SpeakerService, model: dict, **options) -> tuple[list, list]:
    paths = [str(file) for file in model["tests"]]
    served = [found.to_dict() for found in service.identify(paths=paths, **options)]
    direct = [found.to_dict() for found in identify(model["dir"], paths, **options).results]
    return served, direct


def test_service_answers_as_the_recognizer(model: dict):
    service = SpeakerService(model["dir"], allow_paths=True)
    assert (service.snapshot().bank is not None) == model["kind"].startswith("bank")
    normalization = Recognizer.open(model["dir"]).score_config.normalization
    assert normalization == ("none" if model["kind"] == "bank" else "asnorm")
    closed, _ = _identify_both(service, model, top_k=1)
    middle = sorted(found["scores"][0]["score"] for found in closed)[len(closed) // 2]
    for options in (
        {"top_k": 3},
        {"top_k": 0},
        {"top_k": 2, "open_set": True},
        {"top_k": 1, "open_set": True, "threshold": middle},
    ):
        served, direct = _identify_both(service, model, **options)
        assert served == direct, options
    _, rejecting = _identify_both(service, model, top_k=1, open_set=True, threshold=middle)
    assert {found["accepted"] for found in rejecting} == {True, False}  # the open set accepts and rejects
    assert all(found["speaker"] is None for found in rejecting if not found["accepted"])

    claimed = sorted(model["speakers"])[0]
    paths = [str(file) for file in model["tests"]]
    for threshold in (None, 0.0):
        served = service.verify(claimed, paths=paths, threshold=threshold)
        direct = verify(model["dir"], claimed, paths, threshold=threshold).results
        assert [checked.to_dict() for checked in served] == [checked.to_dict() for checked in direct]
    held_back = sorted(model["speakers"])[-1]
    with pytest.raises(NotFoundError, match=f"speaker '{held_back}' is not enrolled"):
        service.verify(held_back, paths=paths[:1])


def test_service_follows_enroll_and_remove_by_others(model: dict, tmp_path: Path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model["dir"], copy)
    service = SpeakerService(copy, allow_paths=True)
    before = service.snapshot()
    held_back, first = sorted(model["speakers"])[-1], sorted(model["speakers"])[0]
    enroll_from_audio(copy, {held_back: model["speakers"][held_back][:3]})  # as `spkid enroll` would
    remove_speaker(copy, first)
    assert service.snapshot() is not before
    assert held_back in service.snapshot().names and first not in service.snapshot().names
    served, direct = _identify_both(service, {**model, "dir": copy}, top_k=0)
    assert served == direct and first not in [item["speaker"] for item in served[0]["scores"]]
    assert len(served[0]["scores"]) == 5
    assert service.snapshot() is service.snapshot()  # nothing changed: no reload


def test_speakers_enrolled_one_by_one_through_the_service_settle_cmvn_auto(
    synthetic_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a narrow interval: the third speaker chooses whatever the synthetic voices' levels (the rule's own test:
    # tests/recognizer/test_level_choice.py)
    monkeypatch.setattr("spkid.recognizer.level_rule.LEVEL_CONFIDENCE", 0.01)
    speakers = {p.name: sorted(p.glob("*.wav")) for p in sorted(synthetic_corpus.iterdir()) if p.is_dir()}
    model_dir = tmp_path / "model"
    train_ubm_from_audio(model_dir, [synthetic_corpus], load_config(None, SETTINGS["bank"]))
    service = SpeakerService(model_dir, allow_paths=True)
    tests = [str(files[3]) for files in speakers.values()]
    for name in sorted(speakers)[:4]:
        answer = service.enroll(name, paths=[str(file) for file in speakers[name][:3]])
        assert answer["files"] == 3 and "cmvn_auto" in answer
        served = [found.to_dict() for found in service.identify(paths=tests, top_k=0)]
        assert served == [found.to_dict() for found in identify(model_dir, tests, top_k=0).results]
        if "waits" not in answer["cmvn_auto"]:
            break
    assert "waits" not in answer["cmvn_auto"] and name == sorted(speakers)[2]  # the third speaker chose
    assert service.speakers()["cmvn"] in ("none", "adaptive_level") and len(served[0]["scores"]) == 3


def test_enroll_final_through_the_service_makes_the_waiting_choice(
    synthetic_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("spkid.recognizer.level_rule.LEVEL_CONFIDENCE", 0.99999)  # every interval unclear
    speakers = {p.name: sorted(p.glob("*.wav")) for p in sorted(synthetic_corpus.iterdir()) if p.is_dir()}
    model_dir = tmp_path / "model"
    train_ubm_from_audio(model_dir, [synthetic_corpus], load_config(None, SETTINGS["bank"]))
    service = SpeakerService(model_dir, allow_paths=True)
    names = sorted(speakers)[:4]
    for name in names:
        answer = service.enroll(name, paths=[str(f) for f in speakers[name][:3]], final=name == names[-1])
        assert ("waits" in answer["cmvn_auto"]) is (name != names[-1])  # the last one chooses, on all four
    assert "of 12 recordings lies between 4 speakers" in answer["cmvn_auto"]
    assert service.speakers()["cmvn"] in ("none", "adaptive_level")  # no longer "pending"


def test_requests_share_the_cpu_budget(model: dict, monkeypatch: pytest.MonkeyPatch):
    """A request holds one CPU to extract and scores on the CPUs nobody waits for: never over budget."""
    import contextlib
    import time

    from spkid.serve import service as service_module

    service = SpeakerService(model["dir"], allow_paths=True)
    service.budget = service._free = 2  # as on a 2-CPU machine, whatever this one has
    asked: dict[str, list[int]] = {}  # numba threads each request asked for: extracting, then scoring
    real_limit = service_module.numba_threads

    @contextlib.contextmanager
    def recording_limit(n_threads: int):
        asked.setdefault(threading.current_thread().name, []).append(n_threads)
        with real_limit(n_threads):
            yield

    monkeypatch.setattr(service_module, "numba_threads", recording_limit)
    gates = {name: threading.Event() for name in ("A", "B")}
    extracting = {name: threading.Event() for name in ("A", "B")}
    paths = [str(model["tests"][0])]
    # the model that scores this recording (a wideband companion for the default bands: auto)
    [(scoring, _)] = service.snapshot().routes([Path(paths[0])])
    real_extract = scoring.recognizer.extract

    def gated_extract(files, **kwargs):
        name = threading.current_thread().name
        if name in gates:
            extracting[name].set()
            assert gates[name].wait(timeout=120)
        return real_extract(files, **kwargs)

    monkeypatch.setattr(scoring.recognizer, "extract", gated_extract)
    expected = service.identify(paths=paths, top_k=2)
    results: dict[str, object] = {}

    def request(name: str) -> threading.Thread:
        def run() -> None:
            results[name] = service.identify(paths=paths, top_k=2)

        thread = threading.Thread(target=run, name=name)
        thread.start()
        return thread

    def wait_until(condition, what: str) -> None:
        deadline = time.monotonic() + 120
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    # A and B hold both CPUs (extracting); C must wait for one.
    threads = {name: request(name) for name in ("A", "B")}
    for name in ("A", "B"):
        assert extracting[name].wait(timeout=120)
    threads["C"] = request("C")
    wait_until(lambda: service._queued == 1, "C to queue")
    assert service._free == 0
    gates["A"].set()  # A scores while C waits: on its own CPU only
    threads["A"].join(timeout=120)
    threads["C"].join(timeout=120)  # C then gets A's CPU, B still holds the other
    gates["B"].set()  # B scores alone: on both CPUs
    threads["B"].join(timeout=120)
    assert asked["A"] == [1, 1] and asked["C"] == [1, 1] and asked["B"] == [1, 2]
    assert all(results[name] == expected for name in "ABC")
    assert service._free == 2 and service._queued == 0
