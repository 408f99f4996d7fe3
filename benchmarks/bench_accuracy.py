"""Accuracy over a condition matrix: spkid's CLI defaults against the textbook recipe and spkid's variants.

Conditions (``accuracy_conditions.py``): the LibriSpeech and Speech Commands reference protocols of
``../shared/data`` and conditions derived from them by code: narrowband (8 kHz mu-law telephone, UBM pool
too), clean enrollment with telephone tests and the reverse, 0.5/1/3-s tests, enrollment from 3 short clips,
a handset response or a level of its own per recording, and each corpus' speakers against the other corpus'
UBM pool.

Systems: ``defaults`` is exactly what the CLI does with no option (``spkid train-ubm``, ``enroll``,
``identify``, through the same API calls, with ``ubm.random_state`` set per seed); ``textbook`` is the peer
(``textbook_recipe.py``: librosa MFCC + scikit-learn 256-component UBM, MAP r=16); every other system is the
defaults with ``--set`` overrides (:data:`VARIANTS`); ``loudness-fusion`` is a measurement, not a
setting: the defaults' scores fused with a small ``cmvn: none`` system's (:class:`LoudnessFusionSystem`).
Each is run with the UBM seeds asked (0 by default, 0 1 2 with ``--full``).

Printed: one table, condition x system -> top-1 identification (mean %, and correct/total summed over
seeds), EER and minDCF (p_target 0.01) of all test x speaker pairs, means over seeds; then per condition
the best spkid system, the defaults' spread between seeds and their distance to the best; with several spkid
systems, each one's largest EER loss to the best of the others and the conditions where it loses by more than
its own seed spread (:func:`worst_cases`: the rule that chose the defaults); then the mean EER over conditions
and its ratio to the textbook's. Tests that yield no features (too short, silent) count as
misidentified and as missed targets.

Features, models and scores are cached under ``--cache`` (keyed by settings and the source code), so a re-run
only computes what changed. The default run is the two reference protocols (``ls``, ``sc``) with one seed,
defaults against the textbook: 586 s from an empty cache on this 2-core machine (2026-12-06, with tests
running beside it for about 2 of its 10 minutes; 25 s of it spkid's defaults, the rest scikit-learn fitting
the textbook's two 256-component UBMs). ``--full`` is the whole matrix (every condition, 3 seeds): from an
empty cache about 7 minutes for spkid's defaults and 40 minutes per seed for the textbook recipe (2026-12-06,
sharing the machine with other jobs). Once one run has built the derived audio and spkid's features in
``--cache``, the textbook's seeds can run as separate processes (``--full --seeds 1``, ``--full --seeds 2``)
sharing it, one per core. A spkid variant of the defaults' size takes 78-102 s per seed on the full matrix
once the derived audio and its features are cached (2026-12-06, machine otherwise quiet; a new front-end
setting adds its features' extraction once, about 45 s); ``--variants all`` runs the catalogue. A variant
that is not in the catalogue is written as its ``--set`` overrides joined by ``+``, e.g.
``--variants defaults,features.f_max_hz=7600+features.cmvn=none``.

Usage: ``python benchmarks/bench_accuracy.py [--full] [--conditions ls,sc,...] [--variants NAME,...|all]
[--seeds 0 1 2] [--cache DIR] [--json FILE]``
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy_conditions as conditions_module  # noqa: E402

import spkid  # noqa: E402
from spkid.metrics import eer, min_dcf  # noqa: E402

#: spkid variants: name -> ``--set`` overrides applied on top of the CLI defaults. Each changes one default
#: (the last restores every front-end default of the previous release; the ``cmvn_relevance`` and
#: ``cmvn_variance`` ones apply to adaptive CMVN, so they set it too), so the table shows what each default is
#: worth on every condition.
VARIANTS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "f_max=7600": ("features.f_max_hz=7600",),
    "vad=energy": ("features.vad=energy",),
    "vad=energy+threshold=0": ("features.vad=energy", "features.vad_threshold_fraction=0"),
    "cmvn=utterance": ("features.cmvn=utterance",),
    "cmvn=none": ("features.cmvn=none",),
    "cmvn=adaptive": ("features.cmvn=adaptive",),
    "cmvn=level": ("features.cmvn=level",),
    "cmvn_relevance=100": ("features.cmvn=adaptive", "features.cmvn_relevance_frames=100"),
    "cmvn_relevance=1000": ("features.cmvn=adaptive", "features.cmvn_relevance_frames=1000"),
    "cmvn_relevance=3000": ("features.cmvn=adaptive", "features.cmvn_relevance_frames=3000"),
    "cmvn=global": ("features.cmvn=global",),
    "max_iter=20": ("ubm.max_iter=20",),
    "init=split": ("ubm.init=split",),
    "cmvn_variance=false": ("features.cmvn=adaptive", "features.cmvn_variance=false"),
    "sample_rate=16000": ("features.sample_rate=16000",),
    "top_c=exact": ("score.top_c=null",),
    "relevance=16": ("enroll.relevance_factor=16",),
    "bands=auto": ("features.bands=auto",),
    "previous-defaults": (
        "features.sample_rate=16000",
        "features.f_max_hz=7600",
        "features.vad=energy",
        "features.cmvn=utterance",
        "features.frontend_version=2",
    ),
}
PEER = "textbook"
#: The default run: the two reference protocols, one seed (``--full``: every condition, 3 seeds).
QUICK_CONDITIONS = ("ls", "sc")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spkid" / "bench_accuracy"
P_TARGET = 0.01
FAILED_SCORE = -1e9  # the score of every trial of a test that gave no features


def overrides_of(name: str) -> tuple[str, ...] | None:
    """A variant outside :data:`VARIANTS` named by its ``--set`` overrides joined by ``+``; None when ``name``
    is not of that form or spkid refuses the overrides.

    Examples
    --------
    >>> overrides_of("features.f_max_hz=7600+ubm.init=split")
    ('features.f_max_hz=7600', 'ubm.init=split')
    >>> overrides_of("f_max=7600") is None
    True
    """
    from spkid.errors import SpkidError
    from spkid.recognizer import load_config

    overrides = tuple(part.strip() for part in name.split("+"))
    if not all("=" in part and "." in part.split("=", 1)[0] for part in overrides):
        return None
    try:
        load_config(None, list(overrides))
    except SpkidError as exc:
        print(f"variant {name!r}: {exc}")
        return None
    return overrides


def code_digest(path: Path) -> bytes:
    """A Python file's syntax tree: the same after reformatting or comment edits, not after code changes."""
    return ast.dump(ast.parse(path.read_text(encoding="utf-8"))).encode()


