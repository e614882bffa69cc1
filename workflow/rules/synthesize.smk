# Activation maximization from each facet's mean image. A job takes a batch of neurons
# (synthesis.neurons_per_job) and optimizes all their facets as one tensor.


rule synthesize:
    input:
        facets=lambda wildcards: expand(
            f"{RESULTS}/facets/{{neuron}}.h5", neuron=BATCHES[wildcards.batch]
        ),
        weights=model_weights(),
    output:
        directory(f"{RESULTS}/synthesis/{{batch}}"),
    params:
        settings=lambda wildcards: settings(
            **model_settings(), synthesis=config["synthesis"], neurons=BATCHES[wildcards.batch]
        ),
    log:
        f"{LOGS}/synthesis/{{batch}}.log",
    threads: 1
    resources:
        **GPU,
    shell:
        "python -m facetviz synthesize --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --facets {input.facets} --out-dir {output} > {log} 2>&1"
