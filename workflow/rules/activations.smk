# One forward pass of the dataset: facet-layer codes and target-layer activations to HDF5.


rule activations:
    input:
        weights=model_weights(),
    output:
        f"{RESULTS}/activations.h5",
    params:
        settings=settings(
            **model_settings(),
            facet_layer=config["facets"]["layer"],
            target_layers=target_layers(),
            batch_size=config["activations"]["batch_size"],
        ),
    log:
        f"{LOGS}/activations.log",
    threads: 4
    resources:
        **GPU,
    shell:
        "python -m facetviz activations --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --out {output} > {log} 2>&1"
