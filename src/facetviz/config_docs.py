"""config/README.md's per-key tables, generated from the one place each setting lives.

The pipeline's sections live in workflow/schemas/config.schema.yaml (each key's type, bounds,
default and description); a synthesis method's settings live in its settings dataclass
(`setting(default, help, **bounds)`) and what it does in its `summary`. config/README.md keeps
its prose by hand and these tables between `<!-- generated: NAME ... -->` and
`<!-- end generated -->`; a test fails when they differ from what this module renders, naming
the key. Each default cell also shows config/config.yaml's value where the default run sets
another. Regenerate the tables (from the repository, with the project's venv) with

    python -m facetviz.config_docs --write

This module sits on top of the package (beside `checks`) because it reads the method registry.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from facetviz.synthesis import methods

REPO = Path(__file__).resolve().parents[2]  # src/facetviz/config_docs.py
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
README = REPO / "config" / "README.md"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
COMMAND = "python -m facetviz.config_docs --write"
# a marker names its block and says how to remake it, so that nobody edits the table by hand
MARKER = "<!-- generated: {name} (edit the schema or the method, then: " + COMMAND + ") -->"
END = "<!-- end generated -->"
BLOCK = re.compile(
    r"^<!-- generated: (?P<name>\S+) .*?-->\n(?P<body>.*?)^<!-- end generated -->", re.S | re.M
)
METHODS_BLOCK = "methods"
# config.yaml values longer than this are named, not shown (a label map fills a screen)
SHOWN_CHARS = 48


@dataclass(frozen=True)
class Row:
    """One table row: the key, its default cell and its meaning."""

    key: str
    default: str
    meaning: str

    def markdown(self) -> str:
        return f"| `{self.key}` | {self.default} | {_cell(self.meaning)} |"


def _cell(text: str) -> str:
    """Text as one Markdown table cell: one line, its pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def yaml_inline(value: Any) -> str:
    """`value` as YAML on one line, as a config would write it (`1.0e-05`, `[a, b]`, `null`)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def load_default_config(path: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def sections(schema: Mapping[str, Any]) -> list[str]:
    """The schema's sections (objects, and the neurons list), in the schema's order."""
    props = schema["properties"]
    return [name for name, prop in props.items() if _type(prop) & {"object", "array"}]


def _type(prop: Mapping[str, Any]) -> set[str]:
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def default_cell(prop: Mapping[str, Any], required: bool, configured: Any = ...) -> str:
    """The default (`default`, else the documented `x-default`, else "required"), and the
    default config's value where it sets another (`configured`; `...`: it does not set it)."""
    if "default" in prop or "x-default" in prop:
        default = prop.get("default", prop.get("x-default"))
        cell = f"`{yaml_inline(default)}`"
    else:
        default, cell = ..., "required" if required else "no default"
    if configured is not ... and configured != default:
        shown = yaml_inline(configured)
        note = f"`{shown}`" if len(shown) <= SHOWN_CHARS else "set"
        cell += f" (config.yaml: {note})"
    return cell


def property_rows(
    node: Mapping[str, Any], configured: Mapping[str, Any] | None, prefix: str = ""
) -> list[Row]:
    """A row per key of an object schema, the keys of a nested object's own properties as
    `outer.key` (model's `train.epochs`); `configured`: the default config's values there."""
    rows = []
    configured = configured if isinstance(configured, Mapping) else {}
    required = set(node.get("required", []))
    for key, prop in node.get("properties", {}).items():
        if "properties" in prop:  # a nested section: its keys, not the object
            rows += property_rows(prop, configured.get(key), f"{prefix}{key}.")
            continue
        cell = default_cell(prop, key in required, configured.get(key, ...))
        rows.append(Row(prefix + key, cell, prop.get("description", "")))
    entry = node.get("additionalProperties")
    if isinstance(entry, Mapping) and "properties" in entry:  # `<name>: {...}` entries (probes)
        rows += property_rows(entry, None, f"{prefix}<name>.")
    return rows


def section_rows(schema: Mapping[str, Any], name: str, config: Mapping[str, Any]) -> list[Row]:
    """The rows of a section (`top`: the top-level keys that are no section)."""
    if name == "top":
        keys = set(schema["properties"]) - set(sections(schema))
        top = {**schema, "properties": {k: v for k, v in schema["properties"].items() if k in keys}}
        return property_rows(top, config)
    prop = schema["properties"][name]
    if "items" in prop:  # neurons: each entry's keys; the default config's list is no default
        return property_rows(prop["items"], None)
    return property_rows(prop, config.get(name))


