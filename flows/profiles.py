"""The agent profiles the bundled flows use, by name.

Dashboard forms pass profile names (plain strings), so flows look them up here and an unknown
name fails with the list of known ones.
"""

from __future__ import annotations

from prefect_claude_sessions.tasks.profile import AgentProfile

TRIAGE_PROMPT = """You are the triage agent of a customer support team.
For every e-mail: decide its category (technical, billing, account, sales or general) and its
priority (P1 = outage, P4 = no hurry), summarise it in one sentence and draft a short reply.
Answer with one JSON object: {"category", "priority", "summary", "reply"}.
Remember earlier e-mails of this inbox: repeated reports raise the priority."""

SPECIALIST_PROMPTS = {
    "technical": """You are the technical support specialist.
You take over cases the first-line agent hands you, diagnose the fault from the conversation so far
and answer the customer with concrete next steps.""",
    "billing": """You are the billing specialist.
You take over invoice, charge and refund cases from the first-line agent, check what the customer
was charged and settle the case with a clear answer.""",
}

EXPLORER_PROMPT = """You are an engineering assistant who explores alternative approaches.
For each approach you are given, describe how to carry it out and what it costs."""

PROFILES: dict[str, AgentProfile] = {
    "triage": AgentProfile(name="triage", system_prompt=TRIAGE_PROMPT),
    "technical-specialist": AgentProfile(
        name="technical-specialist", system_prompt=SPECIALIST_PROMPTS["technical"]
    ),
    "billing-specialist": AgentProfile(
        name="billing-specialist", system_prompt=SPECIALIST_PROMPTS["billing"]
    ),
    "explorer": AgentProfile(name="explorer", system_prompt=EXPLORER_PROMPT),
}

SPECIALIST_FOR_CATEGORY = {"technical": "technical-specialist", "billing": "billing-specialist"}


class UnknownProfile(ValueError):
    """A flow was given an agent profile name that is not defined."""


def get_profile(name: str) -> AgentProfile:
    """The profile called ``name``; an unknown name lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(
            f"unknown agent profile {name!r}; known profiles: {', '.join(sorted(PROFILES))}"
        ) from None


def team_profile(team: str) -> AgentProfile:
    """The triage profile of one team: its own name, so each team has its own long-lived session."""
    return PROFILES["triage"].model_copy(update={"name": f"triage-{team}"})
