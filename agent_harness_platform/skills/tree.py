"""Reading a skill tree: SKILL.md parsing, build-time validation and the tree hash.

A skill tree is a directory with one folder per skill. Each folder holds a ``SKILL.md`` in the
Agent Skills format: YAML frontmatter with ``name`` (equal to the folder name) and
``description``, then the procedure as Markdown. Other files in a skill folder (references,
templates) are readable through the skill tool and count in the hash.

Walking rules, shared with the skill tool: symlinked directories are not descended into, and
a file whose real path leaves the root (a symlink out) is left out as if it did not exist.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent_harness_platform.errors import ConfigurationError

__all__ = [
    "SKILL_FILE",
    "SkillInfo",
    "iter_skill_files",
    "load_skills",
    "parse_skill_file",
    "skill_tree_hash",
    "validate_skill_tree",
]

SKILL_FILE = "SKILL.md"
"""The file name that marks a folder as a skill."""

_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_NAME_MAX = 64
_DESCRIPTION_MAX = 1024


@dataclass(frozen=True)
class SkillInfo:
    """One parsed SKILL.md."""

    path: str
    """Path relative to the skill root, POSIX style, e.g. ``default-agent/SKILL.md``."""
    name: str
    """The frontmatter ``name``; equal to the skill's folder name."""
    description: str
    """The frontmatter ``description``: what the skill does and when to use it."""
    bytes: int
    """Size of the SKILL.md file in bytes."""
    body: str
    """The procedure: everything after the frontmatter."""


def _require_root(root: Path) -> Path:
    if not root.exists():
        raise ConfigurationError(
            f"Skill root {root} does not exist; create it with one folder per skill "
            f"(e.g. {root}/default-agent/{SKILL_FILE}) or point the skill source at it."
        )
    if not root.is_dir():
        raise ConfigurationError(f"Skill root {root} is not a directory; point it at a folder.")
    return root.resolve()


def iter_skill_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file inside ``root`` as ``(relative POSIX path, real path)``, sorted.

    ``root`` must already be resolved. Symlinked directories are not followed; symlinked files
    are kept only when their target stays inside the root.
    """
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for filename in filenames:
            entry = Path(dirpath, filename)
            try:
                real = entry.resolve()
            except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
                continue
            if not real.is_relative_to(root) or not real.is_file():
                continue
            found.append((entry.relative_to(root).as_posix(), real))
    found.sort(key=lambda item: item[0])
    yield from found


def skill_tree_hash(root: Path) -> str:
    """A sha256 hex digest over every file in the tree (relative path and content, sorted).

    Any edit, added, removed or renamed file changes it; nothing else does (timestamps and
    permissions are ignored). It goes into the turn cache key, so editing a SKILL.md
    invalidates cached turns.
    """
    real_root = _require_root(root)
    digest = hashlib.sha256(b"ahp-skill-tree-v1\0")
    for relative, real in iter_skill_files(real_root):
        content = _read_bytes(real)
        name = relative.encode("utf-8", "surrogateescape")
        # Length prefixes keep the encoding unambiguous across file boundaries.
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def load_skills(root: Path) -> list[SkillInfo]:
    """Parse every SKILL.md under ``root``, sorted by path.

    Raises :class:`ConfigurationError` when the root is missing or any SKILL.md is invalid;
    the message names each bad file and says how to fix it.
    """
    real_root = _require_root(root)
    skills: list[SkillInfo] = []
    problems: list[str] = []
    for relative, real in iter_skill_files(real_root):
        if Path(relative).name != SKILL_FILE:
            continue
        try:
            skills.append(parse_skill_file(root, relative, real))
        except ConfigurationError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigurationError("\n".join(problems))
    return skills


def validate_skill_tree(root: Path) -> list[SkillInfo]:
    """The build-time check of a skill source: :func:`load_skills` plus tree-wide rules.

    The root must exist, hold at least one skill, and skill names must be unique.
    """
    skills = load_skills(root)
    if not skills:
        raise ConfigurationError(
            f"Skill root {root} contains no {SKILL_FILE}; add one folder per skill, "
            f"e.g. {root}/default-agent/{SKILL_FILE}."
        )
    seen: dict[str, str] = {}
    for skill in skills:
        if skill.name in seen:
            raise ConfigurationError(
                f"Skill name {skill.name!r} is used by both {root / seen[skill.name]} and "
                f"{root / skill.path}; give each skill a unique folder name."
            )
        seen[skill.name] = skill.path
    return skills


def parse_skill_file(
    root: Path, relative: str, real: Path, *, shown: str | Path | None = None
) -> SkillInfo:
    """Parse and check one SKILL.md; errors name ``shown`` (default ``root / relative``)."""
    shown = root / relative if shown is None else shown
    folder = Path(relative).parent.name or root.resolve().name
    raw = _read_bytes(real)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{shown} is not valid UTF-8; save it as UTF-8.") from None
    example = f"---\nname: {folder}\ndescription: <what it does and when to use it>\n---"
    split = _split_frontmatter(text)
    if split is None:
        raise ConfigurationError(
            f"{shown} has no YAML frontmatter; start the file with a block like:\n{example}"
        )
    header, body = split
    try:
        meta: Any = yaml.safe_load(header)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (frontmatter line {where.line + 1})" if where is not None else ""
        raise ConfigurationError(
            f"{shown} has invalid YAML in its frontmatter{line}; fix the block between the "
            f"'---' lines, e.g.:\n{example}"
        ) from None
    if not isinstance(meta, dict):
        raise ConfigurationError(
            f"{shown}: the frontmatter must be a mapping with 'name' and 'description', "
            f"e.g.:\n{example}"
        )
    name = meta.get("name")
    if name is None:
        raise ConfigurationError(f"{shown}: the frontmatter has no 'name'; add 'name: {folder}'.")
    if not isinstance(name, str) or len(name) > _NAME_MAX or not _NAME_RE.match(name):
        raise ConfigurationError(
            f"{shown}: name {name!r} is invalid; use 1-{_NAME_MAX} lowercase letters, digits "
            f"and single hyphens (no leading or trailing hyphen), e.g. 'name: {folder}'."
        )
    if name != folder:
        raise ConfigurationError(
            f"{shown}: name {name!r} does not match its folder {folder!r}; set "
            f"'name: {folder}' or rename the folder to {name!r}."
        )
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigurationError(
            f"{shown}: the frontmatter needs a non-empty 'description' string; add "
            f"'description: <what the skill does and when to use it>'."
        )
    if len(description) > _DESCRIPTION_MAX:
        raise ConfigurationError(
            f"{shown}: the description is {len(description)} characters; keep it under "
            f"{_DESCRIPTION_MAX} and move details into the body."
        )
    return SkillInfo(
        path=relative, name=name, description=description.strip(), bytes=len(raw), body=body
    )


def _split_frontmatter(text: str) -> tuple[str, str] | None:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :]).lstrip("\r\n")
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read skill file {path} ({exc.strerror}); check its permissions."
        ) from exc
