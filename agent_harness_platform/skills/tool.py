"""The ``skill`` tool: the model lists, reads and searches the skill tree, host-side.

What it defends against: a model (or a prompt injected into it) reading host files outside the
skill root through the ``path`` argument, by ``..`` segments, absolute paths, NUL bytes or
symlinks placed in the tree that point out of it, and flooding the context with a huge file
or search result. Every path is resolved (symlinks included) and must stay inside the real
root; the file is then opened without following a final symlink, and reads and search results
are capped. Refusals are ``ModelRetry`` messages the model can act on.

What it does not defend against: someone with write access to the skill tree on the host
(they choose what the model reads anyway), or a symlink swapped in between the check and the
open by a concurrent writer on the host. The tree is trusted operator content.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic_ai import ModelRetry, Tool

from agent_harness_platform.errors import ConfigurationError
from agent_harness_platform.skills.tree import SKILL_FILE, iter_skill_files, parse_skill_file

__all__ = ["SKILL_TOOL_NAME", "make_skill_tool"]

SKILL_TOOL_NAME = "skill"
"""The name the model sees."""

logger = logging.getLogger("agent_harness_platform.skills")

_MAX_LINE_CHARS = 300
_MAX_SEARCH_FILE_BYTES = 1024 * 1024
_OUTSIDE = (
    "The path {path!r} is outside the skill root; paths are relative to the skill root, "
    "exactly as `skill(action='list')` shows them. Call `list` first."
)
_DESCRIPTION = """\
Your skill library: step-by-step procedures (SKILL.md files) written for you.
- skill(action="list"): every skill with its path, name and description. Call this first.
- skill(action="read", path="<path from list>"): the content of one file under the skill root, \
e.g. "default-agent/SKILL.md". At most {max_read} bytes are returned; "truncated" is true when \
the file is longer.
- skill(action="search", query="<text>"): lines containing the text (case-insensitive) in all \
skill files, at most {max_results} matches.
When a skill's description fits the task, read its SKILL.md and follow its steps in order."""


def make_skill_tool(
    root: Path,
    *,
    max_read_bytes: int = 32_768,
    max_search_results: int = 50,
    on_read: Callable[[str], None] | None = None,
) -> Tool[Any]:
    """Build the ``skill`` tool over the skill tree at ``root`` (usually ``source.resolve()``).

    The tool returns JSON-able dicts:

    * ``list`` → ``{"skills": [{"path", "name", "description", "bytes"}]}`` (plus
      ``"invalid": [{"path", "error"}]`` when some SKILL.md cannot be parsed);
    * ``read`` → ``{"path", "content", "truncated", "bytes"}``; ``bytes`` is the file size and
      ``content`` is cut at ``max_read_bytes`` on a UTF-8 character boundary;
    * ``search`` → ``{"query", "matches": [{"path", "line", "text"}], "truncated"}``.

    ``on_read(relative_path)`` is called after each successful read. When the root is missing
    at call time, every action returns ``{"error": "..."}`` instead of raising.
    """
    if max_read_bytes < 1 or max_search_results < 1:
        raise ConfigurationError(
            f"make_skill_tool needs max_read_bytes >= 1 and max_search_results >= 1, got "
            f"{max_read_bytes} and {max_search_results}."
        )
    root = Path(root)

    def skill(
        action: Literal["list", "read", "search"],
        path: str | None = None,
        query: str | None = None,
    ) -> dict[str, Any]:
        """Use the skill library.

        Args:
            action: "list" to see all skills, "read" to read one file, "search" to find lines.
            path: For "read" only: the file path relative to the skill root, as "list" shows it.
            query: For "search" only: the text to look for, case-insensitive.
        """
        real_root = _live_root(root)
        if real_root is None:
            return {
                "error": "The skill library is not available on the host right now. "
                "Continue without skills and tell the user that the skills are missing."
            }
        if action == "list":
            return _list(real_root)
        if action == "read":
            if not path:
                raise ModelRetry(
                    'action="read" needs `path`, a file path from `skill(action="list")`, '
                    'e.g. skill(action="read", path="default-agent/SKILL.md").'
                )
            result = _read(real_root, path, max_read_bytes)
            if on_read is not None:
                on_read(result["path"])
            return result
        if action == "search":
            if query is None or not query.strip():
                raise ModelRetry(
                    'action="search" needs a non-empty `query`, e.g. '
                    'skill(action="search", query="deploy").'
                )
            return _search(real_root, query, max_search_results)
        raise ModelRetry(f'Unknown action {action!r}; use "list", "read" or "search".')

    return Tool(
        skill,
        name=SKILL_TOOL_NAME,
        description=_DESCRIPTION.format(max_read=max_read_bytes, max_results=max_search_results),
        takes_ctx=False,
    )


