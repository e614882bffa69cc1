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
        " --weights={input.weights:q} --checkpoint {output.model:q} --fit {output.fit:q}"
        " > {log:q} 2>&1"


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
        " --weights={input.weights:q} --dae {output:q} > {log:q} 2>&1"
