"""The trained generator's quality check (priors.check): whether its reconstructions are good
enough to trust what the methods that draw with it show. Where a figure falls below its minimum,
one message names the figure, the minimum and the fix; the generator_metrics job logs it as a
warning and records it in generator.json, whence index.html shows it, or stops the run
(priors.check.on_poor: stop) before anything is drawn with the generator.

A generator trained too briefly (the issue that brought this in: 4,860 images at the old default
of 3 passes, 12 times fewer updates than Fashion-MNIST's) draws blurred blobs: the methods'
images then show what it can draw, not what the unit responds to, and nothing said so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facetviz.core.errors import FacetvizError
from facetviz.core.progress import log
from facetviz.core.settings import PriorCheckSettings

# the metric in generator.json -> (its minimum's key under priors.check, what the figure is)
FIGURES = {
    "reconstruction_accuracy": ("accuracy", "the oracle's accuracy on its reconstructions"),
    "code_cosine": ("code_cosine", "the mean cosine of E(G(E(x))) to E(x)"),
}


def check_generator(
    metrics: Mapping[str, Any], settings: PriorCheckSettings, width: int
) -> dict[str, Any]:
    """The check's record for generator.json: passed, the minimums it held the figures to, and
    each figure below its minimum (a figure the run does not measure, the accuracy without an
    oracle, is not checked)."""
    minimums = {
        metric: getattr(settings, key)
        for metric, (key, _what) in FIGURES.items()
        if metric in metrics
    }
    problems = [
        {
            "figure": metric,
            "value": round(float(metrics[metric]), 4),
            "minimum": minimum,
            "key": f"priors.check.{FIGURES[metric][0]}",
        }
        for metric, minimum in minimums.items()
        if metrics[metric] < minimum
    ]
    record: dict[str, Any] = {"passed": not problems, "on_poor": settings.on_poor}
    record["minimums"] = minimums
    if problems:
        record["problems"] = problems
        record["message"] = poor_prior_message(problems, metrics, width)
    return record


def poor_prior_message(
    problems: list[Mapping[str, Any]], metrics: Mapping[str, Any], width: int
) -> str:
    """What is wrong with the generator and how to fix it, in one paragraph."""
    below = "; ".join(
        f"{FIGURES[p['figure']][1]} is {p['value']:.3f}, below {p['key']} = {p['minimum']:g}"
        for p in problems
    )
    weak_oracle = ""
    accuracy = next((p for p in problems if p["figure"] == "reconstruction_accuracy"), None)
    if accuracy and metrics.get("real_accuracy", 1.0) < accuracy["minimum"]:
        weak_oracle = (
            f" (the oracle itself scores only {metrics['real_accuracy']:.3f} on the real test "
            "images: a stronger oracle, oracle.epochs, may be the fix)"
        )
    key = metrics.get("updates_from", "priors.updates")
    now = f"{metrics['passes']:g}" if key.endswith("epochs") else str(metrics.get("updates", "?"))
    keys = " or ".join(p["key"] for p in problems)
    return (
        f"The generator is too poor to trust: {below}{weak_oracle}. The images of the methods "
        "that draw with it (dgn, ppgn) show what it can draw, not what the unit responds to. "
        f"Fix: raise {key} (now {now}) or priors.width (now {width}), or lower {keys} if you "
        "accept this generator."
    )


def act_on(record: Mapping[str, Any]) -> None:
    """A failed check's message as a warning in the job's log, or, with on_poor: stop, as the
    error that stops the run."""
    if record["passed"]:
        log.info("generator check passed (minimums: %s)",
                 ", ".join(f"{k} {v:g}" for k, v in record["minimums"].items()))  # fmt: skip
        return
    if record["on_poor"] == "stop":
        raise FacetvizError(f"{record['message']} (priors.check.on_poor is stop)")
    log.warning("%s", record["message"])
