# Activation maximization, one job per (method, batch of neurons): a job optimizes all facets of
# synthesis.neurons_per_job neurons as one tensor. Methods run side by side (synthesis.methods).


rule synthesize:
    input:
        # a method's extra inputs (Method.inputs, e.g. a generator), passed as --input NAME=PATH
        unpack(method_inputs),
        facets=lambda wildcards: expand(
            f"{RESULTS}/facets/{{neuron}}.h5", neuron=BATCHES[wildcards.batch]
        ),
        weights=model_weights(),
    output:
        directory(f"{RESULTS}/synthesis/{{method}}/{{batch}}"),
    params:
        settings=lambda wildcards: settings(
            **model_settings(),
            facet_layer=config["facets"]["layer"],
            method=wildcards.method,
            synthesis=synthesis_settings(wildcards.method),
            neurons=BATCHES[wildcards.batch],
        ),
        inputs=method_input_args,
    log:
        f"{LOGS}/synthesis/{{method}}/{{batch}}.log",
    threads: 1
    resources:
        **GPU,
    shell:
        "python -m facetviz synthesize --threads {threads} --settings {params.settings:q}"
        " --weights '{input.weights}' --facets {input.facets} {params.inputs}"
        " --out-dir {output} > {log} 2>&1"


# Quality of every method's images of the class units, judged by the independent oracle.

rule synthesis_metrics:
    input:
        oracle=ORACLE_MODEL,
        facets=expand(f"{RESULTS}/facets/{{neuron}}.h5", neuron=CLASS_UNITS),
        images=expand(
            f"{RESULTS}/synthesis/{{method}}/{{batch}}",
            method=METHODS,
            batch=sorted({BATCH_OF[neuron] for neuron in CLASS_UNITS}),
        ),
    output:
        csv=f"{RESULTS}/synthesis/metrics.csv",
        json=f"{RESULTS}/synthesis/metrics.json",
    params:
        settings=settings(
            device=config["device"],
            image_dirs=image_dirs(CLASS_UNITS),
        ),
    log:
        f"{LOGS}/synthesis/metrics.log",
    threads: 1
    shell:
        "python -m facetviz synthesis-metrics --threads {threads} --settings {params.settings:q}"
        " --oracle {input.oracle} --facets {input.facets}"
        " --out-csv {output.csv} --out-json {output.json} > {log} 2>&1"
