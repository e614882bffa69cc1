# Train the oracle: an independent fine-class classifier that measures synthesized images, one
# per training tree (its seed is the tree's seed + oracle.seed_offset). It is not part of
# final_outputs by itself: rules that measure images take it as input where MEASURED
# (common.smk).


def oracle_settings(wildcards):
    """What the oracle depends on: not the run's label_map, split or max_images, nor
    oracle.enabled."""
    ignored = ("label_map", "split", "max_images")
    return settings(
        dataset={key: value for key, value in config["dataset"].items() if key not in ignored},
        seed=TRAIN_TREES[wildcards.tree],
        device=config["device"],
        oracle={key: value for key, value in config["oracle"].items() if key != "enabled"},
    )


rule oracle:
    output:
        model="{tree}/oracle/oracle.pt",
        metrics="{tree}/oracle/metrics.json",
    params:
        settings=oracle_settings,
    log:
        "{tree}/logs/oracle.log",
    threads: 4
    resources:
        **GPU,
    shell:
        "python -m facetviz oracle --threads {threads} --settings {params.settings:q}"
        " --checkpoint {output.model} --metrics {output.metrics} > {log} 2>&1"
