"""How ``spkid identify`` and ``spkid verify`` print their results, and the exit code of a rejection.

Text output is aligned and says what the scores are (a ``scores: <kind>`` line on stderr); in ``--json``
every result carries that as ``"score_kind"``, so the document stays a list of results. Open-set and
verification results show the threshold they were decided on. :data:`REJECTED_EXIT_CODE` is the exit code
when any recording was rejected, so a script can act on the decision (errors stay 1, usage errors 2).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer

from spkid.cli.support import info

__all__ = [
    "REJECTED_EXIT_CODE",
    "exit_if_rejected",
    "json_results",
    "print_identifications",
    "print_verifications",
]

#: Exit code of ``verify`` and ``identify --open-set`` when at least one recording was rejected.
REJECTED_EXIT_CODE = 3


def json_results(outcome: Any) -> str:
    """The results as one JSON list, each with the ``"score_kind"`` of its scores (what text mode prints)."""
    kind = {"score_kind": outcome.kind} if outcome.kind else {}
    return json.dumps([{**result.to_dict(), **kind} for result in outcome.results], indent=2)


def _ranked_lines(scores: Sequence[tuple[str, float]]) -> list[str]:
    width = max((len(name) for name, _ in scores), default=0)
    rank_width = len(str(len(scores)))
    return [
        f"  {rank:>{rank_width}}. {name:<{width}}  {score:+10.4f}"
        for rank, (name, score) in enumerate(scores, start=1)
    ]


def print_identifications(ctx: typer.Context, outcome: Any, *, as_json: bool) -> None:
    """Every identification: JSON (one document), or a decision line and the ranked, aligned scores."""
    if as_json:
        typer.echo(json_results(outcome))
        return
    if outcome.kind:
        info(ctx, f"scores: {outcome.kind}")
    for result in outcome.results:
        if result.threshold is None:  # closed set: the best speaker, always
            typer.echo(f"{result.recording}: {result.speaker}")
        elif result.accepted:
            best = result.scores[0][1]
            typer.echo(
                f"{result.recording}: {result.speaker} (accepted: {best:+.4f} >= threshold "
                f"{result.threshold:+.4f})"
            )
        else:
            name, best = result.scores[0] if result.scores else ("?", float("nan"))
            typer.echo(
                f"{result.recording}: rejected, no enrolled speaker (best {name} {best:+.4f} < threshold "
                f"{result.threshold:+.4f})"
            )
        for line in _ranked_lines(result.scores):
            typer.echo(line)


def print_verifications(ctx: typer.Context, outcome: Any, speaker: str, *, as_json: bool) -> None:
    """Every verification: JSON (one document), or one aligned accept/reject line per recording."""
    if as_json:
        typer.echo(json_results(outcome))
        return
    if outcome.kind:
        info(ctx, f"scores: {outcome.kind}")
    width = max((len(result.recording) for result in outcome.results), default=0)
    for result in outcome.results:
        decision = "accept" if result.accepted else "reject"
        typer.echo(
            f"{result.recording + ':':<{width + 1}} {decision} {speaker} (score {result.score:+.4f}, "
            f"threshold {result.threshold:+.4f})"
        )


def exit_if_rejected(results: Sequence[Any]) -> None:
    """Exit with :data:`REJECTED_EXIT_CODE` when any result was not accepted (output already printed)."""
    if any(not result.accepted for result in results):
        raise typer.Exit(REJECTED_EXIT_CODE)
