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
    # one thread, whatever the machine: on 2 cores a second thread adds only a third (1,160
    # images/s on one, 1,525 on two), and the jobs beside it use the core better; and the
    # oracle, the run's measuring instrument, comes out the same on every core count (its
    # floats depend on the thread count). It waits for training and the activations, which
    # everything else waits for (train.smk, activations.smk), then starts first as the run's
    # longest job (about 4 min), before the generator (priors.smk) and the rest
    threads: 1
    priority: 8
    resources:
        **GPU,
    shell:
        "python -m facetviz oracle --threads {threads} --settings {params.settings:q}"
        " --checkpoint {output.model} --metrics {output.metrics} > {log} 2>&1"
