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
    # the run's longest chains are oracle -> generator and train -> activations -> facets, and
    # the learned-prior jobs wait for both: run last, the oracle left the one-thread generator
    # running alone with a core idle (98 s of the default run's 10 min). So the oracle and the
    # activations go first among the jobs ready to run, then the generator (before activations,
    # it would idle a core as well), beside the one-thread facets and synthesis jobs
    priority: 10
    resources:
        **GPU,
    shell:
        "python -m facetviz oracle --threads {threads} --settings {params.settings:q}"
        " --checkpoint {output.model} --metrics {output.metrics} > {log} 2>&1"
