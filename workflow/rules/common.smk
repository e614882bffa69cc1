# Config validation and helpers shared by the rules.
import json
import re
import sys
from dataclasses import asdict
from functools import cache
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

from facetviz.checks import check_dataset_files, check_run_config, code_layers  # noqa: E402
from facetviz.core import overlay  # noqa: E402
from facetviz.core.errors import ConfigError  # noqa: E402
from facetviz.core.settings import DatasetSettings  # noqa: E402
from facetviz.data.checks import FASHION_MNIST_KINDS, label_space  # noqa: E402
from facetviz.model.networks import missing_weights_message, weights_file  # noqa: E402
from facetviz.synthesis import methods as synthesis_methods  # noqa: E402

# An overlay config (one with `base:`, e.g. config/evaluation.yaml) is merged onto its base
# before validation, in place: Snakemake and the rules hold this very dict.
try:
    RESOLVED = overlay.resolve(config, Path(workflow.basedir))
except ConfigError as err:
    raise WorkflowError(f"Invalid config: {err}") from None
config.clear()
config.update(RESOLVED)
validate(config, "../schemas/config.schema.yaml")

try:
    NEURONS = {neuron["name"]: neuron for neuron in check_run_config(config)}
    check_dataset_files(config, list(NEURONS.values()))
    # a token layer's view (model/views.py) is part of the layer's name from here on
    FACET_LAYER, CODE_LAYER = code_layers(config)
    WEIGHTS = weights_file(config["model"])
    # imports synthesis.plugins, so that their methods are known from here on
    synthesis_methods.check_synthesis(config["synthesis"])
except ConfigError as err:
    raise WorkflowError(f"Invalid config: {err}") from None
config["facets"]["layer"] = FACET_LAYER
config["facets"].pop("tokens")  # folded into the layer; a conv run's settings stay as they were
config["priors"]["code_layer"] = CODE_LAYER
if WEIGHTS is not None and not WEIGHTS.exists():
    raise WorkflowError(missing_weights_message(config["model"], WEIGHTS))

RESULTS = f"results/{config['run']}"
LOGS = f"{RESULTS}/logs"
TRAINS_MODEL = config["model"]["kind"] == "embedded"

# Results trees. A training tree holds what one training seed makes (model, activations, facets,
# oracle, priors): the run's own at RESULTS, and one per other `evaluation.train_seeds` entry. A
# synthesis tree holds one synthesis seed's images and metrics on one training tree: the run's
# own seed at the training tree itself, every other `evaluation.seeds` entry in `<tree>/seed-S`.
SEED = config["seed"]
TRAIN_SEEDS = list(dict.fromkeys([SEED, *config["evaluation"]["train_seeds"]]))
SYNTHESIS_SEEDS = list(dict.fromkeys(config["evaluation"]["seeds"] or [SEED]))


def train_tree(seed):
    return RESULTS if seed == SEED else f"{RESULTS}/train-seed-{seed}"


def synthesis_tree(train_seed, seed):
    tree = train_tree(train_seed)
    return tree if seed == SEED else f"{tree}/seed-{seed}"


TRAIN_TREES = {train_tree(seed): seed for seed in TRAIN_SEEDS}
# synthesis tree -> (its training tree, its synthesis seed)
SYNTHESIS_TREES = {RESULTS: (RESULTS, SEED)} | {
    synthesis_tree(t, s): (train_tree(t), s) for t in TRAIN_SEEDS for s in SYNTHESIS_SEEDS
}
# the trees an evaluation aggregates (every training seed times every synthesis seed)
EVALUATED_TREES = [synthesis_tree(t, s) for t in TRAIN_SEEDS for s in SYNTHESIS_SEEDS]


# Synthesis jobs take neurons in config order, synthesis.neurons_per_job at a time. Appending a
# neuron therefore touches only the last batch (or starts a new one).
PER_JOB = config["synthesis"]["neurons_per_job"]
BATCHES = {
    f"batch-{start // PER_JOB:03d}": list(NEURONS)[start : start + PER_JOB]
    for start in range(0, len(NEURONS), PER_JOB)
}
BATCH_OF = {neuron: batch for batch, names in BATCHES.items() for neuron in names}
# Synthesis methods run side by side; the first is the one the neuron figures show. Every run
# also scores the references (no optimization) beside them.
METHODS = config["synthesis"]["methods"]
PRIMARY_METHOD = METHODS[0]
# A learned prior (dgn, ppgn) brings its generator, and the generator's own reference G(centroid).
LEARNED_PRIOR = synthesis_methods.learned_prior(METHODS)
REFERENCES = synthesis_methods.references_for(METHODS)
SYNTHESIZED = METHODS + [name for name in REFERENCES if name not in METHODS]
# Class units: the ones whose synthesized images an oracle can judge (synthesis_metrics).
CLASS_UNITS = [name for name, neuron in NEURONS.items() if neuron.get("select") == "label"]
# Hidden units: the rest, shown together in the hidden-units figure.
HIDDEN_UNITS = [name for name in NEURONS if name not in CLASS_UNITS]
# Jobs that use the model ask the scheduler for a GPU only when the run is set to CUDA.
GPU = {"gpu": 1} if str(config["device"]).startswith("cuda") else {}

