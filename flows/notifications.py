"""Tell a person when an unattended session needs one.

`ask_human` and `review_pending_tool` emit ``claude-sessions.human.requested`` and then wait,
often for hours, on a form in the dashboard; a session whose budget runs low or out emits
``claude-sessions.budget.warning`` / ``.budget.exceeded``; a failed turn emits
``claude-sessions.turn.failed``. Nobody watches a dashboard all day, so this module sets up one
Prefect automation per such event: each event, at once, sends a notification (through any
Prefect notification block: Slack, Microsoft Teams, e-mail, a custom webhook) saying what
happened, with a link to the flow run it happened in.

`claude-sessions notify` calls :func:`notify_on`; running it again updates the automations in
place instead of adding more, so it is safe in a deploy script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect_claude_sessions.tasks.events import event_name

# Jinja templates rendered by Prefect's server when the event arrives. ``flow_run`` is the run
# the event came from (Prefect attaches it as a related resource; absent for a service used
# outside a run), and ``ui_url`` links to its page.
_SESSION = (
    "Session {{ event.payload.session_id }}"
    "{% if event.payload.agent %} (agent {{ event.payload.agent }}){% endif %}"
)
_RUN_LINK = "{% if flow_run %}Flow run {{ flow_run.name }}: {{ flow_run | ui_url }}\n{% endif %}"


@dataclass(frozen=True)
class Notice:
    """What one event's notification says, and the names of its automation and webhook block."""

    action: str  # the event is claude-sessions.<action>
    title: str  # the automation's name after "claude-sessions: "
    subject: str
    body: str

    @property
    def event(self) -> str:
        return event_name(self.action)

    def automation_name(self, label: str | None = None) -> str:
        return f"claude-sessions: {self.title}" + (f" ({label})" if label else "")

    def block_name(self, label: str | None = None) -> str:
        return "claude-sessions-" + self.action.replace(".", "-") + (f"-{label}" if label else "")


NOTICES: dict[str, Notice] = {
    n.action: n
    for n in (
        Notice(
            "human.requested",
            "a person is asked",
            "A Claude session waits for a person: {{ event.payload.headline }}",
            "A Claude session waits for a person.\n\n"
            "{{ event.payload.question }}\n\n"
            + _SESSION
            + " waits{% if flow_run %} in flow run {{ flow_run.name }}{% endif %} for an answer"
            " on the form {{ event.payload.form }} ({{ event.payload.fields | join(', ') }}).\n"
            "{% if flow_run %}Answer it on the run's page: {{ flow_run | ui_url }}\n{% endif %}"
            "Unanswered after {{ event.payload.timeout_s }} s, the run fails.",
        ),
        Notice(
            "budget.warning",
            "a budget is running low",
            "A Claude session has spent {{ (event.payload.share * 100) | round | int }} % of "
            "its budget",
            _SESSION + " and its descendants have spent ${{ event.payload.spent_usd }} of the "
            "${{ event.payload.budget_usd }} budget set on it "
            "({{ (event.payload.share * 100) | round | int }} %).\n"
            + _RUN_LINK
            + "Once it is spent, their turns fail with BudgetExceeded; raise "
            "session_budget_usd on the agent's profile to let them go on.",
        ),
        Notice(
            "budget.exceeded",
            "a budget is spent",
            "A Claude session's budget is spent",
            _SESSION + " and its descendants have spent ${{ event.payload.spent_usd }} of the "
            "${{ event.payload.budget_usd }} budget set on it.\n"
            + _RUN_LINK
            + "Their turns now fail with BudgetExceeded before anything is sent to the model; "
            "raise session_budget_usd on the agent's profile to let them go on.",
        ),
        Notice(
            "turn.failed",
            "a turn failed",
            "A Claude session's turn failed: {{ event.payload.error_kind }}",
            "The {{ event.payload.operation }} turn {{ event.payload.turn_key }} of "
            + _SESSION[0].lower()
            + _SESSION[1:]
            + " failed: {{ event.payload.error_kind }}.\n"
            + _RUN_LINK
            + "{% if event.payload.retryable %}A transient error: Prefect retries the task."
            "{% else %}A permanent error: the task is not retried.{% endif %}",
        ),
    )
}
DEFAULT_EVENTS = ("human.requested",)
#: The automation and block names of the default notice (``claude-sessions notify``).
AUTOMATION_NAME = NOTICES["human.requested"].automation_name()
HUMAN_REQUESTED = NOTICES["human.requested"].event
_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class NotificationSetupError(ValueError):
    """The notification could not be set up; the message names the input at fault."""


@dataclass(frozen=True)
class NotificationAutomation:
    """What :func:`notify_on` left on the server for one event."""

    automation_id: str
    name: str
    event: str
    block: str  # the notification block's slug, ``type/name``
    created: bool  # False: an automation of that name existed and was updated


