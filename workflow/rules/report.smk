# Figures, each in PNG (in the report) and PDF (for papers), and the run's browsable page.
# Figure rules read synthesis outputs and take only figure settings as params: changing a
# `figures` setting reruns them and nothing upstream.


# Real images shown under each facet (facets figures, index.html).
EXAMPLES = config["figures"]["examples"]
# the synthesis metrics the metrics figure and the page show, where the run measures them
SYNTHESIS_METRICS_ARGS = ["--synthesis-metrics", SYNTHESIS_METRICS] if SYNTHESIS_METRICS else []


rule facets_figure:
    input:
        facets=f"{RESULTS}/facets/{{neuron}}.h5",
        synthesis=lambda wildcards: synthesis_batch_dir(wildcards.neuron),
    output:
        png=report(
            f"{RESULTS}/figures/facets/{{neuron}}.png",
            caption="../report/facets.rst",
            category="1. Facets",
            labels={"neuron": "{neuron}"},
        ),
        pdf=f"{RESULTS}/figures/facets/{{neuron}}.pdf",
    params:
        settings=settings(dataset=config["dataset"], examples=EXAMPLES, seed=config["seed"]),
        images=lambda wildcards: synthesis_dir(wildcards.neuron),
    log:
        f"{LOGS}/figures/facets/{{neuron}}.log",
    threads: 1
    shell:
        "python -m facetviz figure --threads {threads} --settings {params.settings:q}"
        " --facets {input.facets:q} --synthesis {params.images:q} --out {output:q}"
        " > {log:q} 2>&1"


rule embedding_figure:
    input:
        f"{RESULTS}/facets/{{neuron}}.h5",
    output:
        png=report(
            f"{RESULTS}/figures/embedding/{{neuron}}.png",
            caption="../report/embedding.rst",
            category="2. Embeddings",
            labels={"neuron": "{neuron}"},
        ),
        pdf=f"{RESULTS}/figures/embedding/{{neuron}}.pdf",
    log:
        f"{LOGS}/figures/embedding/{{neuron}}.log",
    threads: 1
    shell:
        "python -m facetviz embedding --threads {threads}"
        " --facets {input:q} --out {output:q} > {log:q} 2>&1"


rule methods_figure:
    input:
        expand(f"{RESULTS}/synthesis/{{method}}/{{batch}}", method=SYNTHESIZED, batch=BATCHES),
    output:
        png=report(
            f"{RESULTS}/figures/methods.png",
            caption="../report/methods.rst",
            category="3. Methods",
        ),
        pdf=f"{RESULTS}/figures/methods.pdf",
    params:
        settings=settings(
            names=list(NEURONS),
            image_dirs=image_dirs(NEURONS),
            max_rows=config["figures"]["max_rows"],
        ),
    log:
        f"{LOGS}/figures/methods.log",
    threads: 1
    shell:
        "python -m facetviz methods-figure --threads {threads} --settings {params.settings:q}"
        " --out {output:q} > {log:q} 2>&1"


rule overview_figure:
    input:
        expand(f"{RESULTS}/synthesis/{PRIMARY_METHOD}/{{batch}}", batch=BATCHES),
    output:
        png=report(
            f"{RESULTS}/figures/overview.png",
            caption="../report/overview.rst",
            category="4. Overview",
        ),
        pdf=f"{RESULTS}/figures/overview.pdf",
    params:
        settings=settings(names=list(NEURONS), max_rows=config["figures"]["max_rows"]),
        images=[synthesis_dir(neuron) for neuron in NEURONS],
    log:
        f"{LOGS}/figures/overview.log",
    threads: 1
    shell:
        "python -m facetviz overview --threads {threads} --settings {params.settings:q}"
        " --synthesis {params.images:q} --out {output:q} > {log:q} 2>&1"


rule hidden_units_figure:
    input:
        expand(
            f"{RESULTS}/synthesis/{PRIMARY_METHOD}/{{batch}}",
            batch=sorted({BATCH_OF[neuron] for neuron in HIDDEN_UNITS}),
        ),
    output:
        png=report(
            f"{RESULTS}/figures/hidden_units.png",
            caption="../report/hidden_units.rst",
            category="4. Overview",
        ),
        pdf=f"{RESULTS}/figures/hidden_units.pdf",
    params:
        settings=settings(
            names=HIDDEN_UNITS,
            max_facets=config["figures"]["hidden_unit_facets"],
            title=f"hidden units: top facets ({PRIMARY_METHOD})",
            max_rows=config["figures"]["max_rows"],
        ),
        images=[synthesis_dir(neuron) for neuron in HIDDEN_UNITS],
    log:
        f"{LOGS}/figures/hidden_units.log",
    threads: 1
    shell:
        "python -m facetviz overview --threads {threads} --settings {params.settings:q}"
        " --synthesis {params.images:q} --out {output:q} > {log:q} 2>&1"


rule metrics_figure:
    input:
        table=f"{RESULTS}/facets/table.csv",
        synthesis=SYNTHESIS_METRICS or [],
    output:
        png=report(
            f"{RESULTS}/figures/metrics.png",
            caption="../report/metrics.rst",
            category="5. Metrics",
        ),
        pdf=f"{RESULTS}/figures/metrics.pdf",
    params:
        synthesis=SYNTHESIS_METRICS_ARGS,
    log:
        f"{LOGS}/figures/metrics.log",
    threads: 1
    shell:
        "python -m facetviz metrics-figure --threads {threads} --table {input.table:q}"
        " {params.synthesis:q} --out {output:q} > {log:q} 2>&1"


rule index_page:
    input:
        facets=expand(f"{RESULTS}/facets/{{neuron}}.h5", neuron=NEURONS),
        images=expand(
            f"{RESULTS}/synthesis/{{method}}/{{batch}}", method=SYNTHESIZED, batch=BATCHES
        ),
        synthesis=SYNTHESIS_METRICS or [],
        # every training tree's generator, whose failed check (priors.check) the page shows
        generators=(
            [f"{tree}/priors/generator.json" for tree in TRAIN_TREES] if LEARNED_PRIOR else []
        ),
    output:
        report(
            f"{RESULTS}/index.html",
            caption="../report/index.rst",
            category="6. Browse",
        ),
    params:
        settings=settings(
            run=config["run"],
            dataset=config["dataset"],
            seed=config["seed"],
            examples=EXAMPLES,
            image_dirs=image_dirs(NEURONS),
        ),
        synthesis=SYNTHESIS_METRICS_ARGS,
    log:
        f"{LOGS}/index.log",
    threads: 1
    shell:
        "python -m facetviz index --threads {threads} --settings {params.settings:q}"
        " --facets {input.facets:q} {params.synthesis:q} --generators {input.generators:q}"
        " --out {output:q} > {log:q} 2>&1"
