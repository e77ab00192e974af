"""The skills rail: skill sources, SKILL.md validation, the tree hash and the ``skill`` tool.

The tool is driven through a real ``pydantic_ai.Agent`` with a ``FunctionModel`` that issues
one tool call, so a ``ModelRetry`` is observed as the retry prompt the model receives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Tool

from agent_harness_platform.errors import ConfigurationError
from agent_harness_platform.skills import (
    LocalSkillSource,
    SkillInfo,
    SkillSource,
    load_skills,
    make_skill_tool,
    skill_tree_hash,
    validate_skill_tree,
)

from .fakes import call_tool, seen_tool_definition

DEFAULT_SKILL = """\
---
name: default-agent
description: The default procedure for answering a question.
---
# Default agent

1. Read the question.
2. Answer it briefly.
"""

WIKI_SKILL = """\
---
name: wiki-research
description: How to research a topic in the wiki before answering.
---
Step 1: call lookup_wiki with the topic.
Step 2: cite the snippets (Durability matters).
"""


def tool_description(tool: Tool[Any]) -> str:
    return seen_tool_definition(tool)[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "skills"
    (root / "default-agent").mkdir(parents=True)
    (root / "default-agent" / "SKILL.md").write_text(DEFAULT_SKILL)
    (root / "wiki-research").mkdir()
    (root / "wiki-research" / "SKILL.md").write_text(WIKI_SKILL)
    (root / "wiki-research" / "reference.md").write_text("Durability is the point.\n")
    return root


# --- sources -----------------------------------------------------------------------------------


class Profile(BaseModel):
    """A stand-in for the real Profile: the skill source is one of its fields."""

    name: str
    skills: LocalSkillSource | None = None


def test_local_source_round_trips_through_a_profile() -> None:
    profile = Profile(name="p", skills=LocalSkillSource("skills/basic"))
    for mode in ("python", "json"):
        dumped = profile.model_dump(mode=mode)  # type: ignore[arg-type]
        assert Profile.model_validate(dumped) == profile
    assert Profile.model_validate_json(profile.model_dump_json()) == profile
    assert profile.model_dump(mode="json")["skills"] == {"kind": "local", "path": "skills/basic"}


def test_local_source_is_frozen_and_strict() -> None:
    source = LocalSkillSource(path=Path("x"))
    assert isinstance(source, SkillSource)
    with pytest.raises(ValueError):
        source.path = Path("y")  # type: ignore[misc]
    with pytest.raises(ValueError):
        LocalSkillSource.model_validate({"kind": "local", "path": "x", "extra": 1})
    with pytest.raises(ValueError):
        LocalSkillSource.model_validate({"kind": "s3", "path": "x"})
    schema = LocalSkillSource.model_json_schema()
    assert all("description" in spec for spec in schema["properties"].values())


def test_relative_source_resolves_against_cwd_at_resolve_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = LocalSkillSource("skills")
    monkeypatch.chdir(tmp_path)
    assert source.resolve() == tmp_path.resolve() / "skills"
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert source.resolve() == tmp_path.resolve() / "other" / "skills"
    assert LocalSkillSource(tmp_path / "abs").resolve() == tmp_path.resolve() / "abs"


# --- loading and validation --------------------------------------------------------------------


def test_load_skills_parses_the_tree(tree: Path) -> None:
    skills = validate_skill_tree(tree)
    assert [s.name for s in skills] == ["default-agent", "wiki-research"]
    first = skills[0]
    assert isinstance(first, SkillInfo)
    assert first.path == "default-agent/SKILL.md"
    assert first.description == "The default procedure for answering a question."
    assert first.bytes == len(DEFAULT_SKILL.encode())
    assert first.body.startswith("# Default agent")


@dataclass(frozen=True)
class BadSkill:
    id: str
    content: str
    expect: str
    folder: str = "my-skill"


BAD_SKILLS = [
    BadSkill("no-frontmatter", "# Just a body\n", "no YAML frontmatter"),
    BadSkill("unclosed", "---\nname: my-skill\ndescription: x\n", "no YAML frontmatter"),
    BadSkill("bad-yaml", "---\nname: [my-skill\ndescription: x\n---\nbody\n", "invalid YAML"),
    BadSkill("not-mapping", "---\n- a\n- b\n---\nbody\n", "must be a mapping"),
    BadSkill("no-name", "---\ndescription: x\n---\nbody\n", "has no 'name'"),
    BadSkill("upper-name", "---\nname: My_Skill\ndescription: x\n---\n", "is invalid", "My_Skill"),
    BadSkill("int-name", "---\nname: 42\ndescription: x\n---\n", "is invalid"),
    BadSkill("hyphen-edge", "---\nname: -a-\ndescription: x\n---\n", "is invalid", "-a-"),
    BadSkill("mismatch", "---\nname: other\ndescription: x\n---\n", "does not match its folder"),
    BadSkill("no-description", "---\nname: my-skill\n---\nbody\n", "'description'"),
    BadSkill("blank-description", "---\nname: my-skill\ndescription: '  '\n---\n", "'description'"),
]


@pytest.mark.parametrize("case", BAD_SKILLS, ids=lambda c: c.id)
def test_invalid_frontmatter_names_the_file(tmp_path: Path, case: BadSkill) -> None:
    (tmp_path / case.folder).mkdir()
    skill_file = tmp_path / case.folder / "SKILL.md"
    skill_file.write_text(case.content)
    with pytest.raises(ConfigurationError) as info:
        validate_skill_tree(tmp_path)
    message = str(info.value)
    assert str(skill_file) in message
    assert case.expect in message


def test_invalid_files_are_all_reported(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "SKILL.md").write_text("no frontmatter\n")
    with pytest.raises(ConfigurationError) as info:
        load_skills(tmp_path)
    assert "one/SKILL.md" in str(info.value) and "two/SKILL.md" in str(info.value)


def test_missing_or_empty_root_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for check in (validate_skill_tree, load_skills, skill_tree_hash):
        with pytest.raises(ConfigurationError, match=str(missing)):
            check(missing)
    with pytest.raises(ConfigurationError, match=r"contains no SKILL\.md"):
        validate_skill_tree(tmp_path)


def test_duplicate_skill_names_are_refused(tmp_path: Path) -> None:
    for parent in ("a", "b"):
        (tmp_path / parent / "dup").mkdir(parents=True)
        (tmp_path / parent / "dup" / "SKILL.md").write_text("---\nname: dup\ndescription: d\n---\n")
    with pytest.raises(ConfigurationError, match="unique"):
        validate_skill_tree(tmp_path)


# --- hash --------------------------------------------------------------------------------------


def test_hash_is_stable_and_tracks_every_file(tree: Path) -> None:
    before = skill_tree_hash(tree)
    assert before == skill_tree_hash(tree)
    assert len(before) == 64
    os.utime(tree / "default-agent" / "SKILL.md", (1, 1))  # timestamps do not count
    assert skill_tree_hash(tree) == before

    skill_file = tree / "default-agent" / "SKILL.md"
    skill_file.write_text(DEFAULT_SKILL + "3. Say thanks.\n")
    edited = skill_tree_hash(tree)
    assert edited != before
    skill_file.write_text(DEFAULT_SKILL)
    assert skill_tree_hash(tree) == before

    (tree / "wiki-research" / "reference.md").rename(tree / "wiki-research" / "notes.md")
    assert skill_tree_hash(tree) != before


# --- the skill tool ----------------------------------------------------------------------------


def test_list(tree: Path) -> None:
    result = call_tool(make_skill_tool(tree), action="list").returned
    assert result == {
        "skills": [
            {
                "path": "default-agent/SKILL.md",
                "name": "default-agent",
                "description": "The default procedure for answering a question.",
                "bytes": len(DEFAULT_SKILL.encode()),
            },
            {
                "path": "wiki-research/SKILL.md",
                "name": "wiki-research",
                "description": "How to research a topic in the wiki before answering.",
                "bytes": len(WIKI_SKILL.encode()),
            },
        ]
    }


def test_list_reports_invalid_skills_without_failing(tree: Path) -> None:
    (tree / "broken").mkdir()
    (tree / "broken" / "SKILL.md").write_text("no frontmatter")
    result = call_tool(make_skill_tool(tree), action="list").returned
    assert [s["name"] for s in result["skills"]] == ["default-agent", "wiki-research"]
    assert result["invalid"][0]["path"] == "broken/SKILL.md"
    assert str(tree) not in result["invalid"][0]["error"]  # no host paths for the model


def test_read_calls_on_read(tree: Path) -> None:
    reads: list[str] = []
    tool = make_skill_tool(tree, on_read=reads.append)
    result = call_tool(tool, action="read", path="default-agent/SKILL.md").returned
    assert result == {
        "path": "default-agent/SKILL.md",
        "content": DEFAULT_SKILL,
        "truncated": False,
        "bytes": len(DEFAULT_SKILL.encode()),
    }
    # A path that stays inside the root is normalized before it is reported.
    call_tool(tool, action="read", path="wiki-research/../wiki-research/reference.md")
    assert reads == ["default-agent/SKILL.md", "wiki-research/reference.md"]


def test_large_file_is_truncated_on_a_character_boundary(tree: Path) -> None:
    big = "---\nname: big\ndescription: big\n---\n" + "é" * 40_000  # 2 bytes per é
    (tree / "big").mkdir()
    (tree / "big" / "SKILL.md").write_text(big)
    limit = 1001  # odd, so the cut would land inside an é
    tool = make_skill_tool(tree, max_read_bytes=limit)
    result = call_tool(tool, action="read", path="big/SKILL.md").returned
    assert result["truncated"] is True
    assert result["bytes"] == len(big.encode())
    content = result["content"]
    assert "\ufffd" not in content
    assert len(content.encode()) <= limit
    assert big.startswith(content)
    assert len(content.encode()) >= limit - 3


def test_search(tree: Path) -> None:
    result = call_tool(make_skill_tool(tree), action="search", query="DURABILITY").returned
    assert result == {
        "query": "DURABILITY",
        "matches": [
            {
                "path": "wiki-research/SKILL.md",
                "line": 6,
                "text": "Step 2: cite the snippets (Durability matters).",
            },
            {"path": "wiki-research/reference.md", "line": 1, "text": "Durability is the point."},
        ],
        "truncated": False,
    }


def test_search_is_capped(tree: Path) -> None:
    tool = make_skill_tool(tree, max_search_results=2)
    result = call_tool(tool, action="search", query="e").returned
    assert len(result["matches"]) == 2
    assert result["truncated"] is True


@dataclass(frozen=True)
class Escape:
    id: str
    path: str
    setup: str = ""


ESCAPES = [
    Escape("dotdot", "../secret.txt"),
    Escape("absolute", "/etc/passwd"),
    Escape("inner-dotdot", "a/../../secret.txt"),
    Escape("symlink-file", "default-agent/leak.md", setup="file"),
    Escape("symlink-dir", "linked/secret.txt", setup="dir"),
    Escape("nul-byte", "default-agent/SKILL.md\x00.txt"),
]


@pytest.mark.parametrize("case", ESCAPES, ids=lambda c: c.id)
def test_paths_outside_the_root_are_refused(tree: Path, case: Escape) -> None:
    outside = tree.parent / "secret.txt"
    outside.write_text("TOP SECRET\n")
    if case.setup == "file":
        (tree / "default-agent" / "leak.md").symlink_to(outside)
    elif case.setup == "dir":
        (tree / "linked").symlink_to(tree.parent, target_is_directory=True)
    reads: list[str] = []
    outcome = call_tool(make_skill_tool(tree, on_read=reads.append), action="read", path=case.path)
    assert outcome.returned is None
    assert outcome.retry is not None
    assert "outside the skill root" in outcome.retry
    assert "list" in outcome.retry
    assert reads == []
    # The escape hatch is invisible to list and search as well.
    listing = call_tool(make_skill_tool(tree), action="search", query="TOP SECRET").returned
    assert listing["matches"] == []


@dataclass(frozen=True)
class BadCall:
    id: str
    args: dict[str, Any]
    expect: str


BAD_CALLS = [
    BadCall("read-without-path", {"action": "read"}, "needs `path`"),
    BadCall("search-without-query", {"action": "search"}, "needs a non-empty `query`"),
    BadCall("search-blank-query", {"action": "search", "query": "  "}, "non-empty `query`"),
    BadCall("unknown-file", {"action": "read", "path": "nope/SKILL.md"}, "Call `list` first"),
    BadCall("directory", {"action": "read", "path": "default-agent"}, "is a directory"),
    BadCall("unknown-action", {"action": "delete"}, "action"),
]


@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda c: c.id)
def test_wrong_calls_are_explained_to_the_model(tree: Path, case: BadCall) -> None:
    outcome = call_tool(make_skill_tool(tree), **case.args)
    assert outcome.returned is None
    assert outcome.retry is not None and case.expect in outcome.retry


def test_missing_root_at_call_time_is_reported(tmp_path: Path) -> None:
    tool = make_skill_tool(tmp_path / "gone")
    for args in ({"action": "list"}, {"action": "read", "path": "x/SKILL.md"}):
        result = call_tool(tool, **args).returned
        assert "not available" in result["error"]


def test_tool_shape_and_description(tree: Path) -> None:
    tool = make_skill_tool(tree, max_read_bytes=1234)
    assert tool.name == "skill"
    schema = tool.function_schema.json_schema
    assert set(schema["properties"]) == {"action", "path", "query"}
    assert schema["properties"]["action"]["enum"] == ["list", "read", "search"]
    description = tool_description(tool)
    assert "Call this first" in description and "1234 bytes" in description


def test_bad_limits_are_a_configuration_error(tree: Path) -> None:
    with pytest.raises(ConfigurationError):
        make_skill_tool(tree, max_read_bytes=0)
