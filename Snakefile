# facetviz: multifaceted feature visualization as a Snakemake workflow.
# Stages live in workflow/rules/, one file each; the logic they call lives in src/facetviz/.

# A --configfile replaces the default instead of being merged into it (Snakemake merges dicts,
# which would mix, say, a test's label_map into the default's); a config that builds on another
# names it with `base:`, merged in common.smk (config/README.md, "Overlays"); --config overrides
# any of them.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/directions.smk"
include: "workflow/rules/facets.smk"
include: "workflow/rules/priors.smk"
include: "workflow/rules/synthesis.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