# The oracle (measure.smk) measures synthesized images. oracle.enabled null (auto): only where
# every image has a fine label of its own dataset, i.e. Fashion-MNIST and its scenes; true also
# trains one on an ImageFolder's folders.
ORACLE_ENABLED = (
    config["dataset"]["kind"] in FASHION_MNIST_KINDS
    if config["oracle"]["enabled"] is None
    else config["oracle"]["enabled"]
)
# Quality of every method's images of the class units, judged by the oracle; with it, the
# evaluation over seeds (one seed for a plain run).
MEASURED = ORACLE_ENABLED and bool(CLASS_UNITS)
SYNTHESIS_METRICS = f"{RESULTS}/synthesis/metrics.json" if MEASURED else None
# Probe neurons of a fine class, by name, with their class: the oracle judges their images too
# (measure.smk, probe_metrics); SAEs are compared with their layer's units (sae_purity).
FINE_NAMES = label_space(DatasetSettings.from_config(config["dataset"])).fine_names
PROBE_CLASSES = {
    name: config["probes"][neuron["probe"]]["class"]
    for name, neuron in NEURONS.items()
    if neuron.get("probe") and config["probes"][neuron["probe"]]["labels"] != "coarse"
    and config["probes"][neuron["probe"]]["class"] in FINE_NAMES
} if ORACLE_ENABLED else {}
SAE_COMPARED = 32  # latents and units compared by sae_purity
DIRECTIONS_MEASURED = bool(PROBE_CLASSES) or bool(config["sae"])
EVALUATION = f"{RESULTS}/evaluation" if MEASURED or DIRECTIONS_MEASURED else None


def alternatives(names):
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    neuron=alternatives(NEURONS),
    batch=alternatives(BATCHES),
    method=alternatives(SYNTHESIZED),
    tree=alternatives(TRAIN_TREES),
    stree=alternatives(SYNTHESIS_TREES),


def settings(**sections):
    """A rule's settings as one JSON string param: Snakemake reruns the rule when it changes."""
    # Key order is kept: label_map order defines class indices.
    return json.dumps(sections)


def model_settings(seed=SEED):
    return {
        "dataset": config["dataset"],
        "model": config["model"],
        "seed": seed,
        "device": config["device"],
    }


def model_weights(tree=RESULTS):
    """The weights file the model stages of a training tree read: its trained checkpoint, a
    file, or none.

    Rules pass it as `--weights={input.weights:q}`: Snakemake quotes the path (a file name may
    hold quotes, `$( )` or `;`), and none (an empty input) gives `--weights=`, read as none."""
    if TRAINS_MODEL:
        return f"{tree}/model/model.pt"
    return str(WEIGHTS) if WEIGHTS is not None else []


def tree_of(wildcards):
    """The training tree of a synthesis tree's job."""
    return SYNTHESIS_TREES[wildcards.stree][0]


def synthesis_batch_dir(neuron, method=PRIMARY_METHOD):
    """The synthesis job's output folder that holds `neuron`'s images."""
    return f"{RESULTS}/synthesis/{method}/{BATCH_OF[neuron]}"


def synthesis_dir(neuron, method=PRIMARY_METHOD):
    return f"{synthesis_batch_dir(neuron, method)}/{neuron}"


def image_dirs(neurons, methods=SYNTHESIZED, tree=RESULTS):
    """Per method, the synthesis folder of each neuron (what a figure reads, as a setting)."""
    return {
        method: [synthesis_dir(n, method).replace(RESULTS, tree, 1) for n in neurons]
        for method in methods
    }


@cache
def configured_method_settings(method):
    """A method's typed settings from its config block, validated once per workflow (every
    synthesis job of the method asks for them, some rules three times)."""
    return synthesis_methods.method_settings(method, config["synthesis"].get(method))


def synthesis_settings(method):
    """What a synthesis job depends on: the shared settings and its own method's only, with
    its defaults filled in (so that a changed default reruns it too), and the plugin module
    that defines it, if any, which the job imports."""
    shared = ("steps_scale", "batch_size", "mixed_precision")
    synthesis = {key: config["synthesis"][key] for key in shared}
    synthesis[method] = asdict(configured_method_settings(method))
    plugin = synthesis_methods.is_plugin(method)
    synthesis["plugins"] = [synthesis_methods.method_class(method).__module__] if plugin else []
    return synthesis


