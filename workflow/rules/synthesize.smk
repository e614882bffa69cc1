# Activation maximization, one job per (synthesis tree, method, batch of neurons): a job
# optimizes all facets of synthesis.neurons_per_job neurons as one tensor. Methods run side by
# side (synthesis.methods), beside the references that need no optimization.


rule synthesize:
    input:
        # a method's extra inputs (Method.inputs, e.g. a generator), passed as --input NAME=PATH
        unpack(method_inputs),
        facets=lambda wildcards: expand(
            f"{tree_of(wildcards)}/facets/{{neuron}}.h5", neuron=BATCHES[wildcards.batch]
        ),
        weights=lambda wildcards: model_weights(tree_of(wildcards)),
    output:
        directory("{stree}/synthesis/{method}/{batch}"),
    params:
        settings=lambda wildcards: settings(
            **model_settings(SYNTHESIS_TREES[wildcards.stree][1]),
            train_seed=TRAIN_TREES[tree_of(wildcards)],
            facet_layer=config["facets"]["layer"],
            method=wildcards.method,
            synthesis=synthesis_settings(wildcards.method),
            neurons=BATCHES[wildcards.batch],
        ),
        inputs=method_input_args,
    log:
        "{stree}/logs/synthesis/{method}/{batch}.log",
    threads: 1
    resources:
        **GPU,
    shell:
        "python -m facetviz synthesize --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --facets {input.facets} {params.inputs}"
        " --out-dir {output} > {log} 2>&1"


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
        " --oracle {input.oracle} --weights '{input.weights}' --facets {input.facets}"
        " --out-csv {output.csv} --out-json {output.json} > {log} 2>&1"
