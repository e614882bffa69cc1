# Per neuron: select its images, PCA -> t-SNE -> k-means, and each facet's mean image.


rule facets:
    input:
        activations="{tree}/activations.h5",
        # a neuron that is not a unit: its direction's .npy, its probe's or its SAE
        readout=lambda wildcards: readout_file(wildcards.tree, wildcards.neuron) or [],
    output:
        h5="{tree}/facets/{neuron}.h5",
        summary="{tree}/facets/{neuron}.json",
    params:
        settings=lambda wildcards: settings(
            dataset=config["dataset"],
            facets=config["facets"],
            neuron=NEURONS[wildcards.neuron],
            seed=TRAIN_TREES[wildcards.tree],
            **readout_settings(wildcards),
        ),
    log:
        "{tree}/logs/facets/{neuron}.log",
    threads: 1
    shell:
        "python -m facetviz facets --threads {threads} --settings {params.settings:q}"
        " --activations {input.activations:q} --out-h5 {output.h5:q} --out-json {output.summary:q}"
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
