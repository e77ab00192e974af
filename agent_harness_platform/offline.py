"""The offline model: a deterministic, scripted stand-in for an LLM.

No machine here has an API key, yet every stage must run end to end. This model is built on
PydanticAI's :class:`~pydantic_ai.models.function.FunctionModel`. It is not an LLM and never
claims to be one: it recognises a small set of intents in the prompt (OS, kernel, user,
processes, ``cd``, writing a summary file) and, when the ``skill`` tool exists and the prompt
asks for a procedure, it lists the skills, reads one and carries out its numbered steps
literally. So editing a SKILL.md changes what it does, offline too.

Each step is one tool call; answers are composed only from tool results. Usage is estimated
by FunctionModel the same way for every request, so token figures are comparable between runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

__all__ = ["OFFLINE_MODEL_NAME", "OfflineModel"]

OFFLINE_MODEL_NAME = "offline-scripted"

_MAX_STEPS = 40


@dataclass(frozen=True)
class _Call:
    tool: str
    args: dict[str, Any]


@dataclass
class _Exchange:
    """One tool call and what came back (a result, or a retry message when refused)."""

    call: ToolCallPart
    result: Any = None
    error: str | None = None


@dataclass
class _Facts:
    """What the tool results so far say about the world."""

    os_name: str | None = None
    kernel: str | None = None
    user: str | None = None
    processes: str | None = None
    hostname: str | None = None
    cwd: str | None = None
    last_stdout: str | None = None
    wiki_excerpts: list[str] = field(default_factory=list)
    message_id: str | None = None
    posted_at: str | None = None
    answer: str | None = None
    extra_outputs: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading the conversation


def _as_data(content: Any) -> Any:
    if isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


def _call_args(part: ToolCallPart) -> dict[str, Any]:
    args = part.args
    if isinstance(args, str):
        try:
            loaded = json.loads(args or "{}")
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return dict(args or {})


def _exchanges(messages: list[ModelMessage]) -> list[_Exchange]:
    calls: dict[str, _Exchange] = {}
    order: list[_Exchange] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            for part in message.parts:
                if isinstance(part, ToolCallPart):
                    ex = _Exchange(part)
                    calls[part.tool_call_id] = ex
                    order.append(ex)
        elif isinstance(message, ModelRequest):
            for rpart in message.parts:
                if isinstance(rpart, ToolReturnPart) and rpart.tool_call_id in calls:
                    calls[rpart.tool_call_id].result = _as_data(rpart.content)
                elif isinstance(rpart, RetryPromptPart) and rpart.tool_call_id in calls:
                    content = rpart.content
                    calls[rpart.tool_call_id].error = (
                        content if isinstance(content, str) else json.dumps(content, default=str)
                    )
    return order


def _current_turn(messages: list[ModelMessage]) -> tuple[str, int]:
    """The latest user prompt and the index of the message that carries it."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    text = (
                        part.content
                        if isinstance(part.content, str)
                        else " ".join(str(c) for c in part.content if isinstance(c, str))
                    )
                    return text, index
    return "", 0


def _learn(facts: _Facts, ex: _Exchange) -> None:
    result = ex.result
    args = _call_args(ex.call)
    if ex.call.tool_name == "exec" and isinstance(result, dict):
        command = str(args.get("command", ""))
        stdout = str(result.get("stdout", "")).strip()
        facts.cwd = str(result.get("cwd") or facts.cwd or "")
        facts.last_stdout = stdout
        if "os-release" in command:
            match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', stdout, re.M)
            lines = stdout.splitlines()
            facts.os_name = match.group(1) if match else (lines[0] if lines else None)
        elif "uname -r" in command:
            facts.kernel = stdout or None
        elif "whoami" in command or "id -un" in command:
            facts.user = stdout or None
        elif "wc -l" in command and ("ps " in command or "/proc" in command):
            facts.processes = stdout or None
        elif command.strip() == "hostname":
            facts.hostname = stdout or None
        elif "/snippets/" in command:
            data = _as_data(stdout)
            if isinstance(data, dict):
                facts.wiki_excerpts = [
                    str(s.get("excerpt", ""))
                    for s in data.get("snippets", [])
                    if isinstance(s, dict)
                ]
        elif stdout and not command.startswith("cd ") and "<<'EOF'" not in command:
            facts.extra_outputs.append((command, stdout))
    elif ex.call.tool_name == "exec_service" and isinstance(result, dict):
        raw = result.get("result")
        payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if args.get("service_name") == "lookup_wiki":
            facts.wiki_excerpts = [
                str(s.get("excerpt", ""))
                for s in payload.get("snippets", [])
                if isinstance(s, dict)
            ]
        elif args.get("service_name") == "publish_summary":
            facts.message_id = payload.get("message_id")
            facts.posted_at = payload.get("posted_at")
    elif ex.call.tool_name == "ask_question" and ex.result is not None:
        facts.answer = str(ex.result).strip()


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(\s|$)", text.strip(), re.S)
    return (match.group(1) if match else text.strip()).strip()


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


