"""Where a profile's skills come from: the :class:`SkillSource` seam and its local backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LocalSkillSource", "SkillSource"]


@runtime_checkable
class SkillSource(Protocol):
    """A place that yields a directory of skills (one folder per skill, each with a SKILL.md).

    ``resolve`` returns the skill root as an absolute path on the host. It does not check that
    the directory exists; :func:`~agent_harness_platform.skills.validate_skill_tree` does that
    at build time, with a message that names the path.
    """

    def resolve(self) -> Path:
        """The absolute path of the skill root on the host."""
        ...


class LocalSkillSource(BaseModel):
    """Skills in a directory on the host, e.g. ``LocalSkillSource("skills/basic")``.

    A relative ``path`` is resolved against the current working directory when
    :meth:`resolve` is called (not when the source is created), so a profile keeps the path
    as written and round-trips unchanged through ``model_dump`` / ``model_validate``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["local"] = Field(
        default="local",
        description="Discriminator of the skill source type; always 'local' for this source.",
    )
    path: Path = Field(
        description=(
            "Directory holding one folder per skill, each with a SKILL.md. A relative path is "
            "resolved against the current working directory at resolve time."
        ),
    )

    def __init__(self, path: str | os.PathLike[str] | None = None, /, **data: Any) -> None:
        # Allows the positional form LocalSkillSource("skills/basic"); keywords still work.
        if path is not None:
            data["path"] = path
        super().__init__(**data)

    def resolve(self) -> Path:
        """The skill root as an absolute path (symlinks resolved), relative to the cwd now."""
        return (Path.cwd() / self.path).resolve()
