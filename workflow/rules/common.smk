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

from facetviz.config import check_run_config  # noqa: E402
from facetviz.errors import ConfigError  # noqa: E402
from facetviz.models import missing_weights_message, weights_file  # noqa: E402

try:
    NEURONS = {neuron["name"]: neuron for neuron in check_run_config(config)}
    WEIGHTS = weights_file(config["model"])
except ConfigError as err:
    raise WorkflowError(f"Invalid config: {err}") from None
if WEIGHTS is not None and not WEIGHTS.exists():
    raise WorkflowError(missing_weights_message(config["model"], WEIGHTS))

RESULTS = f"results/{config['run']}"
LOGS = f"{RESULTS}/logs"
TRAINS_MODEL = config["model"]["kind"] == "embedded"


wildcard_constraints:
    neuron="|".join(re.escape(name) for name in NEURONS),


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


def target_layers():
    return sorted({neuron["layer"] for neuron in NEURONS.values()})


def final_outputs():
    outputs = [f"{RESULTS}/figures/overview.png"]
    outputs += expand(f"{RESULTS}/figures/{{neuron}}.png", neuron=NEURONS)
    outputs += expand(f"{RESULTS}/figures/embedding/{{neuron}}.png", neuron=NEURONS)
    outputs.append(f"{RESULTS}/facets/table.csv")
    if TRAINS_MODEL:
        outputs.append(f"{RESULTS}/model/metrics.json")
    return outputs
