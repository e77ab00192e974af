"""Skills: SKILL.md procedures the agent lists, reads and searches through the ``skill`` tool.

* :mod:`.source`: the :class:`SkillSource` seam and :class:`LocalSkillSource` (a Profile field);
* :mod:`.tree`: SKILL.md parsing, :func:`validate_skill_tree`, :func:`skill_tree_hash`;
* :mod:`.tool`: :func:`make_skill_tool`, the host-side tool with path confinement and caps.
"""

from agent_harness_platform.skills.source import LocalSkillSource, SkillSource
from agent_harness_platform.skills.tool import SKILL_TOOL_NAME, make_skill_tool
from agent_harness_platform.skills.tree import (
    SKILL_FILE,
    SkillInfo,
    load_skills,
    skill_tree_hash,
    validate_skill_tree,
)

__all__ = [
    "SKILL_FILE",
    "SKILL_TOOL_NAME",
    "LocalSkillSource",
    "SkillInfo",
    "SkillSource",
    "load_skills",
    "make_skill_tool",
    "skill_tree_hash",
    "validate_skill_tree",
]
