# The evaluation: every metric over the synthesis seeds (evaluation.seeds) and training seeds
# (evaluation.train_seeds) as a mean, a standard deviation and a 95% bootstrap interval; unit
# claims as the share of seeds where they hold. A run without those lists evaluates its one seed.


if MEASURED:

    rule evaluation:
        input:
            [f"{tree}/synthesis/metrics.json" for tree in EVALUATED_TREES],
        output:
            per_seed=f"{EVALUATION}/per_seed.csv",
            summary_csv=f"{EVALUATION}/summary.csv",
            summary=f"{EVALUATION}/summary.json",
        params:
            settings=settings(
                trees={
                    tree: {"train_seed": TRAIN_TREES[SYNTHESIS_TREES[tree][0]],
                           "seed": SYNTHESIS_TREES[tree][1]}
                    for tree in EVALUATED_TREES
                },
            ),
        log:
            f"{LOGS}/evaluation.log",
        threads: 1
        shell:
            "python -m facetviz evaluation --threads {threads} --settings {params.settings:q}"
            " --metrics {input:q} --out {output.per_seed:q} {output.summary_csv:q}"
            " {output.summary:q} > {log:q} 2>&1"

    rule evaluation_figures:
        input:
            f"{EVALUATION}/summary.json",
        output:
            pareto=report(
                f"{RESULTS}/figures/pareto.png",
                caption="../report/pareto.rst",
                category="5. Metrics",
            ),
            pareto_pdf=f"{RESULTS}/figures/pareto.pdf",
            path=report(
                f"{RESULTS}/figures/path.png",
                caption="../report/path.rst",
                category="5. Metrics",
            ),
            path_pdf=f"{RESULTS}/figures/path.pdf",
        log:
            f"{LOGS}/figures/evaluation.log",
        threads: 1
        shell:
            "python -m facetviz evaluation-figures --threads {threads} --summary {input:q}"
            " --pareto {output.pareto:q} {output.pareto_pdf:q}"
            " --path {output.path:q} {output.path_pdf:q} > {log:q} 2>&1"


# Directions over seeds: the probe neurons' and the SAEs' scores as means with intervals.
if DIRECTIONS_MEASURED:

    rule directions_evaluation:
        input:
            probes=[f"{tree}/directions/probes.json" for tree in EVALUATED_TREES]
            if PROBE_CLASSES
            else [],
            sae=[
                f"{tree}/directions/sae-{sae}.json" for tree in TRAIN_TREES for sae in config["sae"]
            ],
        output:
            f"{EVALUATION}/directions.json",
        log:
            f"{LOGS}/directions-evaluation.log",
        threads: 1
        shell:
            "python -m facetviz directions-evaluation --threads {threads}"
            " --probes {input.probes:q} --sae {input.sae:q} --out {output:q} > {log:q} 2>&1"
