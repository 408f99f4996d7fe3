"""Whole experiments: the stage runner behind ``spkid run`` and the synthetic demo behind ``spkid demo``.

The public face of the recipes; its modules, one job each (imports point down the list):

- :mod:`~spkid.recipes.config` a recipe file: a spkid config plus the ``data`` and ``recipe`` sections;
- :mod:`~spkid.recipes.reports` every run's report kept under a name from its settings, and their summary;
- :mod:`~spkid.recipes.stages` the stages (prepare, features, ubm, enroll, score, report), each writing a
  directory;
- :mod:`~spkid.recipes.runner` :func:`run_recipe`: which stages are up to date, running the others;
- :mod:`~spkid.recipes.demo` :func:`run_demo`, the end-to-end demo on a synthetic corpus.
"""

from spkid.recipes.config import CORPORA, RecipeSettings, load_recipe, prepare_protocol, resolved_recipe_yaml
from spkid.recipes.demo import DemoSettings, DemoSummary, run_demo
from spkid.recipes.runner import (
    MARKER_NAME,
    STAGES,
    RecipeResult,
    StageOutcome,
    is_up_to_date,
    run_recipe,
    stage_hashes,
    stage_plan,
)

__all__ = [
    "CORPORA",
    "MARKER_NAME",
    "STAGES",
    "DemoSettings",
    "DemoSummary",
    "RecipeResult",
    "RecipeSettings",
    "StageOutcome",
    "is_up_to_date",
    "load_recipe",
    "prepare_protocol",
    "resolved_recipe_yaml",
    "run_demo",
    "run_recipe",
    "stage_hashes",
    "stage_plan",
]
