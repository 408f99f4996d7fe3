"""The ``recipe:`` and ``data:`` sections of a recipe YAML, checked, with the corpus preparer they select.

A recipe file is a normal spkid config (``features``, ``ubm``, ``enroll``, ``score``) plus two sections that
only recipes read: ``recipe:`` (which corpus layout, where results go, how to split) and ``data:`` (where
the corpus lives). Relative paths are resolved against the current directory, so run recipes from the
repository root (or override the paths with ``--set data.root=DIR``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spkid.config_checks import did_you_mean
from spkid.corpora.protocol import Protocol
from spkid.errors import ConfigError
from spkid.recognizer import Config, config_to_yaml, load_config

__all__ = [
    "CORPORA",
    "RecipeSettings",
    "check_data_root",
    "load_recipe",
    "prepare_protocol",
    "resolved_recipe_yaml",
]

#: ``recipe:`` keys every corpus accepts, with their defaults.
COMMON_KEYS: dict[str, Any] = {
    "corpus": None,  # required: librispeech | voxceleb1 | folders | speech_commands
    "output_dir": None,  # default: exp/<corpus>
    "n_jobs": 1,  # worker processes for feature extraction
    "skip_bad": False,  # skip unreadable / silent files instead of stopping
    "top_k": 5,  # identification accuracy is reported at top-1 and top-k
}
#: Corpus-specific ``recipe:`` keys (split settings) with their defaults, passed to the preparer.
CORPUS_KEYS: dict[str, dict[str, Any]] = {
    "librispeech": {"train_subset": "train-clean-100", "test_subset": "test-other", "n_enroll": 5},
    "voxceleb1": {
        "task": "verification",  # verification (veri_test lists) | identification (iden_split)
        "trials_file": "veri_test2.txt",
        "max_train_per_speaker": None,
        "split_file": "iden_split.txt",
        "test_split": 3,
    },
    "folders": {"enroll_fraction": 0.5, "n_enroll": None, "seed": None},
    "speech_commands": {"min_clips": 30, "n_enroll": 10},  # enrolled: speakers with >= min_clips clips
}
#: ``data:`` keys: ``root`` (required) and, for folders, an optional separate UBM tree.
DATA_KEYS: dict[str, tuple[str, ...]] = {
    "librispeech": ("root",),
    "voxceleb1": ("root",),
    "folders": ("root", "ubm_root"),
    "speech_commands": ("root",),
}
CORPORA: tuple[str, ...] = tuple(CORPUS_KEYS)
#: Keys whose default is null but which take an integer when set (the value is a sample of the type).
NULLABLE_INT_KEYS: dict[str, int] = {"max_train_per_speaker": 0, "n_enroll": 0, "seed": 0}


@dataclass(frozen=True)
class RecipeSettings:
    """A loaded, checked recipe.

    Attributes
    ----------
    path : Path
        The recipe file.
    config : Config
        The resolved configuration (all sections, overrides applied).
    corpus : str
        ``librispeech``, ``voxceleb1``, ``folders`` or ``speech_commands``.
    options : dict
        The ``recipe:`` section with defaults filled in (common and corpus-specific keys).
    data : dict of str to Path
        The ``data:`` paths, absolute.
    output_dir : Path
        Where the stage directories go, absolute.
    """

    path: Path
    config: Config
    corpus: str
    options: dict[str, Any]
    data: dict[str, Path]
    output_dir: Path

    @property
    def n_jobs(self) -> int:
        return int(self.options["n_jobs"])

    @property
    def skip_bad(self) -> bool:
        return bool(self.options["skip_bad"])


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    return did_you_mean(word, candidates) or f"; valid keys: {', '.join(candidates)}"


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> RecipeSettings:
    """Load a recipe YAML with ``--set`` overrides, check its ``recipe:`` and ``data:`` sections.

    Raises
    ------
    ConfigError
        Anything :func:`spkid.recognizer.load_config` rejects, a missing or unknown ``recipe.corpus``, an
        unknown ``recipe.*`` or ``data.*`` key (with a did-you-mean), a value of the wrong type, or a
        missing ``data.root``.
    """
    path = Path(path)
    config = load_config(path, overrides)
    recipe = dict(config.recipe)
    corpus = recipe.get("corpus")
    if corpus not in CORPUS_KEYS:
        hint = _did_you_mean(str(corpus), CORPORA) if isinstance(corpus, str) else ""
        raise ConfigError(f"{path}: recipe.corpus must be one of {', '.join(CORPORA)}, got {corpus!r}{hint}")
    defaults = {**COMMON_KEYS, **CORPUS_KEYS[corpus]}
    for key in recipe:
        if key not in defaults:
            raise ConfigError(
                f"{path}: unknown key recipe.{key} for corpus {corpus}{_did_you_mean(key, list(defaults))}"
            )
    options = {**defaults, **recipe}
    for key, default in defaults.items():
        value = options[key]
        kind = NULLABLE_INT_KEYS.get(key, default)
        if kind is not None and value is not None and not _same_kind(value, kind):
            raise ConfigError(f"{path}: recipe.{key}: expected {type(kind).__name__}, got {value!r}")
    if not isinstance(options["n_jobs"], int) or options["n_jobs"] == 0 or options["n_jobs"] < -1:
        raise ConfigError(
            f"{path}: recipe.n_jobs: expected a positive integer or -1, got {options['n_jobs']!r}"
        )
    if options["top_k"] < 1:
        raise ConfigError(f"{path}: recipe.top_k: must be at least 1, got {options['top_k']}")

    data: dict[str, Path] = {}
    for key, value in config.data.items():
        if key not in DATA_KEYS[corpus]:
            raise ConfigError(
                f"{path}: unknown key data.{key} for corpus {corpus}{_did_you_mean(key, DATA_KEYS[corpus])}"
            )
        if value is None:
            continue
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{path}: data.{key}: expected a path, got {value!r}")
        data[key] = Path(value).expanduser().absolute()
    if "root" not in data:
        raise ConfigError(f"{path}: data.root is required (the corpus folder); e.g. --set data.root=DIR")
    output_dir = options["output_dir"] or f"exp/{corpus}"
    if not isinstance(output_dir, (str, Path)):
        raise ConfigError(f"{path}: recipe.output_dir: expected a path, got {output_dir!r}")
    options["output_dir"] = str(output_dir)
    return RecipeSettings(
        path=path,
        config=config,
        corpus=corpus,
        options=options,
        data=data,
        output_dir=Path(output_dir).expanduser().absolute(),
    )


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def resolved_recipe_yaml(settings: RecipeSettings) -> str:
    """The resolved recipe (defaults filled in, paths absolute) as YAML, saved beside the results."""
    resolved = yaml.safe_load(config_to_yaml(settings.config)) or {}
    resolved["recipe"] = dict(settings.options) | {"output_dir": str(settings.output_dir)}
    resolved["data"] = {key: str(value) for key, value in settings.data.items()}
    header = f"# Resolved from {settings.path} by spkid run; re-run with: spkid run <this file>\n"
    return header + yaml.safe_dump(resolved, sort_keys=False, default_flow_style=False)


def check_data_root(settings: RecipeSettings) -> None:
    """Raise :class:`ConfigError` when ``data.root`` (or ``data.ubm_root``) does not exist."""
    for key, path in settings.data.items():
        if not path.exists():
            raise ConfigError(
                f"data.{key} {path}: no such folder (relative paths are resolved against the current "
                "directory; run from the repository root or pass --set data.root=DIR)"
            )


def prepare_protocol(settings: RecipeSettings) -> Protocol:
    """Build the corpus' evaluation protocol with the preparer ``recipe.corpus`` names.

    Raises
    ------
    DataError
        The corpus layout or its lists are malformed (from the preparer).
    ConfigError
        ``data.root`` does not exist.
    """
    check_data_root(settings)
    root = settings.data["root"]
    options = settings.options
    preparers: Mapping[str, Callable[[], Protocol]] = {
        "librispeech": lambda: _librispeech(root, options),
        "voxceleb1": lambda: _voxceleb1(root, options),
        "folders": lambda: _folders(root, options, settings.data.get("ubm_root")),
        "speech_commands": lambda: _speech_commands(root, options),
    }
    return preparers[settings.corpus]()


def _librispeech(root: Path, options: Mapping[str, Any]) -> Protocol:
    from spkid.corpora.librispeech import prepare_librispeech

    return prepare_librispeech(
        root,
        train_subset=options["train_subset"],
        test_subset=options["test_subset"],
        n_enroll=options["n_enroll"],
    )


def _voxceleb1(root: Path, options: Mapping[str, Any]) -> Protocol:
    from spkid.corpora.voxceleb1 import prepare_voxceleb1_identification, prepare_voxceleb1_verification

    if options["task"] == "verification":
        return prepare_voxceleb1_verification(
            root, trials_file=options["trials_file"], max_train_per_speaker=options["max_train_per_speaker"]
        )
    if options["task"] == "identification":
        return prepare_voxceleb1_identification(
            root, split_file=options["split_file"], test_split=options["test_split"], with_trials=True
        )
    raise ConfigError(f"recipe.task: expected 'verification' or 'identification', got {options['task']!r}")


def _folders(root: Path, options: Mapping[str, Any], ubm_root: Path | None) -> Protocol:
    from spkid.corpora.folders import prepare_folders

    return prepare_folders(
        root,
        enroll_fraction=options["enroll_fraction"],
        n_enroll=options["n_enroll"],
        seed=options["seed"],
        ubm_root=ubm_root,
    )


def _speech_commands(root: Path, options: Mapping[str, Any]) -> Protocol:
    from spkid.corpora.speech_commands import prepare_speech_commands

    return prepare_speech_commands(root, min_clips=options["min_clips"], n_enroll=options["n_enroll"])
