# Figures: one per neuron (facet images over real examples) and an overview of the run.


rule neuron_figure:
    input:
        facets=f"{RESULTS}/facets/{{neuron}}.h5",
        synthesis=lambda wildcards: synthesis_batch_dir(wildcards.neuron),
    output:
        f"{RESULTS}/figures/{{neuron}}.png",
    params:
        settings=settings(dataset=config["dataset"], figures=config["figures"], seed=config["seed"]),
        images=lambda wildcards: synthesis_dir(wildcards.neuron),
    log:
        f"{LOGS}/figures/{{neuron}}.log",
    threads: 1
    shell:
        "python -m facetviz figure --threads {threads} --settings {params.settings:q}"
        " --facets {input.facets} --synthesis {params.images} --out {output} > {log} 2>&1"


rule embedding_figure:
    input:
        f"{RESULTS}/facets/{{neuron}}.h5",
    output:
        f"{RESULTS}/figures/embedding/{{neuron}}.png",
    log:
        f"{LOGS}/figures/embedding/{{neuron}}.log",
    threads: 1
    shell:
        "python -m facetviz embedding --threads {threads}"
        " --facets {input} --out {output} > {log} 2>&1"


rule overview_figure:
    input:
        expand(f"{RESULTS}/synthesis/{PRIMARY_METHOD}/{{batch}}", batch=BATCHES),
    output:
        f"{RESULTS}/figures/overview.png",
    params:
        settings=settings(names=list(NEURONS)),
        images=[synthesis_dir(neuron) for neuron in NEURONS],
    log:
        f"{LOGS}/figures/overview.log",
    threads: 1
    shell:
        "python -m facetviz overview --threads {threads} --settings {params.settings:q}"
        " --synthesis {params.images} --out {output} > {log} 2>&1"
