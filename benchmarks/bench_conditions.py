"""Robustness of the CLI defaults: clean, telephone, short tests, many speakers, tiny UBM pool.

From ``../shared/data/LibriSpeech`` (relative to the repo root) condition corpora are derived in a temp dir
(see ``condition_corpora.py``) and the real CLI is run end to end with its defaults (no ``--set``):
``spkid train-ubm``, ``spkid enroll MODEL SPEAKERS_DIR``, ``spkid identify MODEL TEST... --json --top-k 0``
(all scores, so the pooled EER comes from the same run) and one ``spkid verify`` per condition (checked
against identify's scores, with its error rates at the default threshold). Printed: top-1 accuracy and EER
per condition with the clean reference as the peer (ratio of error rates), wall time per stage, CLI start-up
costs, then in-process alternatives to single defaults on the telephone, short and many-speaker conditions
(``condition_variants.py``).

Usage: ``python benchmarks/bench_conditions.py [--no-retrain] [--conditions a,b] [--smoke] [--keep DIR]``.
``--smoke`` runs on a few speakers only (plumbing check, numbers meaningless). About 15-18 minutes in full on
a shared 2-core machine (most of it UBM training); timings there are noisy.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import condition_corpora as corpora  # noqa: E402
import condition_variants as variants  # noqa: E402

from spkid.recognizer import Recognizer  # noqa: E402
from spkid.store import ModelStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "LibriSpeech"
SPKID = REPO / ".venv" / "bin" / "spkid"
PYTHON = REPO / ".venv" / "bin" / "python"


def run(*args: object) -> tuple[int, str, str, float]:
    """Run ``spkid args...``: (exit code, stdout, stderr, wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run([str(SPKID), *map(str, args)], capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - started


def last_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no message)"


def evaluate_cli(
    corpus: corpora.Corpus, model: Path, *, train: bool = True, check_verify: bool = True
) -> dict:
    """train-ubm (unless reusing ``model``), enroll, identify and verify through the CLI."""
    row: dict = {"condition": corpus.name, "notes": list(corpus.notes), "times": {}}
    if train:
        code, out, err, seconds = run("train-ubm", model, *corpus.ubm_pool)
        row["times"]["train-ubm"] = seconds
        if code:
            row["failed"] = f"train-ubm: {last_error(err)}"
            return row
        found = re.search(r"\((\d+) components.*?(\d+) frames", out + err)
        row["ubm"] = f"K={found.group(1)}, {found.group(2)} frames" if found else "?"
        row["notes"] += [line.strip() for line in err.splitlines() if re.search(r"warn|too few", line, re.I)][
            :2
        ]
        code, out, err, row["times"]["enroll"] = run("enroll", model, corpus.speakers_dir)
        if code:
            row["failed"] = f"enroll: {last_error(err)}"
            return row
    tests = list(corpus.tests)
    code, out, err, row["times"]["identify"] = run("identify", model, *tests, "--json", "--top-k", "0")
    if code:
        row["failed"] = f"identify: {last_error(err)}"
        return row
    results = json.loads(out)
    names = sorted({entry["speaker"] for entry in results[0]["scores"]})
    truth_of = {path.name: speaker for path, speaker in corpus.tests.items()}
    truths = [truth_of[Path(result["recording"]).name] for result in results]
    scores = np.array(
        [[dict((s["speaker"], s["score"]) for s in r["scores"])[n] for n in names] for r in results]
    )
    row["top1"], row["eer"] = variants.accuracy_and_eer(scores, names, truths)
    row["n_models"], row["n_tests"] = len(names), len(results)
    row["scores"], row["names"], row["truths"] = scores, names, truths
    if len(results) < len(tests):
        row["notes"].append(f"identify skipped {len(tests) - len(results)} of {len(tests)} tests")
    if not check_verify:
        return row
    claimed = truths[0]
    code, out, err, row["times"]["verify"] = run("verify", model, "--speaker", claimed, *tests, "--json")
    if code:
        row["notes"].append(f"verify failed: {last_error(err)}")
        return row
    decisions = json.loads(out)
    by_name = {Path(r["recording"]).name: r for r in results}
    gap = max(
        abs(
            d["score"]
            - [s for s in by_name[Path(d["recording"]).name]["scores"] if s["speaker"] == claimed][0]["score"]
        )
        for d in decisions
    )
    is_target = np.array([truth_of[Path(d["recording"]).name] == claimed for d in decisions])
    accepted = np.array([d["accepted"] for d in decisions])
    # verify's default thresholds are per speaker (cohort Z-norm at 3): the same ones, computed in-process.
    recognizer = Recognizer(ModelStore.open(model))
    thresholds = recognizer.default_thresholds(recognizer.speakers(names))
    miss, false_alarm = variants.error_rates(scores, names, truths, thresholds)
    row["notes"].append(
        f"all {scores.size} test x model pairs at verify's default per-speaker thresholds "
        f"(median {np.median(thresholds):g}): miss {miss:.1%}, false alarm {false_alarm:.1%}"
    )
    in_process = thresholds[names.index(claimed)]
    row["verify"] = (
        f"speaker {claimed}: threshold {decisions[0]['threshold']:g} (in-process "
        f"{in_process:g}), miss "
        f"{np.mean(~accepted[is_target]):.0%}, false alarm {np.mean(accepted[~is_target]):.0%}, "
        f"|verify - identify| <= {gap:.1e}"
    )
    return row


def startup_costs(model: Path, one_test: Path, identify_many_s: float, n_many: int) -> list[str]:
    """Per-invocation costs: --version, import times, identify on one file vs its per-file cost in a batch."""
    lines = []
    version = [run("--version")[3] for _ in range(3)]
    lines.append(f"spkid --version: median {statistics.median(version):.2f} s of 3")
    for module in ("spkid.cli", "spkid.recognizer"):
        done = subprocess.run(
            [str(PYTHON), "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=False,
        )
        rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")][1:]
        parsed = [(int(row[1]), row[2].rstrip()) for row in rows if len(row) == 3]
        total = max((cumulative for cumulative, _ in parsed), default=0)
        packages: dict[str, int] = {}  # third-party package -> its largest cumulative import time
        for cumulative, name in parsed:
            package = name.strip().split(".")[0]
            if package != "spkid":
                packages[package] = max(packages.get(package, 0), cumulative)
        heavy = sorted(packages.items(), key=lambda item: -item[1])[:6]
        shown = ", ".join(f"{package} {cumulative / 1e6:.2f}" for package, cumulative in heavy)
        lines.append(f"import {module}: {total / 1e6:.2f} s (heaviest packages, cumulative s: {shown})")
    single = [run("identify", model, one_test, "--json")[3] for _ in range(2)]
    one = min(single)
    per_file = max((identify_many_s - one) / max(n_many - 1, 1), 0.0)
    lines.append(
        f"spkid identify, 1 file: best {one:.2f} s of 2; in a batch of {n_many}: "
        f"{identify_many_s:.2f} s = {per_file:.3f} s/file after the first -> fixed cost per "
        f"invocation ~{one - per_file:.2f} s"
    )
    return lines


def smoke_root(out: Path) -> Path:
    """A LibriSpeech-layout root of symlinks: 24 train-clean-100 speakers, 3 test-other speakers."""
    for subset, n_speakers in (("train-clean-100", 24), ("test-other", 3)):
        for speaker, paths in list(corpora.librispeech_files(DATA, subset).items())[:n_speakers]:
            for path in paths:
                corpora.link(out / subset / speaker / path.name, path)
    return out


def print_cli_table(rows: list[dict]) -> None:
    reference = next((row for row in rows if row["condition"] == "clean" and "top1" in row), None)
    print("\n== CLI defaults, end to end (peer: clean; ratio = error rate / clean's error rate) ==")
    print(
        f"{'condition':<22}{'UBM':<24}{'models':>7}{'tests':>6}{'top1':>7}{'EER':>7}{'err ratio':>10}"
        f"{'EER ratio':>10}   wall s: train-ubm / enroll / identify / verify"
    )
    for row in rows:
        times = " / ".join(
            f"{row['times'].get(stage, float('nan')):.1f}"
            for stage in ("train-ubm", "enroll", "identify", "verify")
        )
        if "top1" not in row:
            print(f"{row['condition']:<22}FAILED {row.get('failed', '')}   {times}")
            continue
        ratios = ["-", "-"]
        if reference is not None:
            ratios = [
                f"{(1 - row['top1']) / max(1 - reference['top1'], 1e-3):.1f}",
                f"{row['eer'] / max(reference['eer'], 1e-3):.1f}",
            ]
        head = f"{row['condition']:<22}{row.get('ubm', '(clean model)'):<24}{row['n_models']:>7}"
        figures = f"{row['n_tests']:>6}{row['top1']:>7.1%}{row['eer']:>7.1%}{ratios[0]:>10}{ratios[1]:>10}"
        print(f"{head}{figures}   {times}")
    for row in rows:
        for line in [*row["notes"], *([row["verify"]] if "verify" in row else [])]:
            print(f"  {row['condition']}: {line}")


def build_corpora(root: Path, work: Path) -> dict[str, corpora.Corpus]:
    """Every condition's corpus under ``work`` (the short and tiny ones share clean's enrollment)."""
    clean = corpora.clean(root, work / "clean")
    return {
        "clean": clean,
        "telephone": corpora.telephone_version(clean, work / "telephone"),
        "short-1s": corpora.short_tests(clean, work / "short-1s", 1.0),
        "short-0.5s": corpora.short_tests(clean, work / "short-0.5s", 0.5),
        "many": corpora.many_speakers(root, work / "many"),
        "tiny-spread": corpora.tiny_pool(clean, work / "tiny-spread", 20),
        "tiny-shortest": corpora.tiny_pool(clean, work / "tiny-shortest", 20, shortest=True),
    }


def run_variants(corpus: corpora.Corpus, model: Path, *, retrain: bool) -> list[variants.Outcome]:
    """Score-side variants on the CLI's model; with ``retrain``, also 256 components and sliding CMVN."""
    speakers = _speakers(corpus)
    data = variants.ConditionData(
        corpus.ubm_pool, speakers, corpus.tests, variants.FeatureConfig(), need_pool=retrain
    )
    outcomes = variants.score_side(model, data)
    if retrain:
        outcomes.append(variants.retrained(data, "n_components=256", variants.UBMConfig(n_components=256)))
        if corpus.name == "telephone":  # the native-rate front-end the default 16 kHz one stands in for
            narrow_config = variants.FeatureConfig(sample_rate=8000)
            narrow = variants.ConditionData(
                corpus.ubm_pool, speakers, corpus.tests, narrow_config, need_pool=True
            )
            outcomes.append(variants.retrained(narrow, "features.sample_rate=8000", variants.UBMConfig()))
        sliding_config = variants.FeatureConfig(cmvn="sliding")
        sliding = variants.ConditionData(
            corpus.ubm_pool, speakers, corpus.tests, sliding_config, need_pool=True
        )
        outcomes.append(variants.retrained(sliding, "cmvn=sliding", variants.UBMConfig()))
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-retrain", action="store_true", help="skip the n_components / CMVN variants")
    parser.add_argument("--smoke", action="store_true", help="a few speakers only (plumbing check)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--conditions", help="comma-separated subset of the conditions (default: all)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} not found: nothing to benchmark (the shared LibriSpeech subset is absent)")
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_conditions_") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        built = build_corpora(smoke_root(work / "root") if args.smoke else DATA, work)
        print(f"corpora derived in {time.perf_counter() - started:.1f} s under {work}", flush=True)
        models = {name: work / "models" / name for name in built}
        models["short-1s"] = models["short-0.5s"] = models["clean"]  # same UBM and enrollment as clean
        rows = []
        chosen = args.conditions.split(",") if args.conditions else list(built)
        if set(chosen) - set(built):
            parser.error(
                f"--conditions: unknown {sorted(set(chosen) - set(built))}; known: {', '.join(built)}"
            )
        for name, corpus in ((name, built[name]) for name in chosen):
            trained = not name.startswith("short")
            verified = name in ("clean", "telephone", "many")  # one check per kind of model
            rows.append(evaluate_cli(corpus, models[name], train=trained, check_verify=verified))
            print(f"  {name}: done at {time.perf_counter() - started:.0f} s", flush=True)
        print_cli_table(rows)
        clean_row, clean_test = rows[0], next(iter(built["clean"].tests))
        if clean_row["condition"] == "clean" and "top1" in clean_row:
            print("\n== CLI start-up (per invocation) ==")
            identify_s = clean_row["times"]["identify"]
            for line in startup_costs(models["clean"], clean_test, identify_s, clean_row["n_tests"]):
                print("  " + line)
        print("\n== In-process alternatives (one default changed; peer: the CLI's own model in-process) ==")
        cli_top1 = {row["condition"]: row.get("top1") for row in rows}
        failed = {name for name, row in zip(chosen, rows, strict=True) if "top1" not in row}
        for name in (name for name in ("telephone", "short-1s", "short-0.5s", "many") if name in chosen):
            if name in failed:
                print(f"{built[name].name}: skipped (its CLI run failed)")
                continue
            retrain = not args.no_retrain and not name.startswith("short")
            outcomes = run_variants(built[name], models[name], retrain=retrain)
            _print_variants(built[name].name, outcomes, cli_top1.get(built[name].name))
            print(f"  ({name} done at {time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s (shared 2-core machine: noisy timings)")
    return 0


def _speakers(corpus: corpora.Corpus) -> dict[str, list[Path]]:
    return {folder.name: sorted(folder.iterdir()) for folder in sorted(corpus.speakers_dir.iterdir())}


def _print_variants(condition: str, outcomes: list, cli_top1: float | None) -> None:
    base = outcomes[0]
    same = (
        "n/a"
        if cli_top1 is None
        else ("yes" if abs(cli_top1 - base.top1) < 1e-9 else f"NO (CLI {cli_top1:.1%})")
    )
    print(f"{condition} (in-process default equals CLI top-1: {same})")
    for outcome in outcomes:
        print(
            f"  {outcome.variant:<38}{outcome.n_models:>4} models {outcome.n_tests:>4} tests  top1 "
            f"{outcome.top1:6.1%}  EER {outcome.eer:5.1%}  at thresholds ~{outcome.threshold:g}: miss "
            f"{outcome.miss:5.1%} FA {outcome.false_alarm:5.1%}  ({outcome.seconds:.1f} s)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
