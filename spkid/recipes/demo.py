"""``spkid demo``: the whole pipeline on a small synthetic corpus, through the same API the CLI uses.

A seeded synthetic corpus is written (a UBM pool of background speakers, and target speakers whose first
recordings enroll them and whose other recordings are held out), then a 64-component UBM is trained,
the targets are enrolled, the held-out recordings identified and scored as a verification trial list, and a
results table printed with where the DET plot went. Runs in well under a minute.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spkid.corpora.synthetic import make_speakers
from spkid.errors import DataError
from spkid.metrics import Trial, evaluate, identification_accuracy, write_trials
from spkid.recognizer import enroll_from_audio, identify, load_config, score_trials, train_ubm_from_audio

__all__ = ["DemoSettings", "DemoSummary", "run_demo"]

MARKER = ".spkid-demo"


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo; the defaults run in about 20 s on two cores."""

    n_background_speakers: int = 8
    n_target_speakers: int = 8
    n_utterances: int = 6
    n_enroll: int = 3
    duration_s: float = 3.0
    n_components: int = 64
    seed: int = 2024


@dataclass(frozen=True)
class DemoSummary:
    """What the demo measured and where it left its files."""

    output_dir: Path
    n_speakers: int
    n_tests: int
    accuracy: float
    eer: float
    min_dcf: float
    det_plot: Path

    def table(self) -> str:
        """The results beside the range expected on the synthetic corpus, a one-line reading of them, and
        the three commands to run next on your own audio."""
        figures = {"accuracy": self.accuracy, "eer": self.eer, "min_dcf": self.min_dcf}
        rows = [
            ("enrolled speakers", f"{self.n_speakers}", ""),
            ("held-out recordings", f"{self.n_tests}", ""),
        ]
        for key, (label, fmt, low, high) in EXPECTED.items():
            rows.append((label, fmt.format(figures[key]), f"expected {fmt.format(low)}-{fmt.format(high)}"))
        width = max(len(label) for label, _, _ in rows)
        lines = [f"{label:<{width}}  {value:>7}  {expected}".rstrip() for label, value, expected in rows]
        outside = [
            label for key, (label, _, low, high) in EXPECTED.items() if not low <= figures[key] <= high
        ]
        reading = (
            "reading: every figure is in its expected range: spkid works on this machine."
            if not outside
            else f"reading: {', '.join(outside)} outside the expected range: something differs on this "
            "machine (report it with the output of spkid demo)."
        )
        return "\n".join(
            [
                *lines,
                reading,
                f"DET curve written to {self.det_plot}",
                f"demo files in {self.output_dir}",
                "next, on your own audio:",
                *(f"  {command}" for command in NEXT_COMMANDS),
            ]
        )


#: The demo's figures on its synthetic corpus, ``(label, format, low, high)``: its seeds are fixed, so a run
#: outside these says something differs (measured 91.7%, 2.78%, 0.958 with the defaults).
EXPECTED: dict[str, tuple[str, str, float, float]] = {
    "accuracy": ("identification accuracy", "{:.1%}", 0.85, 1.0),
    "eer": ("EER", "{:.2%}", 0.0, 0.08),
    "min_dcf": ("minDCF (p_target=0.01)", "{:.4f}", 0.0, 1.0),
}
#: What to run next on your own audio.
NEXT_COMMANDS = (
    "spkid train-ubm model/ background_audio/     # a UBM from many speakers' recordings",
    "spkid enroll model/ speakers/               # one sub-folder per speaker: speakers/alice/*.wav ...",
    "spkid identify model/ recording.wav         # ranked speakers with their scores",
)


def _prepare_output(output_dir: Path) -> None:
    """Create ``output_dir`` or clear a previous demo in it; refuse a folder the demo did not make."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise DataError(f"{output_dir}: exists and is not a folder; choose another --output")
        if any(output_dir.iterdir()) and not (output_dir / MARKER).exists():
            raise DataError(f"{output_dir}: not empty and not a spkid demo folder; choose another --output")
        for name in ("corpus", "model"):
            shutil.rmtree(output_dir / name, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).touch()


def run_demo(
    output_dir: str | Path = "demo_output",
    *,
    settings: DemoSettings = DemoSettings(),
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Generate the corpus, train, enroll, identify and evaluate; return the measured results.

    Parameters
    ----------
    output_dir : path
        Created (or a previous demo in it replaced); holds ``corpus/``, ``model/``, ``trials.txt``,
        ``scores.txt`` and ``det.png``.
    settings : DemoSettings
    progress : bool
        Progress bars on stderr.
    log : callable, optional
        Receives one status line per step.

    Raises
    ------
    DataError
        ``output_dir`` is a non-empty folder that a previous demo did not create.
    """
    emit = log or (lambda line: None)
    output_dir = Path(output_dir)
    _prepare_output(output_dir)
    emit(f"demo: writing a synthetic corpus to {output_dir / 'corpus'}")
    background = make_speakers(
        output_dir / "corpus" / "background",
        n_speakers=settings.n_background_speakers,
        n_utterances=settings.n_utterances,
        duration_s=settings.duration_s,
        seed=settings.seed,
    )
    targets_root = output_dir / "corpus" / "targets"
    targets = make_speakers(
        targets_root,
        n_speakers=settings.n_target_speakers,
        n_utterances=settings.n_utterances,
        duration_s=settings.duration_s,
        seed=settings.seed + 1,
    )
    model_dir = output_dir / "model"
    config = load_config(None, [f"ubm.n_components={settings.n_components}", "score.cohort_size=20"])
    emit(f"demo: training a {settings.n_components}-component UBM on {len(background)} background speakers")
    train_ubm_from_audio(
        model_dir, [path for paths in background.values() for path in paths], config, progress=progress
    )
    enroll_sets = {name: sorted(paths)[: settings.n_enroll] for name, paths in targets.items()}
    held_out = {path: name for name, paths in targets.items() for path in sorted(paths)[settings.n_enroll :]}
    emit(f"demo: enrolling {len(enroll_sets)} speakers from {settings.n_enroll} recordings each")
    enroll_from_audio(model_dir, enroll_sets, replace=True, progress=progress)

    emit(f"demo: identifying {len(held_out)} held-out recordings")
    identified = identify(model_dir, list(held_out), top_k=0, progress=progress)
    truth = [held_out[Path(result.recording)] for result in identified.results]
    accuracy = identification_accuracy(truth, [result.scores for result in identified.results], top_k=1)

    trials = [
        Trial(name, path.relative_to(targets_root).as_posix(), name == speaker)
        for path, speaker in held_out.items()
        for name in enroll_sets
    ]
    write_trials(output_dir / "trials.txt", trials)
    score_trials(
        model_dir, output_dir / "trials.txt", output=output_dir / "scores.txt", audio_root=targets_root
    )
    evaluation = evaluate(output_dir / "scores.txt", output_dir / "trials.txt", plot=output_dir / "det.png")
    return DemoSummary(
        output_dir=output_dir,
        n_speakers=len(enroll_sets),
        n_tests=len(held_out),
        accuracy=accuracy,
        eer=evaluation.metrics["eer"],
        min_dcf=evaluation.metrics["min_dcf_0.01"],
        det_plot=output_dir / "det.png",
    )
