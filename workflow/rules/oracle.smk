# Train the oracle: an independent fine-class classifier that measures synthesized images, one
# per training tree (its seed is the tree's seed + oracle.seed_offset). It is not part of
# final_outputs by itself: rules that measure images take it as input where MEASURED
# (common.smk).


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
