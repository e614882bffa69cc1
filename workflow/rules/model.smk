# Train the embedded CNN (only when model.kind is embedded), once per training tree.


rule train:
    output:
        model="{tree}/model/model.pt",
        metrics="{tree}/model/metrics.json",
    params:
        settings=lambda wildcards: settings(**model_settings(TRAIN_TREES[wildcards.tree])),
    log:
        "{tree}/logs/train.log",
    threads: 4
    priority: 10  # every later stage waits for it: before the oracle (measure.smk)
    resources:
        **GPU,
    shell:
        "python -m facetviz train --threads {threads} --settings {params.settings:q}"
        " --checkpoint {output.model:q} --metrics {output.metrics:q} > {log:q} 2>&1"
