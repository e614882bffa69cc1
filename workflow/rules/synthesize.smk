# Per neuron: activation maximization from each facet's mean image, all facets as one batch.


rule synthesize:
    input:
        facets=f"{RESULTS}/facets/{{neuron}}.h5",
        weights=model_weights(),
    output:
        directory(f"{RESULTS}/synthesis/{{neuron}}"),
    params:
        settings=settings(**model_settings(), synthesis=config["synthesis"]),
    log:
        f"{LOGS}/synthesis/{{neuron}}.log",
    threads: 1
    shell:
        "python -m facetviz synthesize --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --facets {input.facets} --out-dir {output} > {log} 2>&1"