def table(rows: Sequence[Row], head: str = "| key | default | meaning |") -> str:
    return "\n".join([head, "| --- | --- | --- |", *(row.markdown() for row in rows)])


def setting_rows(name: str, configured: Mapping[str, Any] | None) -> list[Row]:
    """A method's settings: its dataclass fields' defaults and help, with their choices."""
    configured = configured or {}
    rows = []
    for item in fields(methods.method_class(name).Settings):
        help_text = item.metadata.get("help", "")
        choices = item.metadata.get("bounds", {}).get("enum")
        if choices and not all(str(choice) in help_text for choice in choices):
            help_text += "; one of " + ", ".join(f"`{choice}`" for choice in choices)
        cell = default_cell({"default": item.default}, False, configured.get(item.name, ...))
        rows.append(Row(item.name, cell, help_text))
    return rows


def methods_block(config: Mapping[str, Any]) -> str:
    """The built-in methods (their defaults and summaries), the references, and a table of
    each method's settings."""
    synthesis = config.get("synthesis", {})
    summary = []
    for name in methods.BUILT_IN:
        defaults = methods.defaults(methods.method_class(name).Settings)
        summary.append(f"| `{name}` | `{yaml_inline(defaults)}` | {_summary(name)} |")
    references = [f"| `{name}` | {_summary(name)} |" for name in methods.REFERENCES]
    parts = [
        "| method | defaults | what it does |\n| --- | --- | --- |\n" + "\n".join(summary),
        "| reference | what it shows (no settings) |\n| --- | --- |\n" + "\n".join(references),
    ]
    for name in methods.BUILT_IN:
        rows = setting_rows(name, synthesis.get(name))
        parts += [f"#### `synthesis.{name}`", table(rows)]
    return "\n\n".join(parts)


def _summary(name: str) -> str:
    return _cell(methods.method_class(name).summary)


def block_names(schema: Mapping[str, Any]) -> list[str]:
    """Every generated block config/README.md must hold: the top level, each section, the
    methods."""
    return ["top", *sections(schema), METHODS_BLOCK]


def render_block(name: str, schema: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    if name == METHODS_BLOCK:
        return methods_block(config)
    return table(section_rows(schema, name, config))


def render(text: str, schema: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """`text` with every generated block rendered anew (the prose around them kept)."""

    def fill(match: re.Match[str]) -> str:
        body = render_block(match["name"], schema, config)
        return f"{MARKER.format(name=match['name'])}\n{body}\n{END}"

    return BLOCK.sub(fill, text)


def _rows_by_key(body: str) -> dict[str, str]:
    """A block's table rows by key; a method's settings as `synthesis.<method>.<key>`."""
    rows, prefix = {}, ""
    for line in body.splitlines():
        if line.startswith("#### "):
            prefix = line.split("`")[1] + "."
        elif match := re.match(r"\| `([^`]+)` \|", line):
            rows[prefix + match[1]] = line
    return rows


def block_problems(name: str, found: str, expected: str) -> list[str]:
    """What differs between a block as found and as rendered, key by key."""
    have, want = _rows_by_key(found), _rows_by_key(expected)
    where = "" if name in ("top", METHODS_BLOCK) else f"{name}."
    problems = [f"{where}{key}: missing" for key in want if key not in have]
    problems += [f"{where}{key}: changed" for key in want if key in have and have[key] != want[key]]
    problems += [f"{where}{key}: no such key any more" for key in have if key not in want]
    if not problems and found.strip() != expected.strip():
        problems.append(f"block {name}: differs outside the rows")
    return problems


def problems(text: str, schema: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """Where config/README.md's generated tables differ from the schema and the methods: each
    key missing, changed or gone, and each block missing or unknown."""
    found = {match["name"]: match["body"] for match in BLOCK.finditer(text)}
    names = block_names(schema)
    issues = [f"block {name}: missing (add its markers)" for name in names if name not in found]
    issues += [f"block {name}: no such section" for name in found if name not in names]
    for name in names:
        if name in found:
            expected = render_block(name, schema, config)
            issues += block_problems(name, found[name], expected)
    return issues


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facetviz.config_docs",
        description="Check (default) or regenerate config/README.md's generated tables.",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the generated tables")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    schema, config = load_schema(), load_default_config()
    text = args.readme.read_text()
    issues = problems(text, schema, config)
    unknown = [issue for issue in issues if "no such section" in issue or "add its" in issue]
    if args.write and not unknown:
        args.readme.write_text(render(text, schema, config))
        return 0
    for issue in issues:
        print(f"{args.readme}: {issue}", file=sys.stderr)
    if issues and not args.write:
        print(f"regenerate with: {COMMAND}", file=sys.stderr)
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
