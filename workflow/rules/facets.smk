# Per neuron: select its images, PCA -> t-SNE -> k-means, and each facet's mean image.


rule facets:
    input:
        "{tree}/activations.h5",
    output:
        h5="{tree}/facets/{neuron}.h5",
        summary="{tree}/facets/{neuron}.json",
    params:
        settings=lambda wildcards: settings(
            dataset=config["dataset"],
            facets=config["facets"],
            neuron=NEURONS[wildcards.neuron],
            seed=TRAIN_TREES[wildcards.tree],
        ),
    log:
        "{tree}/logs/facets/{neuron}.log",
    threads: 1
    shell:
        "python -m facetviz facets --threads {threads} --settings {params.settings:q}"
        " --activations {input:q} --out-h5 {output.h5:q} --out-json {output.summary:q}"
        " > {log:q} 2>&1"


rule facet_table:
    input:
        expand(f"{RESULTS}/facets/{{neuron}}.json", neuron=NEURONS),
    output:
        f"{RESULTS}/facets/table.csv",
    params:
        settings=settings(names=list(NEURONS)),
    log:
        f"{LOGS}/facets/table.log",
    threads: 1
    shell:
        "python -m facetviz facet-table --threads {threads} --settings {params.settings:q}"
        " --summaries {input:q} --out {output:q} > {log:q} 2>&1"
