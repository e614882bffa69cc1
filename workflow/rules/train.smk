# Train the embedded CNN (only when model.kind is embedded).


rule train:
    output:
        model=f"{RESULTS}/model/model.pt",
        metrics=f"{RESULTS}/model/metrics.json",
    params:
        settings=settings(**model_settings()),
    log:
        f"{LOGS}/train.log",
    threads: 4
    resources:
        **GPU,
    shell:
        "python -m facetviz train --threads {threads} --settings {params.settings:q}"
        " --checkpoint {output.model} --metrics {output.metrics} > {log} 2>&1"
