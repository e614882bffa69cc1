# Per neuron: select its images, PCA -> t-SNE -> k-means, and each facet's mean image.


rule facets:
    input:
        f"{RESULTS}/activations.h5",
    output:
        h5=f"{RESULTS}/facets/{{neuron}}.h5",
        summary=f"{RESULTS}/facets/{{neuron}}.json",
    params:
        settings=lambda wildcards: settings(
            dataset=config["dataset"],
            facets=config["facets"],
            neuron=NEURONS[wildcards.neuron],
            seed=config["seed"],
        ),
    log:
        f"{LOGS}/facets/{{neuron}}.log",
    threads: 1
    shell:
        "python -m facetviz facets --threads {threads} --settings {params.settings:q}"
        " --activations {input} --out-h5 {output.h5} --out-json {output.summary} > {log} 2>&1"