def source_fingerprint(root: Path) -> str:
    """SHA-256 (16 hex digits) of the code and packaged configs under ``root``.

    Cached results die with a code change or a change of a default setting (the YAML files' parsed
    content, so comment edits keep them).
    """
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(code_digest(path))
    for path in sorted(root.rglob("*.yaml")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Scores:
    """One system on one condition with one seed."""

    matrix: np.ndarray  # (n_tests, n_speakers)
    names: list[str]
    truths: list[str]
    n_failed: int
    #: what ``features.cmvn: auto`` chose at enrollment ("kept 0.84", "removed 0.43", ...); "" without it
    loudness: str = ""

    def metrics(self) -> dict[str, float | str]:
        names = np.asarray(self.names)
        truths = np.asarray(self.truths)
        correct = int(np.sum(names[np.argmax(self.matrix, axis=1)] == truths))
        target = names[None, :] == truths[:, None]
        tar, non = self.matrix[target], self.matrix[~target]
        return {
            "correct": correct,
            "n_tests": len(truths),
            "top1": correct / len(truths),
            "eer": float(eer(tar, non)),
            "min_dcf": float(min_dcf(tar, non, p_target=P_TARGET)),
            "failed": self.n_failed,
            **({"loudness": self.loudness} if self.loudness else {}),
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npz")
        np.savez(
            temporary,
            matrix=self.matrix,
            names=np.asarray(self.names),
            truths=np.asarray(self.truths),
            n_failed=self.n_failed,
            loudness=np.asarray(self.loudness),
        )
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Scores:
        with np.load(path) as data:
            loudness = str(data["loudness"]) if "loudness" in data.files else ""
            return cls(
                data["matrix"],
                data["names"].tolist(),
                data["truths"].tolist(),
                int(data["n_failed"]),
                loudness,
            )


def loudness_choice(choice: object) -> str:
    """``features.cmvn: auto``'s choice in a few words: "kept 0.84", "removed 0.43", "removed 0.83 (band)"
    (another band than the pool's, long recordings), "kept 0.65 (band, short)", "removed 0.72, channel 300"
    (the channel removed harder, :mod:`spkid.recognizer.channel_rule`).

    Examples
    --------
    >>> from spkid.recognizer.level_rule import LevelChoice
    >>> choice = LevelChoice(kept=False, consistency=0.83, n_speakers=10, n_recordings=50, other_band=True)
    >>> loudness_choice(choice)
    'removed 0.83 (band)'
    >>> loudness_choice(LevelChoice(False, 0.72, 10, 50, relevance_frames=300.0))
    'removed 0.72, channel 300'
    >>> loudness_choice(None)
    ''
    """
    if choice is None:
        return ""
    if getattr(choice, "pending", False):
        return "pending"
    measured = "n/a" if choice.consistency is None else f"{choice.consistency:.2f}"
    band = (" (band, short)" if choice.kept else " (band)") if choice.other_band else ""
    frames = getattr(choice, "relevance_frames", None)
    harder = "" if frames is None else f", channel {frames:g}"  # removed harder (channel_rule)
    return f"{'kept' if choice.kept else 'removed'} {measured}{band}{harder}"


def _with_failures(matrix: np.ndarray, kept: list[int], n_tests: int) -> np.ndarray:
    full = np.full((n_tests, matrix.shape[1]), FAILED_SCORE)
    full[kept] = matrix
    return full


# ----------------------------------------------------------------------------------------------- spkid
class SpkidSystem:
    """The CLI's pipeline with ``--set`` overrides, run through the API calls the CLI makes."""

    def __init__(self, name: str, overrides: tuple[str, ...], cache: Path) -> None:
        self.name, self.overrides, self.cache = name, overrides, cache
        key = json.dumps([overrides, source_fingerprint(Path(spkid.__file__).parent)])
        self.key = f"{name.replace('/', '_')}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def _config(self, seed: int):  # noqa: ANN202 - spkid.recognizer.Config
        from spkid.recognizer import load_config

        return load_config(None, [*self.overrides, f"ubm.random_state={seed}"])

    def _ubm_dir(self, pool: str, files: list[Path], seed: int) -> Path:
        from spkid.recognizer import train_ubm_from_audio

        model_dir = self.cache / "models" / self.key / pool / f"seed{seed}"
        if not (model_dir / "manifest.json").is_file():
            shutil.rmtree(model_dir, ignore_errors=True)
            train_ubm_from_audio(
                model_dir,
                files,
                self._config(seed),
                n_jobs=2,
                skip_bad=True,
                cache_dir=self.cache / "features",
            )
        return model_dir

    def scores(self, condition: conditions_module.Condition, pool_files: list[Path], seed: int) -> Scores:
        from spkid.recognizer import Recognizer, enroll_from_audio
        from spkid.recognizer.routing import routed_score_rows

        path = self.cache / "scores" / self.key / condition.name / f"seed{seed}.npz"
        if path.is_file():
            return Scores.load(path)
        ubm_dir = self._ubm_dir(condition.pool, pool_files, seed)
        model_dir = self.cache / "runs" / self.key / condition.name / f"seed{seed}"
        shutil.rmtree(model_dir, ignore_errors=True)
        shutil.copytree(ubm_dir, model_dir)
        features = self.cache / "features"
        enrolled = enroll_from_audio(
            model_dir, condition.speakers, skip_bad=True, n_jobs=2, cache_dir=features
        )
        test_paths = [path for path, _ in condition.tests]
        names = sorted(Recognizer.open(model_dir).store.speakers())
        # each test scored by the model the CLI would use (a model with features.bands auto holds two)
        rows = routed_score_rows(model_dir, test_paths, names, skip_bad=True, n_jobs=2, cache_dir=features)
        kept = [i for i, path in enumerate(test_paths) if path in rows]
        scored = np.array([rows[test_paths[i]] for i in kept]).reshape(len(kept), len(names))
        matrix = _with_failures(scored, kept, len(test_paths))
        truths = [speaker for _, speaker in condition.tests]
        result = Scores(
            matrix, names, truths, len(test_paths) - len(kept), loudness_choice(enrolled.level_choice)
        )
        result.save(path)
        shutil.rmtree(model_dir, ignore_errors=True)
        return result


class LoudnessFusionSystem:
    """spkid's defaults fused with a small GMM-UBM system that keeps loudness and spectral mean.

    Not a spkid setting: a measurement of what a model holding a second front-end would give. The defaults
    remove each recording's level (``adaptive_level`` CMVN), which wins where a recording's level is its own
    (``ls-levels``, ``sc-levels``) and loses where a speaker's loudness and channel are consistent (short
    tests, Speech Commands words: one device per speaker), where ``cmvn: none`` wins. The partner is ``cmvn:
    none`` with 64 Gaussians in both bands; each system scores every comparison by its own routing (the
    same rule for both), and the score is their weighted sum (:data:`WEIGHTS`, one pair for every condition).
    """

    name = "loudness-fusion"
    PARTNER = ("features.cmvn=none", "ubm.n_components=64", "ubm.wideband_components=64")
    #: weights of the defaults' and the partner's scores
    WEIGHTS = (0.6, 0.4)

    def __init__(self, cache: Path) -> None:
        self.main = SpkidSystem("defaults", VARIANTS["defaults"], cache)
        self.partner = SpkidSystem("+".join(self.PARTNER), self.PARTNER, cache)

    def scores(self, condition: conditions_module.Condition, pool_files: list[Path], seed: int) -> Scores:
        main = self.main.scores(condition, pool_files, seed)
        partner = self.partner.scores(condition, pool_files, seed)
        if main.names != partner.names or main.truths != partner.truths:
            raise RuntimeError(f"{condition.name}: the two systems scored different speakers or tests")
        own, other = self.WEIGHTS
        matrix = own * main.matrix + other * partner.matrix
        failed = (main.matrix <= FAILED_SCORE) | (partner.matrix <= FAILED_SCORE)
        matrix[failed] = FAILED_SCORE
        return Scores(matrix, main.names, main.truths, max(main.n_failed, partner.n_failed))


# ----------------------------------------------------------------------------------------------- textbook
class TextbookSystem:
    """``textbook_recipe.py``: features kept in memory for the run, UBMs cached on disk."""

    name = PEER

    def __init__(self, cache: Path) -> None:
        import textbook_recipe

        self.recipe = textbook_recipe
        self.cache = cache
        self.key = "textbook-" + hashlib.sha256(code_digest(Path(textbook_recipe.__file__))).hexdigest()[:12]
        self._features: dict[Path, np.ndarray] = {}

    def _features_of(self, paths: list[Path]) -> list[np.ndarray]:
        todo = [path for path in dict.fromkeys(paths) if path not in self._features]
        if todo:
            self._features.update(zip(todo, self.recipe.features_many(todo), strict=True))
        return [self._features[path] for path in paths]

    def _ubm(self, pool: str, files: list[Path], seed: int):  # noqa: ANN202 - GaussianMixture
        from sklearn.mixture import GaussianMixture

        path = self.cache / "models" / self.key / pool / f"seed{seed}.npz"
        if path.is_file():
            with np.load(path) as data:
                ubm = GaussianMixture(len(data["weights"]), covariance_type="diag")
                ubm.weights_, ubm.means_ = data["weights"], data["means"]
                ubm.covariances_ = data["covariances"]
                ubm.precisions_cholesky_ = 1.0 / np.sqrt(ubm.covariances_)
                return ubm
        ubm = self.recipe.train_ubm(self._features_of(files), seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, weights=ubm.weights_, means=ubm.means_, covariances=ubm.covariances_)
        return ubm

    def scores(self, condition: conditions_module.Condition, pool_files: list[Path], seed: int) -> Scores:
        path = self.cache / "scores" / self.key / condition.name / f"seed{seed}.npz"
        if path.is_file():
            return Scores.load(path)
        ubm = self._ubm(condition.pool, pool_files, seed)
        names = sorted(condition.speakers)
        speaker_means = [
            self.recipe.adapt_means(ubm, self._features_of(condition.speakers[name])) for name in names
        ]
        tests = self._features_of([test for test, _ in condition.tests])
        result = Scores(
            self.recipe.score_matrix(ubm, speaker_means, tests),
            names,
            [speaker for _, speaker in condition.tests],
            0,
        )
        result.save(path)
        return result


# ----------------------------------------------------------------------------------------------- report
def worst_cases(results: dict, systems: list[str], condition_names: list[str]) -> dict[str, dict]:
    """How each spkid system fares against the best of the others, condition by condition: the rule that
    chooses the defaults where conditions disagree (the smallest largest loss).

    Returns ``{system: {"worst": points, "where": condition, "beaten": [conditions]}}``: its largest mean-EER
    loss to the best other system of ``systems`` (0 where it is the best everywhere), the condition of that
    loss, and the conditions where its loss exceeds its own spread between seeds (max-min EER).

    Examples
    --------
    >>> runs = lambda *eers: {seed: {"eer": eer} for seed, eer in enumerate(eers)}
    >>> results = {
    ...     "a": {"x": runs(0.10, 0.12), "y": runs(0.05, 0.05)},
    ...     "b": {"x": runs(0.2, 0.2), "y": runs(0.3, 0.3)},
    ... }
    >>> cases = worst_cases(results, ["x", "y"], ["a", "b"])
    >>> [(round(case["worst"], 2), case["where"], case["beaten"]) for case in cases.values()]
    [(6.0, 'a', ['a']), (10.0, 'b', ['b'])]
    """
    cases: dict[str, dict] = {}
    for system in systems:
        others = [name for name in systems if name != system]
        case: dict = {"worst": 0.0, "where": None, "beaten": []}
        for condition in condition_names:
            eers = [run["eer"] for run in results[condition][system].values()]
            best_other = min(np.mean([r["eer"] for r in results[condition][o].values()]) for o in others)
            loss = 100 * (np.mean(eers) - best_other)
            if loss > case["worst"]:
                case["worst"], case["where"] = float(loss), condition
            if loss > 100 * (max(eers) - min(eers)) + 1e-9:
                case["beaten"].append(condition)
        cases[system] = case
    return cases


def apparent_losses(results: dict, systems: list[str], condition_names: list[str]) -> dict[str, str]:
    """The conditions where the defaults lose to the best other spkid system by more than the defaults' seed
    spread (max-min EER), each with that system: ``{condition: system}``.

    Examples
    --------
    >>> runs = lambda *eers: {seed: {"eer": eer} for seed, eer in enumerate(eers)}
    >>> results = {"a": {"defaults": runs(0.10, 0.11), "x": runs(0.05, 0.05), "textbook": runs(0.3, 0.3)},
    ...            "b": {"defaults": runs(0.10, 0.20), "x": runs(0.12, 0.12), "textbook": runs(0.3, 0.3)}}
    >>> apparent_losses(results, ["defaults", "x", "textbook"], ["a", "b"])
    {'a': 'x'}
    """
    spkid_systems = [name for name in systems if name != PEER]
    others = [name for name in spkid_systems if name != "defaults"]
    if "defaults" not in systems or not others:
        return {}

    def mean_eer(condition: str, name: str) -> float:
        return float(np.mean([run["eer"] for run in results[condition][name].values()]))

    beaten = worst_cases(results, spkid_systems, condition_names)["defaults"]["beaten"]
    return {condition: min(others, key=lambda name: mean_eer(condition, name)) for condition in beaten}


def confirmation(results: dict, losses: dict[str, str]) -> list[str]:
    """Whether each apparent loss (:func:`apparent_losses`) holds on other seeds: ``results`` holds the
    defaults and the winning system run again, on seeds the first run did not use. The best of many
    systems beats the defaults somewhere by chance; a loss that is real shows again.

    Examples
    --------
    >>> runs = lambda *eers: {seed: {"eer": eer} for seed, eer in enumerate(eers, start=3)}
    >>> again = {"a": {"defaults": runs(0.10, 0.11), "x": runs(0.05, 0.05)},
    ...          "b": {"defaults": runs(0.04, 0.05), "x": runs(0.06, 0.05)}}
    >>> for line in confirmation(again, {"a": "x", "b": "x"}): print(line)
      a                  x on seeds 3, 4: EER 5.00% against the defaults' 10.50% (spread 1.00): HOLDS
      b                  x on seeds 3, 4: EER 5.50% against the defaults' 4.50% (spread 1.00): did not hold
    """
    lines = []
    for condition, system in losses.items():
        seeds = [run["eer"] for run in results[condition]["defaults"].values()]
        theirs = float(np.mean([run["eer"] for run in results[condition][system].values()]))
        spread = max(seeds) - min(seeds)
        verdict = "HOLDS" if np.mean(seeds) - theirs > spread + 1e-12 else "did not hold"
        on = ", ".join(map(str, results[condition]["defaults"]))
        lines.append(
            f"  {condition:<18} {system} on seeds {on}: EER {100 * theirs:.2f}% against the defaults' "
            f"{100 * np.mean(seeds):.2f}% (spread {100 * spread:.2f}): {verdict}"
        )
    return lines


def summarise(results: dict, systems: list[str], condition_names: list[str]) -> str:
    """The printed report from ``results[condition][system][seed] -> metrics``."""
    lines = []
    width = max(12, *(len(name) for name in systems))
    header = f"{'condition':<18}" + "".join(f"{name:>{width + 22}}" for name in systems)
    lines += ["top-1 % (correct/total over seeds) | EER % | minDCF(0.01), means over seeds", header]
    means: dict[tuple[str, str], dict[str, float]] = {}
    for condition in condition_names:
        row = f"{condition:<18}"
        for system in systems:
            runs = list(results[condition][system].values())
            mean = {key: float(np.mean([run[key] for run in runs])) for key in ("top1", "eer", "min_dcf")}
            correct, total = sum(r["correct"] for r in runs), sum(r["n_tests"] for r in runs)
            means[condition, system] = mean
            cell = (
                f"{100 * mean['top1']:5.1f} ({correct}/{total}) {100 * mean['eer']:5.2f} "
                f"{mean['min_dcf']:.3f}"
            )
            row += f"{cell:>{width + 22}}"
        lines.append(row)
    spkid_systems = [name for name in systems if name != PEER]
    lines.append("")
    lines.append("best spkid system per condition (lowest mean EER; defaults' seed spread = max-min EER):")
    for condition in condition_names:
        best = min(spkid_systems, key=lambda s: (means[condition, s]["eer"], -means[condition, s]["top1"]))
        line = f"  {condition:<18} {best:<22} EER {100 * means[condition, best]['eer']:.2f}%"
        if "defaults" in systems:
            seeds = [run["eer"] for run in results[condition]["defaults"].values()]
            gap = means[condition, "defaults"]["eer"] - means[condition, best]["eer"]
            spread = max(seeds) - min(seeds)
            verdict = "within spread" if gap <= spread else "DEFAULTS WORSE BY MORE THAN THE SPREAD"
            line += f"; defaults +{100 * gap:.2f} pts, spread {100 * spread:.2f} pts: {verdict}"
        if PEER in systems and "defaults" in systems:
            ours, peer = means[condition, "defaults"], means[condition, PEER]
            ok = ours["top1"] >= peer["top1"] and ours["eer"] <= peer["eer"]
            line += "; vs textbook: " + ("top-1 >= and EER <=" if ok else "LOSES")
        lines.append(line)
    variants = [name for name in spkid_systems if name != "defaults"]
    if "defaults" in systems and variants:
        lines += [
            "",
            "EER change of each variant against the defaults, paired by seed (points; - is better;"
            " min..max over seeds):",
        ]
        lines.append(f"{'condition':<18}" + "".join(f"{name[:21]:>22}" for name in variants))
        for condition in condition_names:
            row = f"{condition:<18}"
            for name in variants:
                seeds = sorted(set(results[condition][name]) & set(results[condition]["defaults"]))
                ours, base = results[condition][name], results[condition]["defaults"]
                gaps = [100 * (ours[seed]["eer"] - base[seed]["eer"]) for seed in seeds]
                row += f"{np.mean(gaps):+8.2f} ({min(gaps):+.1f}..{max(gaps):+.1f})".rjust(22)
            lines.append(row)
    if len(spkid_systems) > 1:
        lines += [
            "",
            "largest EER loss of each spkid system to the best of the others (points), and the conditions"
            " where it loses by more than its own seed spread:",
        ]
        for system, case in sorted(
            worst_cases(results, spkid_systems, condition_names).items(), key=lambda item: item[1]["worst"]
        ):
            where = f" ({case['where']})" if case["where"] else ""
            beaten = f"{len(case['beaten'])} of {len(condition_names)}"
            listed = f": {', '.join(case['beaten'])}" if case["beaten"] else ""
            loss = f"{case['worst']:5.2f}{where}"
            lines.append(f"  {system:<{width}} {loss}; beyond its spread on {beaten}{listed}")
    for system in spkid_systems:
        choices = {
            c: sorted({run.get("loudness", "") for run in results[c][system].values()})
            for c in condition_names
        }
        if any(any(made) for made in choices.values()):
            lines += ["", f"{system}: what features.cmvn auto chose at enrollment (level consistency):"]
            lines += [f"  {c:<18} {' / '.join(made)}" for c, made in choices.items()]
    lines.append("")
    for system in systems:
        mean_eer = np.mean([means[c, system]["eer"] for c in condition_names])
        mean_top1 = np.mean([means[c, system]["top1"] for c in condition_names])
        text = f"  {system:<22} mean over conditions: top-1 {100 * mean_top1:.1f}%, EER {100 * mean_eer:.2f}%"
        if PEER in systems and system != PEER:
            peer_eer = np.mean([means[c, PEER]["eer"] for c in condition_names])
            text += f" ({mean_eer / peer_eer:.2f}x the textbook's)"
        lines.append(text)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--conditions",
        help=f"comma-separated condition names (default: {','.join(QUICK_CONDITIONS)}; with --full: "
        f"{', '.join(conditions_module.FULL_CONDITIONS)}; by name only: "
        f"{', '.join(conditions_module.EXTRA_CONDITIONS)})",
    )
    parser.add_argument(
        "--variants",
        default="defaults",
        help=f"comma-separated spkid systems, or 'all': {', '.join(VARIANTS)}; or --set overrides joined by "
        f"'+' (features.f_max_hz=7600+features.cmvn=none); or {LoudnessFusionSystem.name}",
    )
    parser.add_argument("--no-textbook", action="store_true", help="leave the textbook recipe out")
    parser.add_argument("--seeds", type=int, nargs="+", help="UBM seeds (default: 0; with --full 0 1 2)")
    parser.add_argument(
        "--full", action="store_true", help="the whole matrix: every condition, 3 seeds (1.5-2 h from empty)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, help="also write every per-seed metric to this file")
    parser.add_argument(
        "--confirm",
        type=int,
        nargs="+",
        metavar="SEED",
        help="then run the defaults and each system that beat them by more than their seed spread again on "
        "these other UBM seeds, and say whether the loss holds",
    )
    args = parser.parse_args()
    logging.getLogger("spkid").setLevel(logging.ERROR)  # clipped and narrowband files: expected here
    if args.conditions is None:
        args.conditions = ",".join(conditions_module.FULL_CONDITIONS if args.full else QUICK_CONDITIONS)
    if args.seeds is None:
        args.seeds = [0, 1, 2] if args.full else [0]

    wanted = [name.strip() for name in args.conditions.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in conditions_module.CONDITIONS]
    variants = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(",")]
    composed = {LoudnessFusionSystem.name: LoudnessFusionSystem}
    catalogue = {
        **VARIANTS,
        **{name: overrides_of(name) for name in variants if name not in VARIANTS and name not in composed},
    }
    unknown += [name for name in variants if name not in composed and catalogue[name] is None]
    if unknown:
        parser.error(f"unknown condition/variant {unknown[0]!r}")
    condition_names, missing = conditions_module.available(wanted)
    for reason in missing:
        print(f"skipped condition {reason}")
    if not condition_names:
        print("skipped: none of the conditions' corpora are present under ../shared/data")
        return 0
    started = time.perf_counter()
    pools, conditions = conditions_module.build(condition_names, args.cache)
    systems: list = [
        composed[name](args.cache) if name in composed else SpkidSystem(name, catalogue[name], args.cache)
        for name in variants
    ]
    if not args.no_textbook:
        systems.append(TextbookSystem(args.cache))
    results: dict = {c.name: {s.name: {} for s in systems} for c in conditions}
    for system in systems:
        for seed in args.seeds:
            for condition in conditions:
                results[condition.name][system.name][seed] = system.scores(
                    condition, pools[condition.pool], seed
                ).metrics()
            print(f"  [{time.perf_counter() - started:6.0f} s] {system.name} seed {seed} done", flush=True)
    print()
    print(summarise(results, [s.name for s in systems], condition_names))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    losses = apparent_losses(results, [s.name for s in systems], condition_names) if args.confirm else {}
    if losses:
        named = {system.name: system for system in systems}
        again: dict = {condition: {} for condition in losses}
        for condition in conditions:
            for name in ("defaults", losses.get(condition.name)) if condition.name in losses else ():
                again[condition.name][name] = {
                    seed: named[name].scores(condition, pools[condition.pool], seed).metrics()
                    for seed in args.confirm
                }
        print("\nthe apparent losses of the defaults, run again on other seeds:")
        print("\n".join(confirmation(again, losses)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
