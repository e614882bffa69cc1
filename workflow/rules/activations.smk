# One forward pass of the dataset: facet-layer codes and target-layer activations to HDF5.
# With activations.shards > 1 the pass runs as that many jobs, joined into the same file.

SHARDS = config["activations"]["shards"]
ACTIVATIONS_COMMAND = (
    "python -m facetviz activations --threads {threads} --settings {params.settings:q}"
    " --weights={input.weights:q} --out {output:q}"
)


if SHARDS == 1:

    rule activations:
        input:
            weights=lambda wildcards: model_weights(wildcards.tree),
        output:
            "{tree}/activations.h5",
        params:
            settings=activations_settings,
        log:
            "{tree}/logs/activations.log",
        threads: 4
        # before the oracle and the generator (measure.smk): above their sum, as Snakemake
        # starts the set of jobs with the largest total priority, and the two one-thread jobs
        # together would otherwise keep this one waiting for two free cores
        priority: 20
        resources:
            **GPU,
        shell:
            f"{ACTIVATIONS_COMMAND} > {{log:q}} 2>&1"

else:

    rule activations_shard:
        input:
            weights=lambda wildcards: model_weights(wildcards.tree),
        output:
            # removed once joined: the joined file holds everything they do
            temp(f"{{tree}}/activations/shard-{{shard}}-of-{SHARDS}.h5"),
        params:
            settings=activations_settings,
        log:
            f"{{tree}}/logs/activations/shard-{{shard}}-of-{SHARDS}.log",
        wildcard_constraints:
            shard=r"\d+",
        threads: 4
        resources:
            **GPU,
        shell:
            f"{ACTIVATIONS_COMMAND} --shard {{wildcards.shard:q}}/{SHARDS} > {{log:q}} 2>&1"

    rule activations_join:
        input:
            expand(
                f"{{tree}}/activations/shard-{{shard}}-of-{SHARDS}.h5",
                shard=range(SHARDS),
                allow_missing=True,
            ),
        output:
            "{tree}/activations.h5",
        log:
            "{tree}/logs/activations/join.log",
        shell:
            "python -m facetviz join-activations --shards {input:q} --out {output:q} > {log:q} 2>&1"
