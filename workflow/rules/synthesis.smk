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
        " --weights={input.weights:q} --facets {input.facets:q} {params.inputs:q}"
        " --out-dir {output:q} > {log:q} 2>&1"
