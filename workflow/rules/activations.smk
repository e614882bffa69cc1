# One forward pass of the dataset: facet-layer codes and target-layer activations to HDF5.
# With activations.shards > 1 the pass runs as that many jobs, joined into the same file.

SHARDS = config["activations"]["shards"]
ACTIVATIONS_COMMAND = (
    "python -m facetviz activations --threads {threads} --settings {params.settings:q}"
    " --weights '{input.weights}' --out {output}"
)
ACTIVATIONS_SETTINGS = settings(
    **model_settings(),
    facet_layer=config["facets"]["layer"],
    target_layers=target_layers(),
    batch_size=config["activations"]["batch_size"],
)

if SHARDS == 1:

    rule activations:
        input:
            weights=model_weights(),
        output:
            f"{RESULTS}/activations.h5",
        params:
            settings=ACTIVATIONS_SETTINGS,
        log:
            f"{LOGS}/activations.log",
        threads: 4
        resources:
            **GPU,
        shell:
            f"{ACTIVATIONS_COMMAND} > {{log}} 2>&1"

else:

    rule activations_shard:
        input:
            weights=model_weights(),
        output:
            # removed once joined: the joined file holds everything they do
            temp(f"{RESULTS}/activations/shard-{{shard}}-of-{SHARDS}.h5"),
        params:
            settings=ACTIVATIONS_SETTINGS,
        log:
            f"{LOGS}/activations/shard-{{shard}}-of-{SHARDS}.log",
        wildcard_constraints:
            shard=r"\d+",
        threads: 4
        resources:
            **GPU,
        shell:
            f"{ACTIVATIONS_COMMAND} --shard {{wildcards.shard}}/{SHARDS} > {{log}} 2>&1"

    rule activations_join:
        input:
            expand(
                f"{RESULTS}/activations/shard-{{shard}}-of-{SHARDS}.h5",
                shard=range(SHARDS),
            ),
        output:
            f"{RESULTS}/activations.h5",
        log:
            f"{LOGS}/activations/join.log",
        shell:
            "python -m facetviz join-activations --shards {input} --out {output} > {log} 2>&1"
