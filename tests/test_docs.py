"""docs/import-format.md is the reference of the import format: keep it true.

Every command type has a section that documents every field of its class;
every ```json example is valid and, in the order of the page, the examples
import cleanly (on SQLite and PostgreSQL); the published JSON Schema is a
valid schema that accepts the examples and refuses broken lines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from partnerledger import Ledger
from partnerledger.commands import (
    COMMAND_TYPES,
    Command,
    Compensation,
    Contact,
    Pilot,
    Targets,
    Terms,
    Tier,
    command_schema,
    decode_command,
    derived_command_id,
    encode_command,
)
from partnerledger.jsonl import import_lines

DOC = Path(__file__).resolve().parent.parent / "docs" / "import-format.md"
TEXT = DOC.read_text(encoding="utf-8")

#: Fields every command has, documented once in the "Common fields" section.
COMMON = ("network", "actor", "occurred_at", "command_id")
NESTED: tuple[type[msgspec.Struct], ...] = (Tier, Contact, Terms, Targets, Compensation, Pilot)

_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
_FENCE = re.compile(r"^(`{3,})(\S*)")
_ROW_NAME = re.compile(r"^\|\s*`([^`]+)`\s*\|")


def _sections(text: str) -> dict[str, str]:
    """Heading text -> the text under it, up to the next heading of any level.

    Lines inside fenced code blocks are never headings.
    """
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    fence: str | None = None
    for line in text.splitlines():
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.startswith(fence):
            fence = None
        elif fence is None:
            heading = _HEADING.match(line)
            if heading:
                title = heading.group(2)
                assert title not in found, f"two sections titled {title!r}"
                current = found[title] = []
                continue
        if current is not None:
            current.append(line)
    return {title: "\n".join(lines) for title, lines in found.items()}


def _code_blocks(text: str, language: str) -> list[tuple[int, list[tuple[int, str]]]]:
    """Every fenced block of ``language``: (line of the fence, [(line number, line)])."""
    blocks: list[tuple[int, list[tuple[int, str]]]] = []
    fence: str | None = None
    inside: list[tuple[int, str]] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is None:
            opening = _FENCE.match(line)
            if opening:
                fence = opening.group(1)
                if opening.group(2) == language:
                    inside = []
                    blocks.append((number, inside))
        elif line.startswith(fence):
            fence, inside = None, None
        elif inside is not None:
            inside.append((number, line))
    return blocks


def _table_names(section: str) -> list[str]:
    """The backticked names in the first column of the section's tables."""
    return [m.group(1) for line in section.splitlines() if (m := _ROW_NAME.match(line))]


def _field_names(cls: type[msgspec.Struct]) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(cls)]


SECTIONS = _sections(TEXT)


def _command_section(type_name: str) -> str:
    title = f"`{type_name}`"
    assert title in SECTIONS, f"docs/import-format.md has no '### {title}' section"
    return SECTIONS[title]


def _examples() -> list[tuple[int, dict[str, Any], str]]:
    """Every line of every ```json block: (line in the doc, parsed object, raw line)."""
    found = []
    for _, lines in _code_blocks(TEXT, "json"):
        for number, line in lines:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                pytest.fail(f"docs/import-format.md:{number}: not one JSON object: {error}")
            assert isinstance(data, dict), f"docs/import-format.md:{number}: not a JSON object"
            found.append((number, data, line))
    return found


EXAMPLES = _examples()
COMMAND_EXAMPLES = [(number, line) for number, data, line in EXAMPLES if "type" in data]


# ------------------------------------------------------------------ (a) sections


def test_every_command_type_has_a_section() -> None:
    missing = [name for name in COMMAND_TYPES if f"`{name}`" not in SECTIONS]
    assert not missing, f"no '### `type`' section for: {', '.join(missing)}"
    # ...and no section documents a command type that does not exist.
    documented = {
        title.strip("`") for title in SECTIONS if re.fullmatch(r"`[a-z_]+\.[a-z_]+`", title)
    }
    assert documented - set(COMMAND_TYPES) == set()


@pytest.mark.parametrize("type_name", sorted(COMMAND_TYPES))
def test_every_field_of_a_command_is_documented_in_its_section(type_name: str) -> None:
    section = _command_section(type_name)
    fields = [name for name in _field_names(COMMAND_TYPES[type_name]) if name not in COMMON]
    undocumented = [name for name in fields if f"`{name}`" not in section]
    assert not undocumented, f"{type_name}: fields not mentioned: {undocumented}"
    # Each field has a row in the section's table, and the table lists only real fields.
    rows = _table_names(section)
    assert sorted(rows) == sorted(fields), f"{type_name}: table rows {rows} != fields {fields}"


def test_common_fields_are_documented_once_in_the_common_section() -> None:
    common = SECTIONS.get("Common fields")
    assert common is not None, "no '## Common fields' section"
    rows = _table_names(common)
    for name in ("type", *COMMON):
        assert name in rows, f"common field `{name}` is not in the Common fields table"
    # Every command has them, with the same definition.
    for cls in COMMAND_TYPES.values():
        assert set(COMMON) <= set(_field_names(cls))
    # ...and no command section repeats them in its own table.
    for type_name in COMMAND_TYPES:
        repeated = set(_table_names(_command_section(type_name))) & set(COMMON)
        assert not repeated, f"{type_name} documents common fields again: {repeated}"