# --------------------------------------------------------------------------------------------
# Composition: everything the model says comes from tool results.


def _machine_summary(facts: _Facts) -> str:
    """Two sentences: OS and kernel, then a wiki fact when one was fetched, else the user."""
    os_name = facts.os_name or "an unidentified Linux distribution"
    kernel = facts.kernel or "an unknown kernel"
    first = f"This machine runs {os_name} on Linux kernel {kernel}."
    if facts.wiki_excerpts:
        second = f"The team wiki says: {_sentence(_first_sentence(facts.wiki_excerpts[0]))}"
    elif facts.user:
        load = f" with {facts.processes} processes running" if facts.processes else ""
        second = f"It was inspected as the user '{facts.user}'{load}."
    else:
        second = "It was inspected from inside its sandbox."
    return f"{first} {second}"


def _excerpt_summary(facts: _Facts) -> str:
    if not facts.wiki_excerpts:
        return "The wiki returned no snippet on this topic."
    excerpt = facts.wiki_excerpts[0]
    return f"Wiki summary: {_sentence(_first_sentence(excerpt))}"


def _investigation_report(facts: _Facts, done: list[_Exchange]) -> str:
    lines = [
        f"- OS: {facts.os_name}" if facts.os_name else None,
        f"- Kernel: {facts.kernel}" if facts.kernel else None,
        f"- Current user: {facts.user}" if facts.user else None,
        f"- Processes: {facts.processes}" if facts.processes else None,
        f"- Working directory: {facts.cwd}"
        if facts.cwd
        and any(_call_args(ex.call).get("command", "").startswith("cd ") for ex in done)
        else None,
    ]
    body = "\n".join(line for line in lines if line)
    commands = [
        str(_call_args(ex.call).get("command", "")) for ex in done if ex.call.tool_name == "exec"
    ]
    if commands:
        body += "\n\nCommands run (one per question): " + "; ".join(f"`{c}`" for c in commands)
    return body or "Nothing was found."


# --------------------------------------------------------------------------------------------
# Planning from a prompt (no skill)

_INTENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bOS\b|operating system", re.I), "cat /etc/os-release"),
    (re.compile(r"\bkernel\b", re.I), "uname -r"),
    (re.compile(r"\bcurrent user\b|\buser\b", re.I), "whoami"),
    (re.compile(r"\bprocess(es)?\b", re.I), "ps -e --no-headers | wc -l"),
]


def _wants_no_commands(prompt: str) -> bool:
    return bool(
        re.search(r"\bno new commands\b|\bwithout (running )?(any )?commands\b", prompt, re.I)
    )


def _summary_file(text: str) -> str | None:
    if not re.search(r"\bsummary\b", text, re.I) or not re.search(r"\bwrite\b", text, re.I):
        return None
    match = re.search(r"`?([\w./-]+\.(?:txt|md))`?", text)
    return match.group(1) if match else None


def _write_file_command(path: str, text: str) -> str:
    quoted = shlex.quote(path)
    return f"cat > {quoted} <<'EOF'\n{text}\nEOF\ncat {quoted}"


def _prompt_plan(prompt: str, facts: _Facts) -> list[_Call]:
    if _wants_no_commands(prompt):
        return []
    plan = [_Call("exec", {"command": cmd}) for pattern, cmd in _INTENTS if pattern.search(prompt)]
    cd = re.search(r"\bcd (?:in(?:to)? )?(/[\w./-]*)", prompt)
    if cd:
        # "cd into /tmp." ends a sentence; the period is not part of the path.
        target_dir = cd.group(1).rstrip(".") or "/"
        plan.append(_Call("exec", {"command": f"cd {target_dir}"}))
    target = _summary_file(prompt)
    if target:
        plan.append(
            _Call("exec", {"command": _write_file_command(target, _machine_summary(facts))})
        )
    return plan


# --------------------------------------------------------------------------------------------
# Following a skill


@dataclass(frozen=True)
class _Step:
    text: str
    code: str | None


_STEP_RE = re.compile(r"^\s{0,3}(\d+)[.)]\s+", re.M)
_FENCE_RE = re.compile(r"```[a-zA-Z]*\n(.*?)^\s*```", re.S | re.M)
_INLINE_RE = re.compile(r"`([^`\n]+)`")
_CALL_RE = re.compile(r"^(exec_service|ask_question|exec)\((.*)\)$", re.S)


