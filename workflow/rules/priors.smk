# Learned priors: the generator that inverts the visualized network at priors.code_layer, and the
# optional denoising autoencoder on its codes (made when ppgn runs with `prior: dae`), one per training tree.
# Only runs whose methods declare them as inputs (dgn, ppgn) make them.


rule generator:
    input:
        weights=lambda wildcards: model_weights(wildcards.tree),
    output:
        model="{tree}/priors/generator.pt",
        fit="{tree}/priors/generator-fit.json",
    params:
        settings=prior_settings,
    log:
        "{tree}/logs/priors/generator.log",
    # one thread: at 28 px a second one loses more to contention than it adds,
    # and the synthesis jobs that do not need the generator run beside it
    threads: 1
    priority: 5  # after the activations and the oracle, before the rest (measure.smk)
    resources:
        **GPU,
    shell:
        "python -m facetviz generator --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --checkpoint {output.model} --fit {output.fit}"
        " > {log} 2>&1"


# How well the generator inverts the network, on the test split. Its own rule, so that the
# generator's training does not wait for the oracle (the run's longest job) and a new oracle
# does not retrain it.
rule generator_metrics:
    input:
        generator="{tree}/priors/generator.pt",
        fit="{tree}/priors/generator-fit.json",
        weights=lambda wildcards: model_weights(wildcards.tree),
        # with an oracle, the metrics say how recognizable the reconstructions are
        oracle=lambda wildcards: f"{wildcards.tree}/oracle/oracle.pt" if ORACLE_ENABLED else [],
    output:
        "{tree}/priors/generator.json",
    params:
        settings=lambda wildcards: settings(**model_settings(TRAIN_TREES[wildcards.tree])),
        oracle=lambda wildcards, input: f"--oracle {input.oracle}" if input.oracle else "",
    log:
        "{tree}/logs/priors/generator_metrics.log",
    threads: 1
    resources:
        **GPU,
    shell:
        "python -m facetviz generator-metrics --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --checkpoint {input.generator} --fit {input.fit}"
        " {params.oracle}"
        " --metrics {output} > {log} 2>&1"


rule code_prior:
    input:
        weights=lambda wildcards: model_weights(wildcards.tree),
    output:
        "{tree}/priors/dae.pt",
    params:
        settings=prior_settings,
    log:
        "{tree}/logs/priors/dae.log",
    threads: 1
    resources:
        **GPU,
    shell:
        "python -m facetviz generator --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --dae {output} > {log} 2>&1"
