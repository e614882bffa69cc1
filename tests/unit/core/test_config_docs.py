"""One home for every default: the schema documents every key the code reads, and
config/README.md's tables are what facetviz.config_docs renders from the schema and the methods."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import REPO, dataset_settings

from facetviz import config_docs
from facetviz.core import settings
from facetviz.synthesis import methods

SCHEMA = config_docs.load_schema()
DEFAULT_CONFIG = config_docs.load_default_config()
# where code reads config keys by name: the workflow, the package, the benchmarks and analyses
CODE = [
    REPO / "Snakefile",
    *sorted((REPO / "workflow" / "rules").glob("*.smk")),
    *sorted((REPO / "src").rglob("*.py")),
    *sorted((REPO / "bench").glob("*.py")),
    *sorted((REPO / "analysis").glob("*.py")),
]
# `config["a"]["b"]...` and `config.get("a")`, with literal keys
CONFIG_READ = re.compile(
    r"\bconfig((?:\[\s*(?:\"[^\"]+\"|'[^']+')\s*\])+|\.get\(\s*[\"'][^\"']+[\"'])"
)
# Neuron's fields that are no config key of their own (units: resolved at parse time)
NEURON_KEYS = {
    "class_index": "class",
    "units": None,  # the layer's size, resolved
    "group": "units",
    "latent_rank": "latents",
    "cosine_power": "direction_cosine_power",
}


def schema_properties(
    node: Mapping[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[str, dict, bool]]:
    """(dotted key, its schema, whether required) for every property, nested ones and the
    neurons' entries' included."""
    for key, prop in node.get("properties", {}).items():
        here = (*path, key)
        yield ".".join(here), prop, key in node.get("required", [])
        yield from schema_properties(prop, here)
        if isinstance(prop.get("items"), dict):
            yield from schema_properties(prop["items"], here)


def schema_node(path: list[str]) -> dict | None:
    """The schema of the key at `path` (through the neurons' entries), None where there is no
    such key; a synthesis method's block is its settings class's, not the schema's."""
    node: dict = SCHEMA
    for key in path:
        node = node.get("items", node)
        if node is SCHEMA["properties"]["synthesis"] and key in methods.REGISTRY:
            return {"default": methods.defaults(methods.method_class(key).Settings)}
        node = node.get("properties", {}).get(key)
        if node is None:
            return None
    return node


def documented(path: list[str]) -> str | None:
    """Why the key at `path` is not documented with a default, or None when it is."""
    node = schema_node(path)
    dotted = ".".join(path)
    if node is None:
        return f"{dotted}: not in the schema"
    parent = schema_node(path[:-1]) if len(path) > 1 else SCHEMA
    required = path[-1] in (parent or {}).get("items", parent or {}).get("required", [])
    if not ({"default", "x-default"} & set(node) or required):
        return f"{dotted}: in the schema without a default"
    return None


def test_config_readme_tables_are_what_the_schema_and_the_methods_render() -> None:
    text = config_docs.README.read_text()
    issues = config_docs.problems(text, SCHEMA, DEFAULT_CONFIG)
    assert not issues, (
        "config/README.md's generated tables differ from the schema and the methods:\n  "
        + "\n  ".join(issues)
        + f"\nregenerate them with: {config_docs.COMMAND}"
    )


def test_a_missing_or_changed_key_is_named() -> None:
    text = config_docs.README.read_text()
    text = re.sub(r"^\| `shards` \|.*\n", "", text, flags=re.M)
    text = text.replace("| `k` | `10` |", "| `k` | `12` |", 1)
    text = text.replace("| `steps` | `512` | Adam steps |", "| `steps` | `500` | Adam steps |")
    issues = config_docs.problems(text, SCHEMA, DEFAULT_CONFIG)
    assert "activations.shards: missing" in issues
    assert "facets.k: changed" in issues
    assert "synthesis.fourier.steps: changed" in issues
    # a key new to the schema is missing from the file until it is regenerated
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["figures"]["properties"]["dpi"] = {"type": "integer", "default": 200}
    readme = config_docs.README.read_text()
    assert config_docs.problems(readme, schema, DEFAULT_CONFIG) == ["figures.dpi: missing"]
    assert "| `dpi` | `200` |" in config_docs.render(readme, schema, DEFAULT_CONFIG)


def test_regenerating_fixes_a_stale_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(config_docs.README.read_text().replace("| `k` | `10` |", "| `k` | `9` |"))
    assert config_docs.main(["--readme", str(readme)]) == 1
    assert config_docs.COMMAND in capsys.readouterr().err
    assert config_docs.main(["--readme", str(readme), "--write"]) == 0
    assert readme.read_text() == config_docs.README.read_text()
    assert config_docs.main(["--readme", str(readme)]) == 0


def test_every_schema_key_has_a_default_and_a_description() -> None:
    """A default (`x-default` where it must not be filled in), or required; and a description,
    which config/README.md shows."""
    problems = []
    for key, prop, required in schema_properties(SCHEMA):
        if not str(prop.get("description", "")).strip():
            problems.append(f"{key}: no description")
        if not ({"default", "x-default"} & set(prop) or required):
            problems.append(f"{key}: no default (give one, null where it may be null)")
    assert not problems, "\n".join(problems)


def test_every_default_is_a_valid_value_of_its_key() -> None:
    """`default: null` only where the key may be null."""
    problems = []
    for key, prop, _required in schema_properties(SCHEMA):
        for name in ("default", "x-default"):
            bare = {k: v for k, v in prop.items() if k not in ("default", "x-default")}
            if name in prop and not jsonschema.Draft202012Validator(bare).is_valid(prop[name]):
                problems.append(f"{key}: {name} {prop[name]!r} is not a valid value")
    assert not problems, "\n".join(problems)


def test_the_documented_default_that_is_not_filled_in_is_the_codes() -> None:
    on_unreadable = SCHEMA["properties"]["dataset"]["properties"]["on_unreadable"]
    assert "default" not in on_unreadable  # so that older runs' params stay the same
    assert dataset_settings().unreadable_policy == on_unreadable["x-default"]


def test_every_typed_setting_is_a_schema_key_with_a_default() -> None:
    sections = settings.Section.__subclasses__()
    assert len(sections) >= 8
    problems = []
    for section in sections:
        path = section.section.split(".")
        problems += filter(None, (documented([*path, f.name]) for f in fields(section)))
    for item in fields(settings.Neuron):
        key = NEURON_KEYS.get(item.name, item.name)
        if key is not None:
            problems += filter(None, [documented(["neurons", key])])
    assert not problems, "\n".join(problems)


def test_every_config_key_the_code_reads_is_a_schema_key_with_a_default() -> None:
    reads = {}
    for path in CODE:
        for match in CONFIG_READ.finditer(path.read_text()):
            keys = re.findall(r"[\"']([^\"']+)[\"']", match[1])
            reads.setdefault(tuple(keys), f"{path.relative_to(REPO)}: {match[0]}")
    assert len(reads) > 20, "the pattern no longer finds the workflow's reads"
    problems = [f"{where} ({documented(list(keys))})" for keys, where in reads.items()
                if documented(list(keys))]  # fmt: skip
    assert not problems, "read but not documented with a default:\n" + "\n".join(problems)


def test_every_method_setting_has_a_default_and_help() -> None:
    for name, cls in methods.REGISTRY.items():
        for item in fields(cls.Settings):
            assert item.metadata.get("help"), f"synthesis.{name}.{item.name}: no help"
        methods.defaults(cls.Settings)  # raises for a setting without a default
        assert cls.summary.strip(), f"{name}: no summary"