def _live_root(root: Path) -> Path | None:
    try:
        real = root.resolve()
    except (OSError, RuntimeError):
        real = None
    if real is None or not real.is_dir():
        logger.warning("[skills] skill root %s is missing; the skill tool reports it", root)
        return None
    return real


def _list(root: Path) -> dict[str, Any]:
    skills: list[dict[str, Any]] = []
    invalid: list[dict[str, str]] = []
    for relative, real in iter_skill_files(root):
        if Path(relative).name != SKILL_FILE:
            continue
        try:
            info = parse_skill_file(root, relative, real, shown=relative)
        except ConfigurationError as exc:
            invalid.append({"path": relative, "error": str(exc)})
            continue
        skills.append(
            {
                "path": info.path,
                "name": info.name,
                "description": info.description,
                "bytes": info.bytes,
            }
        )
    result: dict[str, Any] = {"skills": skills}
    if invalid:
        result["invalid"] = invalid
    return result


def _resolve_inside(root: Path, raw: str) -> tuple[str, Path]:
    """Map a model-supplied path to ``(normalized relative path, real path)`` or refuse."""
    if "\x00" in raw or raw.startswith(("/", "\\")) or Path(raw).is_absolute():
        raise ModelRetry(_OUTSIDE.format(path=raw.replace("\x00", "\\x00")))
    try:
        real = (root / raw).resolve()
    except (OSError, RuntimeError):
        raise ModelRetry(
            f"There is no readable file {raw!r} in the skill root. Call `list` first."
        ) from None
    if not real.is_relative_to(root):
        raise ModelRetry(_OUTSIDE.format(path=raw))
    if real.is_dir():
        raise ModelRetry(
            f"{raw!r} is a directory; read a file inside it, e.g. {raw.rstrip('/')}/{SKILL_FILE}. "
            "Call `list` first."
        )
    if not real.is_file():
        raise ModelRetry(f"There is no file {raw!r} in the skill root. Call `list` first.")
    return real.relative_to(root).as_posix(), real


def _read(root: Path, raw: str, limit: int) -> dict[str, Any]:
    relative, real = _resolve_inside(root, raw)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError:
        raise ModelRetry(
            f"The file {raw!r} cannot be read in the skill root. Call `list` first."
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ModelRetry(f"{raw!r} is not a regular file in the skill root. Call `list` first.")
        data = handle.read(limit + 1)
    truncated = len(data) > limit
    if truncated:
        data = _cut_utf8(data, limit)
    logger.info("[skills] read %s (%d of %d bytes)", relative, len(data), info.st_size)
    return {
        "path": relative,
        "content": data.decode("utf-8", errors="replace"),
        "truncated": truncated,
        "bytes": info.st_size,
    }


def _cut_utf8(data: bytes, limit: int) -> bytes:
    """``data[:limit]``, moved back so no multi-byte UTF-8 character is split."""
    cut = limit
    # data[cut] is the first byte left out; a continuation byte there means a split character.
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]


def _search(root: Path, query: str, limit: int) -> dict[str, Any]:
    needle = query.casefold()
    matches: list[dict[str, Any]] = []
    truncated = False
    for relative, real in iter_skill_files(root):
        try:
            if real.stat().st_size > _MAX_SEARCH_FILE_BYTES:
                continue
            data = real.read_bytes()
        except OSError:
            continue
        if b"\x00" in data:  # binary file
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if needle not in line.casefold():
                continue
            if len(matches) == limit:
                truncated = True
                break
            matches.append({"path": relative, "line": number, "text": line[:_MAX_LINE_CHARS]})
        if truncated:
            break
    return {"query": query, "matches": matches, "truncated": truncated}
