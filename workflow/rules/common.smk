# Config validation and helpers shared by the rules.
import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# The package is importable from this source tree here, without installing it. Jobs run
# `python -m facetviz`: the `python` on PATH must have facetviz installed (`make` puts the
# project's venv first on PATH; by hand, activate the venv first).
SRC = str(Path(workflow.basedir) / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

validate(config, "../schemas/config.schema.yaml")

from facetviz.config import check_dataset_files, check_run_config  # noqa: E402
from facetviz.errors import ConfigError  # noqa: E402
from facetviz.models import missing_weights_message, weights_file  # noqa: E402

try:
    NEURONS = {neuron["name"]: neuron for neuron in check_run_config(config)}
    check_dataset_files(config, list(NEURONS.values()))
    WEIGHTS = weights_file(config["model"])
except ConfigError as err:
    raise WorkflowError(f"Invalid config: {err}") from None
if WEIGHTS is not None and not WEIGHTS.exists():
    raise WorkflowError(missing_weights_message(config["model"], WEIGHTS))

RESULTS = f"results/{config['run']}"
LOGS = f"{RESULTS}/logs"
TRAINS_MODEL = config["model"]["kind"] == "embedded"


# Synthesis jobs take neurons in config order, synthesis.neurons_per_job at a time. Appending a
# neuron therefore touches only the last batch (or starts a new one).
PER_JOB = config["synthesis"]["neurons_per_job"]
BATCHES = {
    f"batch-{start // PER_JOB:03d}": list(NEURONS)[start : start + PER_JOB]
    for start in range(0, len(NEURONS), PER_JOB)
}
BATCH_OF = {neuron: batch for batch, names in BATCHES.items() for neuron in names}
# Synthesis methods run side by side; the first is the one the neuron figures show.
METHODS = config["synthesis"]["methods"]
PRIMARY_METHOD = METHODS[0]
# Class units: the ones whose synthesized images an oracle can judge (synthesis_metrics).
CLASS_UNITS = [name for name, neuron in NEURONS.items() if neuron.get("select") == "label"]
# Hidden units: the rest, shown together in the hidden-units figure.
HIDDEN_UNITS = [name for name in NEURONS if name not in CLASS_UNITS]
# Jobs that use the model ask the scheduler for a GPU only when the run is set to CUDA.
GPU = {"gpu": 1} if str(config["device"]).startswith("cuda") else {}


wildcard_constraints:
    neuron="|".join(re.escape(name) for name in NEURONS),
    batch="|".join(re.escape(batch) for batch in BATCHES),
    method="|".join(METHODS),


def settings(**sections):
    """A rule's settings as one JSON string param: Snakemake reruns the rule when it changes."""
    # Key order is kept: label_map order defines class indices.
    return json.dumps(sections)


def model_settings():
    return {
        "dataset": config["dataset"],
        "model": config["model"],
        "seed": config["seed"],
        "device": config["device"],
    }


def model_weights():
    """The weights file the model stages read: the run's trained checkpoint, a file, or none."""
    if TRAINS_MODEL:
        return f"{RESULTS}/model/model.pt"
    return str(WEIGHTS) if WEIGHTS is not None else []


def synthesis_batch_dir(neuron, method=PRIMARY_METHOD):
    """The synthesis job's output folder that holds `neuron`'s images."""
    return f"{RESULTS}/synthesis/{method}/{BATCH_OF[neuron]}"


def synthesis_dir(neuron, method=PRIMARY_METHOD):
    return f"{synthesis_batch_dir(neuron, method)}/{neuron}"


def image_dirs(neurons, methods=METHODS):
    """Per method, the synthesis folder of each neuron (what a figure reads, as a setting)."""
    return {method: [synthesis_dir(n, method) for n in neurons] for method in methods}


def synthesis_settings(method):
    """What a synthesis job depends on: the shared settings and its own method's only."""
    shared = ("steps_scale", "batch_size", "mixed_precision")
    synthesis = {key: config["synthesis"][key] for key in shared}
    synthesis[method] = config["synthesis"].get(method, {})
    return synthesis


def target_layers():
    return sorted({neuron["layer"] for neuron in NEURONS.values()})


def final_outputs():
    figures = ["overview", "methods", "metrics"] + (["hidden_units"] if HIDDEN_UNITS else [])
    figures += [f"facets/{neuron}" for neuron in NEURONS]
    figures += [f"embedding/{neuron}" for neuron in NEURONS]
    outputs = expand(f"{RESULTS}/figures/{{figure}}{{ext}}", figure=figures, ext=[".png", ".pdf"])
    outputs += expand(f"{RESULTS}/synthesis/{{method}}/{{batch}}", method=METHODS, batch=BATCHES)
    outputs += [f"{RESULTS}/facets/table.csv", f"{RESULTS}/index.html"]
    if SYNTHESIS_METRICS:  # set in synthesize.smk
        outputs.append(SYNTHESIS_METRICS)
    if TRAINS_MODEL:
        outputs.append(f"{RESULTS}/model/metrics.json")
    return outputs
