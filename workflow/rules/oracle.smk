# Train the oracle: an independent fine-class classifier that measures synthesized images.
# It is not part of final_outputs by itself: rules that measure images take ORACLE_MODEL as
# input where ORACLE_ENABLED (common.smk).
ORACLE_METRICS = f"{RESULTS}/oracle/metrics.json"

# What the oracle depends on: not the run's label_map, split or max_images, nor oracle.enabled.
ORACLE_SETTINGS = {
    "dataset": {
        key: value
        for key, value in config["dataset"].items()
        if key not in ("label_map", "split", "max_images")
    },
    "seed": config["seed"],
    "device": config["device"],
    "oracle": {key: value for key, value in config["oracle"].items() if key != "enabled"},
}


rule oracle:
    output:
        model=ORACLE_MODEL,
        metrics=ORACLE_METRICS,
    params:
        settings=settings(**ORACLE_SETTINGS),
    log:
        f"{LOGS}/oracle.log",
    threads: 4
    resources:
        **GPU,
    shell:
        "python -m facetviz oracle --threads {threads} --settings {params.settings:q}"
        " --checkpoint {output.model} --metrics {output.metrics} > {log} 2>&1"
