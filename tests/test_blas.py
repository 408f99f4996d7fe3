"""The thread policy (CPU budget, n_jobs, nested limits) and compiled kernels on read-only installs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, check_cli_ok, cli_invoke

from spkid.blas import (
    _cgroup_quota,
    cpu_budget,
    resolve_n_jobs,
    thread_limits,
    worker_threads,
)
from spkid.errors import ConfigError

SMALL = ["--set", "ubm.n_components=8", "--set", "score.cohort_size=4", "--set", "ubm.max_iter=3"]


def test_budget_follows_affinity_and_thread_variables():
    affinity = len(os.sched_getaffinity(0))
    assert cpu_budget({}) <= affinity
    assert cpu_budget({"OMP_NUM_THREADS": "1"}) == 1
    assert cpu_budget({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "64"}) == 1
    assert cpu_budget({"OMP_NUM_THREADS": "4,2"}) == min(4, cpu_budget({}))
    assert cpu_budget({"OMP_NUM_THREADS": "lots"}) == cpu_budget({})  # not a number: ignored


def test_cgroup_quota_v2_and_v1(tmp_path: Path):
    own = tmp_path / "self_cgroup"
    own.write_text("0::/system.slice/spkid.service\n")
    service = tmp_path / "cg" / "system.slice" / "spkid.service"
    service.mkdir(parents=True)
    (service / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_quota(tmp_path / "cg", own) == 2  # 1.5 CPUs round up
    (service / "cpu.max").write_text("max 100000\n")
    (tmp_path / "cg" / "system.slice" / "cpu.max").write_text("100000 100000\n")  # the parent's quota holds
    assert _cgroup_quota(tmp_path / "cg", own) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu" / "docker").mkdir(parents=True)
    own.write_text("4:cpu,cpuacct:/docker\n")
    (v1 / "cpu" / "docker" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "docker" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_quota(v1, own) == 3
    (v1 / "cpu" / "docker" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _cgroup_quota(v1, own) is None
    assert _cgroup_quota(tmp_path / "nothing", tmp_path / "missing") is None


def test_n_jobs_are_capped_at_the_budget():
    assert resolve_n_jobs(-1, budget=3) == 3
    assert resolve_n_jobs(-3, budget=3) == 1
    assert resolve_n_jobs(-10, budget=3) == 1
    assert resolve_n_jobs(2, budget=3) == 2
    assert resolve_n_jobs(8, budget=3) == 3
    with pytest.raises(ConfigError, match="n_jobs=0"):
        resolve_n_jobs(0)
    # Nested: workers x threads per worker never exceed the budget.
    for budget in (1, 2, 3, 8):
        for n_workers in range(1, 12):
            threads = worker_threads(n_workers, budget=budget)
            assert threads >= 1
            assert n_workers * threads <= max(budget, n_workers)


def test_thread_limits_cap_blas_and_numba():
    from numba import get_num_threads

    from spkid.blas import controller

    before = get_num_threads()
    with thread_limits(1):
        assert get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in controller().info())
    assert get_num_threads() == before


def test_the_e_step_honours_the_budget(monkeypatch: pytest.MonkeyPatch):
    """n_jobs=-1 runs no more chunk streams than the budget allows (OMP_NUM_THREADS=1 here: one)."""
    import numpy as np

    from spkid.gmm import DiagonalGMM

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    frames = np.random.default_rng(0).standard_normal((3000, 4)).astype(np.float32)
    model = DiagonalGMM(4, max_iter=2, chunk_size=256, n_jobs=-1, random_state=0).fit(frames)
    reference = DiagonalGMM(4, max_iter=2, chunk_size=256, n_jobs=1, random_state=0).fit(frames)
    np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ read-only
def _read_only_mounts(
    targets: list[Path], command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess:
    """Run ``command`` in a private mount namespace where every target is a read-only bind mount of itself."""
    mounts = " && ".join(f"mount --bind '{t}' '{t}' && mount -o remount,bind,ro '{t}'" for t in targets)
    script = f'{mounts} && exec "$@"'
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    return subprocess.run(
        ["unshare", *flags, "sh", "-c", script, "sh", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def model_and_test(
    synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """A small enrolled model, one held-out recording and its speaker."""
    root = tmp_path_factory.mktemp("readonly")
    speakers = sorted(p for p in synthetic_corpus.iterdir() if p.is_dir())
    for speaker in speakers:
        (root / "enroll" / speaker.name).mkdir(parents=True)
        for file in sorted(speaker.glob("*.wav"))[:3]:
            shutil.copy(file, root / "enroll" / speaker.name / file.name)
    model = root / "model"
    check_cli_ok(cli_invoke("--quiet", "train-ubm", model, root / "enroll", *SMALL))
    check_cli_ok(cli_invoke("--quiet", "enroll", model, root / "enroll"))
    test_file = sorted(speakers[1].glob("*.wav"))[-1]
    return model, test_file, speakers[1].name


def test_identify_on_a_read_only_install(model_and_test: tuple[Path, Path, str], tmp_path: Path):
    """Package and cache folders read-only: a right answer, at most one warning, never a traceback."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to make read-only bind mounts")
    model, test_file, speaker = model_and_test
    cache, writable_tmp, read_only_tmp = tmp_path / "cache", tmp_path / "tmp", tmp_path / "ro_tmp"
    for folder in (cache, writable_tmp, read_only_tmp):
        folder.mkdir()
    package = REPO_ROOT / "spkid"
    probe = _read_only_mounts([cache], ["true"], dict(os.environ))
    if probe.returncode != 0:
        pytest.skip(f"mounting is not permitted here: {probe.stderr.strip()[:200]}")
    command = [
        sys.executable,
        "-c",
        "from spkid.cli import app; app()",
        "identify",
        str(model),
        str(test_file),
    ]
    base_env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": str(cache),
        "XDG_CACHE_HOME": str(cache),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    base_env.pop("NUMBA_CACHE_DIR", None)
    # First with a writable temporary folder (kernels cached there), then with none (compiled, uncached).
    for tmp, targets in ((writable_tmp, [package, cache]), (read_only_tmp, [package, cache, read_only_tmp])):
        result = _read_only_mounts(targets, [*command, "--json"], {**base_env, "TMPDIR": str(tmp)})
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(warnings) <= 1 and all(
            line.startswith("warning: numba cannot cache") for line in warnings
        ), result.stderr
        assert json.loads(result.stdout)[0]["speaker"] == speaker
    assert any(writable_tmp.rglob("*.nbi")), "kernels were not cached in the writable temporary folder"