@pytest.mark.parametrize("cls", NESTED, ids=lambda cls: cls.__name__)
def test_every_nested_type_is_documented_field_by_field(cls: type[msgspec.Struct]) -> None:
    section = SECTIONS.get(cls.__name__)
    assert section is not None, f"no '### {cls.__name__}' section"
    assert sorted(_table_names(section)) == sorted(_field_names(cls))


# ------------------------------------------------------------------ (b) examples


def test_every_command_section_has_an_example_of_its_type() -> None:
    without = []
    for type_name in COMMAND_TYPES:
        lines = [
            line
            for _, block in _code_blocks(_command_section(type_name), "json")
            for _, line in block
            if line.strip()
        ]
        if not any(json.loads(line).get("type") == type_name for line in lines):
            without.append(type_name)
    assert not without, f"sections without a ```json example of their own type: {without}"


def test_examples_decode_as_commands() -> None:
    assert len(COMMAND_EXAMPLES) >= len(COMMAND_TYPES)
    for number, line in COMMAND_EXAMPLES:
        try:
            decode_command(line)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            pytest.fail(f"docs/import-format.md:{number}: {error}")


def _example_commands() -> list[Command]:
    return [decode_command(line) for _, line in COMMAND_EXAMPLES]


def test_examples_in_document_order_are_accepted(ledger: Ledger) -> None:
    commands = _example_commands()

    outcome = ledger.execute_all(commands)

    assert outcome.duplicates == 0, "two examples are the same command"
    # As given but for personal data, stored sealed with its data subject (docs/privacy.md):
    # the identity covers everything else. (An example erases a subject, so its names are gone.)
    assert [derived_command_id(event.command) for event in outcome.recorded] == [
        derived_command_id(ledger.prepare(c)) for c in commands
    ]
    assert [type(event.command) for event in outcome.recorded] == [type(c) for c in commands]
    # Executing them again is a no-op: every command is already recorded.
    again = ledger.execute_all(commands)
    assert (len(again.recorded), again.duplicates) == (0, len(commands))


def test_examples_import_as_one_file(ledger: Ledger) -> None:
    lines = [line.encode("utf-8") for _, line in COMMAND_EXAMPLES]

    report = import_lines(ledger, lines)

    assert [f"line {e.line}: {e.field}: {e.reason}" for e in report.rejected] == []
    assert report.written
    assert (report.recorded, report.duplicates) == (len(lines), 0)


def test_documented_identity_recipe_matches_derived_command_id() -> None:
    recipes = [
        "\n".join(line for _, line in block)
        for _, block in _code_blocks(TEXT, "python")
        if any("def identity(" in line for _, line in block)
    ]
    assert len(recipes) == 1, "the Identity section should show one `def identity` recipe"
    namespace: dict[str, Any] = {}
    exec(recipes[0], namespace)
    identity = namespace["identity"]
    for number, line in COMMAND_EXAMPLES:
        command = decode_command(line)
        exported = encode_command(command).decode("utf-8")
        assert identity(exported) == derived_command_id(command), f"doc line {number}"
    # The same command written with other spacing, key order and offset has the same identity.
    command = decode_command(COMMAND_EXAMPLES[0][1])
    data = json.loads(COMMAND_EXAMPLES[0][1])
    shuffled = json.dumps(dict(reversed(list(data.items()))), indent=1)
    assert derived_command_id(decode_command(shuffled)) == derived_command_id(command)


# ------------------------------------------------------------------ (c) JSON Schema


def _validator() -> Any:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (it belongs in the `test` extra)"
    )
    schema = command_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft202012Validator
    cls.check_schema(schema)  # raises SchemaError if the schema itself is not valid
    return cls(schema)


def _errors(validator: Any, data: object) -> list[str]:
    return [error.message for error in validator.iter_errors(data)]


def test_command_schema_is_a_valid_json_schema() -> None:
    validator = _validator()
    # One alternative per command type, each closed to unknown fields.
    refs = {alternative["$ref"].rsplit("/", 1)[1] for alternative in validator.schema["anyOf"]}
    assert refs == {cls.__name__ for cls in COMMAND_TYPES.values()}
    for name in refs:
        assert validator.schema["$defs"][name]["additionalProperties"] is False


def test_every_example_validates_against_the_schema() -> None:
    validator = _validator()
    for number, line in COMMAND_EXAMPLES:
        errors = _errors(validator, json.loads(line))
        assert not errors, f"docs/import-format.md:{number}: {errors}"


@pytest.mark.parametrize(
    "breakage",
    ["no occurred_at", "unknown type", "unknown field", "no type"],
)
def test_schema_and_importer_refuse_broken_lines(breakage: str) -> None:
    validator = _validator()
    data = json.loads(COMMAND_EXAMPLES[0][1])
    if breakage == "no occurred_at":
        del data["occurred_at"]
    elif breakage == "unknown type":
        data["type"] = "referral.teleported"
    elif breakage == "unknown field":
        data["colour"] = "blue"
    else:
        del data["type"]

    assert _errors(validator, data), f"the schema accepts a line with {breakage}"
    with pytest.raises(msgspec.ValidationError):
        decode_command(json.dumps(data))