def notice_automation(notice: Notice, block_document_id: str, name: str) -> AutomationCore:
    """The automation: each ``notice.event`` of a session, at once, sends one notification
    through the block ``block_document_id``."""
    return AutomationCore(
        name=name,
        description=f"Notify on {notice.event} ({notice.title}).",
        enabled=True,
        trigger=EventTrigger(
            expect={notice.event},
            match={"prefect.resource.id": "claude-sessions.session.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id, subject=notice.subject, body=notice.body
            )
        ],
    )


def check_webhook_url(url: str) -> str:
    """An ``http(s)://host/...`` URL, or :class:`NotificationSetupError` saying what is wrong
    (without echoing the URL: a webhook URL is a credential)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotificationSetupError(
            "--webhook-url must be an http:// or https:// URL with a host "
            f"(got a value with scheme {parts.scheme or 'none'!r})"
        )
    return url.strip()


async def save_webhook_block(url: str, block_name: str, *, allow_private_url: bool = False) -> str:
    """Save (or overwrite) a custom-webhook notification block that POSTs ``{"text": body}``
    (what Slack's and Teams' incoming webhooks read; the body holds all the subject says) to
    ``url``; returns its slug. The URL is kept as a secret field of the block."""
    block = CustomWebhookNotificationBlock(
        name="claude-sessions",
        url=check_webhook_url(url),
        json_data={"text": "{{body}}"},
        allow_private_urls=allow_private_url,
    )
    await block.asave(block_name, overwrite=True)
    return f"{block.get_block_type_slug()}/{block_name}"


async def load_notification_block(slug: str) -> str:
    """The document id of the saved notification block ``slug`` (``type/name``, as in
    ``prefect block ls``), or :class:`NotificationSetupError` naming what is missing."""
    if slug.count("/") != 1 or not all(slug.split("/")):
        raise NotificationSetupError(
            f"--block must be a block slug TYPE/NAME such as slack-webhook/oncall (got {slug!r})"
        )
    try:
        block: Block = await Block.aload(slug)
    except ValueError as exc:
        raise NotificationSetupError(f"--block {slug!r}: no such block on the server") from exc
    if not isinstance(block, NotificationBlock):
        raise NotificationSetupError(
            f"--block {slug!r} is a {type(block).__name__}, not a notification block"
        )
    assert block._block_document_id is not None  # a loaded block has its document id
    return str(block._block_document_id)


def check_events(events: list[str] | tuple[str, ...]) -> list[Notice]:
    """The notices of ``events`` (actions such as ``budget.exceeded``; the ``claude-sessions.``
    prefix may be given), each once, or :class:`NotificationSetupError` listing the known."""
    notices: list[Notice] = []
    for given in events:
        action = given.removeprefix("claude-sessions.")
        if action not in NOTICES:
            raise NotificationSetupError(f"--event {given!r} is not one of {', '.join(NOTICES)}")
        if NOTICES[action] not in notices:
            notices.append(NOTICES[action])
    if not notices:
        raise NotificationSetupError(f"give at least one --event ({', '.join(NOTICES)})")
    return notices


async def notify_on(
    events: list[str] | tuple[str, ...] = DEFAULT_EVENTS,
    *,
    block: str | None = None,
    webhook_url: str | None = None,
    allow_private_url: bool = False,
    label: str | None = None,
) -> list[NotificationAutomation]:
    """For each of ``events``, create or update in place the automation that notifies through
    the notification block ``block`` (a slug), or through a webhook block saved for
    ``webhook_url`` (one block per event, so events can go to different channels). ``label``
    (lower-case letters, digits, dashes) keeps a second set apart, e.g. one per team."""
    if (block is None) == (webhook_url is None):
        raise NotificationSetupError("give either --block TYPE/NAME or --webhook-url URL")
    if label is not None and not _LABEL.fullmatch(label):
        raise NotificationSetupError(
            f"--label must be 1-40 lower-case letters, digits and dashes (got {label!r})"
        )
    notices = check_events(events)
    if webhook_url is not None:
        check_webhook_url(webhook_url)
    else:
        assert block is not None
        block_document_id = await load_notification_block(block)
    made: list[NotificationAutomation] = []
    async with get_client() as client:
        for notice in notices:
            slug = block
            if webhook_url is not None:
                slug = await save_webhook_block(
                    webhook_url, notice.block_name(label), allow_private_url=allow_private_url
                )
                block_document_id = await load_notification_block(slug)
            assert slug is not None
            name = notice.automation_name(label)
            automation = notice_automation(notice, block_document_id, name)
            existing = await client.read_automations_by_name(name)
            if existing:
                first, *extra = existing
                await client.update_automation(first.id, automation)
                for duplicate in extra:  # left by hand or by an older version: keep one
                    await client.delete_automation(duplicate.id)
                made.append(NotificationAutomation(str(first.id), name, notice.event, slug, False))
            else:
                created = await client.create_automation(automation)
                made.append(NotificationAutomation(str(created), name, notice.event, slug, True))
    return made