def declared_inputs(method):
    """The extra files a method needs with its config's settings (`Method.required_inputs`)."""
    cls = synthesis_methods.method_class(method)
    return cls.required_inputs(configured_method_settings(method))


# priors.check.on_poor: stop: a method that draws with the generator waits for its check
# (the generator_metrics job), which fails where the generator is too poor, so that nothing is drawn
# with it. `ancient`: a re-measured generator (a new threshold, a new oracle) redraws nothing.
GENERATOR = "priors/generator.pt"
STOP_ON_POOR_PRIOR = config["priors"]["check"]["on_poor"] == "stop"


def method_inputs(wildcards):
    """A method's extra input files, by name, in its training tree (and the generator's check
    where the run stops on a poor generator)."""
    declared = declared_inputs(wildcards.method)
    tree = tree_of(wildcards)
    inputs = {name: f"{tree}/{path}" for name, path in declared.items()}
    if STOP_ON_POOR_PRIOR and GENERATOR in declared.values():
        inputs["generator_checked"] = ancient(f"{tree}/priors/generator.json")
    return inputs


def method_input_args(wildcards, input):
    """`--input NAME=PATH` for each of the method's extra inputs, as a list of arguments that
    `{params.inputs:q}` quotes one by one: a plug-in's paths reach the shell as plain words."""
    names = declared_inputs(wildcards.method)
    return [arg for name in names for arg in ("--input", f"{name}={input[name]}")]


def target_layers():
    layers = [neuron["layer"] for neuron in NEURONS.values()]
    layers += [entry["layer"] for section in ("probes", "sae") for entry in config[section].values()]
    return sorted(set(layers))


def readout_file(tree, neuron):
    """The file a neuron that is not a unit reads in `tree` (a direction's .npy, a probe's, an
    SAE), or None."""
    neuron = NEURONS[neuron]
    if neuron.get("direction"):
        return neuron["direction"]
    if neuron.get("probe"):
        return f"{tree}/probes/{neuron['probe']}.npy"
    if neuron.get("sae"):
        return f"{tree}/sae/{neuron['sae']}.h5"
    return None


def readout_settings(wildcards):
    """`readout_file` for a neuron that reads one; nothing for a unit, whose facets job's
    settings stay what they were before readouts existed."""
    path = readout_file(wildcards.tree, wildcards.neuron)
    return {} if path is None else {"readout_file": path}


def final_outputs():
    figures = ["overview", "methods", "metrics"] + (["hidden_units"] if HIDDEN_UNITS else [])
    figures += [f"facets/{neuron}" for neuron in NEURONS]
    figures += [f"embedding/{neuron}" for neuron in NEURONS]
    if MEASURED:
        figures += ["pareto", "path"]
    outputs = expand(f"{RESULTS}/figures/{{figure}}{{ext}}", figure=figures, ext=[".png", ".pdf"])
    outputs += expand(
        f"{RESULTS}/synthesis/{{method}}/{{batch}}", method=SYNTHESIZED, batch=BATCHES
    )
    outputs += [f"{RESULTS}/facets/table.csv", f"{RESULTS}/index.html"]
    if MEASURED:
        outputs += [SYNTHESIS_METRICS, f"{EVALUATION}/summary.json"]
    if DIRECTIONS_MEASURED:
        outputs.append(f"{EVALUATION}/directions.json")
    if TRAINS_MODEL:
        outputs.append(f"{RESULTS}/model/metrics.json")
    if LEARNED_PRIOR:  # every training tree's generator, measured
        outputs += [f"{tree}/priors/generator.json" for tree in TRAIN_TREES]
    return outputs


def oracle_settings(wildcards):
    """What the oracle depends on: not the run's label_map, split or max_images, nor
    oracle.enabled."""
    ignored = ("label_map", "split", "max_images")
    return settings(
        dataset={key: value for key, value in config["dataset"].items() if key not in ignored},
        seed=TRAIN_TREES[wildcards.tree],
        device=config["device"],
        oracle={key: value for key, value in config["oracle"].items() if key != "enabled"},
    )


def activations_settings(wildcards):
    return settings(
        **model_settings(TRAIN_TREES[wildcards.tree]),
        facet_layer=config["facets"]["layer"],
        target_layers=target_layers(),
        batch_size=config["activations"]["batch_size"],
    )


def prior_settings(wildcards):
    """What a prior depends on: the model and its training data and the priors section; the
    facet layer only where it is the code layer (priors.code_layer null); not the synthesis
    settings."""
    extra = {}
    if not config["priors"]["code_layer"]:  # the generator inverts the facet layer
        extra["facet_layer"] = config["facets"]["layer"]
    # not its check (the generator_metrics job): a new threshold re-measures, never retrains
    priors = {key: value for key, value in config["priors"].items() if key != "check"}
    return settings(**model_settings(TRAIN_TREES[wildcards.tree]), priors=priors, **extra)
