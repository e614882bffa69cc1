# Measuring: the oracle, and the quality of every method's images by it.

# The oracle: an independent fine-class classifier that measures synthesized images, one
# per training tree (its seed is the tree's seed + oracle.seed_offset). It is not part of
# final_outputs by itself: rules that measure images take it as input where MEASURED
# (common.smk).


rule oracle:
    output:
        model="{tree}/oracle/oracle.pt",
        metrics="{tree}/oracle/metrics.json",
    params:
        settings=oracle_settings,
    log:
        "{tree}/logs/oracle.log",
    # one thread, whatever the machine: on 2 cores a second thread adds only a third
    # (docs/benchmarks.md), and the jobs beside it use the core better; and the
    # oracle, the run's measuring instrument, comes out the same on every core count (its
    # floats depend on the thread count). It waits for training and the activations, which
    # everything else waits for (model.smk, activations.smk), then starts first as the run's
    # longest job, before the generator (priors.smk) and the rest
    threads: 1
    priority: 8
    resources:
        **GPU,
    shell:
        "python -m facetviz oracle --threads {threads} --settings {params.settings:q}"
        " --checkpoint {output.model:q} --metrics {output.metrics:q} > {log:q} 2>&1"


# Quality of every method's images of the class units: by the independent oracle (fidelity,
# transferability, diversity, plausibility, KID), by the visualized network (activation ratio,
# processing path), against the real images of each facet.
CLASS_BATCHES = sorted({BATCH_OF[neuron] for neuron in CLASS_UNITS})


rule synthesis_metrics:
    input:
        oracle=lambda wildcards: f"{tree_of(wildcards)}/oracle/oracle.pt",
        facets=lambda wildcards: expand(
            f"{tree_of(wildcards)}/facets/{{neuron}}.h5", neuron=CLASS_UNITS
        ),
        weights=lambda wildcards: model_weights(tree_of(wildcards)),
        images=expand(
            "{stree}/synthesis/{method}/{batch}",
            method=SYNTHESIZED,
            batch=CLASS_BATCHES,
            allow_missing=True,
        ),
    output:
        csv="{stree}/synthesis/metrics.csv",
        json="{stree}/synthesis/metrics.json",
    params:
        # the training tree's seed: it chose the dataset's images the facets were found in
        settings=lambda wildcards: settings(
            **model_settings(TRAIN_TREES[tree_of(wildcards)]),
            image_dirs=image_dirs(CLASS_UNITS, tree=wildcards.stree),
        ),
    log:
        "{stree}/logs/synthesis/metrics.log",
    threads: 1
    shell:
        "python -m facetviz synthesis-metrics --threads {threads} --settings {params.settings:q}"
        " --oracle {input.oracle:q} --weights={input.weights:q} --facets {input.facets:q}"
        " --out-csv {output.csv:q} --out-json {output.json:q} > {log:q} 2>&1"


# How well the generator inverts the network, on the test split, checked against
# priors.check's minimums (a warning, or with on_poor: stop a failed job that the learned-prior
# methods' synthesis jobs wait for: common.smk, method_inputs). Its own rule, so that the
# generator's training does not wait for the oracle (the run's longest job) and a new oracle
# does not retrain it.
rule generator_metrics:
    input:
        generator="{tree}/priors/generator.pt",
        fit="{tree}/priors/generator-fit.json",
        weights=lambda wildcards: model_weights(wildcards.tree),
        # with an oracle, the metrics say how recognizable the reconstructions are
        oracle=lambda wildcards: f"{wildcards.tree}/oracle/oracle.pt" if ORACLE_ENABLED else [],
    output:
        "{tree}/priors/generator.json",
    params:
        # and the check of its figures (priors.check): changing it re-measures, never retrains
        settings=lambda wildcards: settings(
            **model_settings(TRAIN_TREES[wildcards.tree]), check=config["priors"]["check"]
        ),
        oracle=lambda wildcards, input: ["--oracle", input.oracle] if input.oracle else [],
    log:
        "{tree}/logs/priors/generator_metrics.log",
    threads: 1
    resources:
        **GPU,
    shell:
        "python -m facetviz generator-metrics --threads {threads} --settings {params.settings:q}"
        " --weights={input.weights:q} --checkpoint {input.generator:q} --fit {input.fit:q}"
        " {params.oracle:q} --metrics {output:q} > {log:q} 2>&1"


# Probe neurons of a fine class (docs/design.md §12): their top images, their facets and every
# method's images of them, against the class, by the oracle.
rule probe_metrics:
    input:
        oracle=lambda wildcards: f"{tree_of(wildcards)}/oracle/oracle.pt",
        facets=lambda wildcards: expand(
            f"{tree_of(wildcards)}/facets/{{neuron}}.h5", neuron=PROBE_CLASSES
        ),
        images=expand(
            "{stree}/synthesis/{method}/{batch}",
            method=SYNTHESIZED,
            batch=sorted({BATCH_OF[neuron] for neuron in PROBE_CLASSES}),
            allow_missing=True,
        ),
    output:
        "{stree}/directions/probes.json",
    params:
        settings=lambda wildcards: settings(
            image_dirs=image_dirs(list(PROBE_CLASSES), tree=wildcards.stree),
            classes=list(PROBE_CLASSES.values()),
        ),
    log:
        "{stree}/logs/directions/probes.log",
    threads: 1
    shell:
        "python -m facetviz probe-metrics --threads {threads} --settings {params.settings:q}"
        " --oracle {input.oracle:q} --facets {input.facets:q} --out-json {output:q}"
        " > {log:q} 2>&1"


# An SAE's latents against the layer's units: the fine-class purity of their top images.
rule sae_purity:
    input:
        activations="{tree}/activations.h5",
        sae="{tree}/sae/{sae}.h5",
    output:
        "{tree}/directions/sae-{sae}.json",
    params:
        settings=settings(count=SAE_COMPARED, top_n=config["facets"]["top_n"]),
    log:
        "{tree}/logs/directions/sae-{sae}.log",
    threads: 1
    shell:
        "python -m facetviz sae-purity --threads {threads} --settings {params.settings:q}"
        " --activations {input.activations:q} --sae {input.sae:q} --out-json {output:q}"
        " > {log:q} 2>&1"
