# Directions made in the pipeline from the stored activations (docs/design.md §12): linear
# probes and sparse autoencoders, one per training tree. Neurons name them (`probe:`, `sae:`);
# their facets jobs take the file as input (facets.smk).


rule probe:
    input:
        "{tree}/activations.h5",
    output:
        direction="{tree}/probes/{probe}.npy",
        metrics="{tree}/probes/{probe}.json",
    params:
        settings=lambda wildcards: settings(
            probe=config["probes"][wildcards.probe], seed=TRAIN_TREES[wildcards.tree]
        ),
    log:
        "{tree}/logs/probes/{probe}.log",
    threads: 1
    shell:
        "python -m facetviz probe --threads {threads} --settings {params.settings:q}"
        " --activations {input:q} --out-npy {output.direction:q}"
        " --out-json {output.metrics:q} > {log:q} 2>&1"


rule sae:
    input:
        "{tree}/activations.h5",
    output:
        model="{tree}/sae/{sae}.h5",
        metrics="{tree}/sae/{sae}.json",
    params:
        settings=lambda wildcards: settings(
            sae=config["sae"][wildcards.sae], seed=TRAIN_TREES[wildcards.tree]
        ),
    log:
        "{tree}/logs/sae/{sae}.log",
    threads: 1
    shell:
        "python -m facetviz sae --threads {threads} --settings {params.settings:q}"
        " --activations {input:q} --out-h5 {output.model:q}"
        " --out-json {output.metrics:q} > {log:q} 2>&1"