def _parse_steps(markdown: str) -> list[_Step]:
    body = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)
    heading = re.search(r"^#+\s*(steps|procedure)\b.*$", body, re.I | re.M)
    if heading:
        body = body[heading.end() :]
        following = re.search(r"^#{1,2}\s", body, re.M)
        if following:
            body = body[: following.start()]
    starts = [m.start() for m in _STEP_RE.finditer(body)]
    steps: list[_Step] = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(body)
        chunk = _STEP_RE.sub("", body[start:end], count=1).strip()
        fence = _FENCE_RE.search(chunk)
        code = textwrap.dedent(fence.group(1)).strip() if fence else None
        text = _FENCE_RE.sub("", chunk).strip()
        steps.append(_Step(text=" ".join(text.split()), code=code))
    return steps


def _parse_call(source: str, summary: str) -> _Call | None:
    match = _CALL_RE.match(source.strip())
    if not match:
        return None
    tool, inner = match.group(1), match.group(2).strip()
    # `<summary>` stands for the text drafted so far, as a person would read it.
    inner = inner.replace("<summary>", json.dumps(summary))
    try:
        values = json.loads(f"[{inner}]")
    except ValueError:
        return None
    if tool == "exec_service" and len(values) == 2 and isinstance(values[1], dict):
        return _Call(tool, {"service_name": values[0], "args": values[1]})
    if tool == "ask_question" and len(values) == 1:
        return _Call(tool, {"question": values[0]})
    if tool == "exec" and len(values) == 1:
        return _Call(tool, {"command": values[0]})
    return None


@dataclass
class _SkillRun:
    """Where the model is in a procedure: the calls still to make, or the final answer."""

    next_call: _Call | None
    answer: str | None
    summary: str


def _follow(steps: list[_Step], done_after_read: list[_Exchange], facts: _Facts) -> _SkillRun:
    """Walk the procedure; the first step whose call has not been made yet is next."""
    summary = ""
    made = 0
    answer_template: str | None = None
    wants_file_back = False
    for step in steps:
        text = step.text
        call: _Call | None = None
        lowered = text.lower()
        if step.code is not None:
            call = _parse_call(step.code, summary) or _Call("exec", {"command": step.code})
        else:
            inline = _INLINE_RE.findall(text)
            parsed = next((c for c in (_parse_call(i, summary) for i in inline) if c), None)
            target = _summary_file(text)
            if parsed is not None:
                call = parsed
            elif target is not None:
                summary = _machine_summary(facts)
                call = _Call("exec", {"command": _write_file_command(target, summary)})
                wants_file_back = True
            elif re.match(r"(run|execute)\b", lowered) and inline:
                call = _Call("exec", {"command": inline[0]})
            elif re.search(r"\b(summari[sz]e|draft)\b", lowered) and "excerpt" in lowered:
                summary = _excerpt_summary(facts)
            elif re.search(r"\bappend\b", lowered) and facts.answer:
                summary = f"{summary} {_sentence(facts.answer)}".strip()
            elif re.search(r"\b(answer|respond|reply)\b", lowered) and inline:
                answer_template = inline[-1]
            elif re.search(r"\breturn\b.*\bcontent\b", lowered):
                wants_file_back = True
        if call is None:
            continue
        if made < len(done_after_read):
            ex = done_after_read[made]
            made += 1
            if ex.error is not None or _is_failure(ex):
                return _SkillRun(None, _stopped(step, ex), summary)
            continue
        return _SkillRun(call, None, summary)
    return _SkillRun(None, _skill_answer(facts, summary, answer_template, wants_file_back), summary)


def _is_failure(ex: _Exchange) -> bool:
    result = ex.result
    if isinstance(result, dict):
        if result.get("ok") is False or result.get("approved") is False:
            return True
        stdout = str(result.get("stdout", ""))
        if ex.call.tool_name == "exec" and re.search(r'"detail"\s*:|\b401\b|Unauthorized', stdout):
            return True
    return False


def _stopped(step: _Step, ex: _Exchange) -> str:
    reason = ex.error
    if reason is None and isinstance(ex.result, dict):
        detail = ex.result.get("error") or ex.result.get("reason") or ex.result.get("stdout")
        reason = json.dumps(detail, default=str) if not isinstance(detail, str) else detail
    return (
        f"I stopped at the step '{step.text or ex.call.tool_name}' because it did not succeed: "
        f"{(reason or 'no detail').strip()[:500]}. Nothing after that step was done."
    )


def _skill_answer(facts: _Facts, summary: str, template: str | None, file_back: bool) -> str:
    if template:
        values = {
            "message_id": facts.message_id or "(none)",
            "id": facts.message_id or "(none)",
            "posted_at": facts.posted_at or "(none)",
            "ts": facts.posted_at or "(none)",
        }

        def fill(match: re.Match[str]) -> str:
            key = match.group(1).strip().lower()
            if key.startswith("summary"):
                return summary
            return str(values.get(key, match.group(0)))

        return re.sub(r"<([^<>]+)>", fill, template)
    parts = []
    if file_back and facts.last_stdout:
        parts.append(facts.last_stdout)
    elif summary:
        parts.append(summary)
    for command, output in facts.extra_outputs:
        parts.append(f"`{command}` printed: {output[:300]}")
    host = facts.hostname or "the sandbox"
    where = f" (user {facts.user}, cwd {facts.cwd})" if facts.user or facts.cwd else ""
    os_name, kernel = facts.os_name or "unknown OS", facts.kernel or "unknown"
    parts.append(f"Host investigated: {host}, {os_name}, kernel {kernel}{where}.")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------
# The model function


def _call_id(prompt: str, index: int) -> str:
    # Deterministic ids: a resumed or replayed run asks for the same call (and the same wait).
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"ahp_{digest}_{index}"


def _respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    tools = {tool.name for tool in info.function_tools}
    prompt, turn_start = _current_turn(messages)
    instructions = info.instructions or ""
    everything = _exchanges(messages)
    this_turn = _exchanges(messages[turn_start:])
    facts = _Facts()
    for ex in everything:
        _learn(facts, ex)

    def call(c: _Call) -> ModelResponse:
        if c.tool not in tools:
            return ModelResponse(
                parts=[TextPart(f"I cannot do this: the `{c.tool}` tool is not available to me.")]
            )
        return ModelResponse(
            parts=[ToolCallPart(c.tool, c.args, tool_call_id=_call_id(prompt, len(everything)))]
        )

    if len(this_turn) >= _MAX_STEPS:
        return ModelResponse(parts=[TextPart("I stopped after too many steps without finishing.")])

    follows_skill = "skill" in tools and re.search(
        r"\b(skills?|procedure)\b", f"{instructions}\n{prompt}", re.I
    )
    if follows_skill:
        listed = [
            ex
            for ex in this_turn
            if ex.call.tool_name == "skill" and _call_args(ex.call).get("action") == "list"
        ]
        reads = [
            ex
            for ex in this_turn
            if ex.call.tool_name == "skill" and _call_args(ex.call).get("action") == "read"
        ]
        if not listed:
            return call(_Call("skill", {"action": "list"}))
        if not reads:
            skills = (
                (listed[-1].result or {}).get("skills", [])
                if isinstance(listed[-1].result, dict)
                else []
            )
            if not skills:
                return ModelResponse(
                    parts=[TextPart("I have no skills to follow: the skill list is empty.")]
                )
            text = f"{instructions}\n{prompt}"
            chosen = next((s for s in skills if str(s.get("name")) in text), skills[0])
            return call(_Call("skill", {"action": "read", "path": chosen.get("path")}))
        read = reads[-1]
        content = read.result.get("content", "") if isinstance(read.result, dict) else ""
        after = this_turn[this_turn.index(read) + 1 :]
        run = _follow(_parse_steps(str(content)), after, facts)
        if run.next_call is not None:
            return call(run.next_call)
        return ModelResponse(parts=[TextPart(run.answer or "Done.")])

    plan = _prompt_plan(prompt, facts)
    if len(this_turn) < len(plan):
        step = plan[len(this_turn)]
        if step.tool == "exec" and "exec" not in tools:
            return ModelResponse(
                parts=[TextPart("I cannot run commands: the `exec` tool is not available to me.")]
            )
        return call(step)
    if _wants_no_commands(prompt) or (re.search(r"\bsummary\b", prompt, re.I) and not plan):
        return ModelResponse(parts=[TextPart(_paragraph(facts))])
    if plan and _summary_file(prompt) and facts.last_stdout:
        return ModelResponse(parts=[TextPart(facts.last_stdout)])
    return ModelResponse(parts=[TextPart(_investigation_report(facts, this_turn))])


def _paragraph(facts: _Facts) -> str:
    if not (facts.os_name or facts.kernel):
        return "There is nothing to summarise yet: no earlier findings are in this conversation."
    os_name, kernel = facts.os_name or "Linux", facts.kernel or "of unknown version"
    parts = [f"This is a {os_name} machine running Linux kernel {kernel}."]
    if facts.user:
        parts.append(f"Anything you run here runs as the user '{facts.user}'.")
    if facts.processes:
        parts.append(f"When it was inspected, {facts.processes} processes were running.")
    parts.append(
        "These facts come from the commands of the investigation; no new commands were run."
    )
    return " ".join(parts)


def behaviour_version() -> str:
    """A hash of this module's source: the offline model's "weights".

    It joins the turn cache key, so a changed offline model never serves turns it would no
    longer produce (a real model's name plays that role).
    """
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


class OfflineModel(FunctionModel):
    """The deterministic offline stand-in. ``model_name`` is ``offline-scripted``."""

    def __init__(self) -> None:
        super().__init__(_respond, model_name=OFFLINE_MODEL_NAME)
        self.behaviour_version = behaviour_version()
