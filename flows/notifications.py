"""Tell a person when a session waits for them.

`ask_human` and `review_pending_tool` emit ``claude-sessions.human.requested`` and then wait,
often for hours, on a form in the dashboard. Nobody watches a dashboard all day, so this module
sets up the one Prefect automation a team needs: on every such event, send a notification
(through any Prefect notification block: Slack, Microsoft Teams, e-mail, a custom webhook) with
the question and a link to the waiting run, where the form is.

`claude-sessions notify` calls :func:`notify_on_human_requests`; running it again updates the
automation in place instead of adding a second one, so it is safe in a deploy script.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect_claude_sessions.tasks.events import event_name

HUMAN_REQUESTED = event_name("human.requested")
#: The automation's name; one per Prefect server (or workspace) unless ``name=`` says otherwise.
AUTOMATION_NAME = "claude-sessions: a person is asked"
#: The name of the webhook block ``notify --webhook-url`` saves (the URL is stored as a secret).
WEBHOOK_BLOCK_NAME = "claude-sessions-human-requested"

# Jinja templates rendered by Prefect's server when the event arrives. ``flow_run`` is the run
# the event came from (Prefect attaches it as a related resource); ``ui_url`` links to its page,
# which shows the form.
SUBJECT = "A Claude session waits for a person: {{ event.payload.headline }}"
BODY = (
    "A Claude session waits for a person.\n\n"
    "{{ event.payload.question }}\n\n"
    "Session {{ event.payload.session_id }}"
    "{% if event.payload.agent %} (agent {{ event.payload.agent }}){% endif %}"
    " waits in flow run {{ flow_run.name }} for an answer on the form"
    " {{ event.payload.form }} ({{ event.payload.fields | join(', ') }}).\n"
    "Answer it on the run's page: {{ flow_run | ui_url }}\n"
    "Unanswered after {{ event.payload.timeout_s }} s, the run fails."
)


class NotificationSetupError(ValueError):
    """The notification could not be set up; the message names the input at fault."""


@dataclass(frozen=True)
class NotificationAutomation:
    """What :func:`notify_on_human_requests` left on the server."""

    automation_id: str
    name: str
    block: str  # the notification block's slug, ``type/name``
    created: bool  # False: an automation of that name existed and was updated


def human_request_automation(
    block_document_id: str, *, name: str = AUTOMATION_NAME
) -> AutomationCore:
    """The automation: each ``claude-sessions.human.requested`` event, at once, sends one
    notification through the block ``block_document_id``."""
    return AutomationCore(
        name=name,
        description=(
            "A Claude session asks a person (ask_human, review_pending_tool): notify with the "
            "question and a link to the waiting run's form."
        ),
        enabled=True,
        trigger=EventTrigger(
            expect={HUMAN_REQUESTED},
            match={"prefect.resource.id": "claude-sessions.session.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[SendNotification(block_document_id=block_document_id, subject=SUBJECT, body=BODY)],
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


async def save_webhook_block(
    url: str, *, block_name: str = WEBHOOK_BLOCK_NAME, allow_private_url: bool = False
) -> str:
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


async def notify_on_human_requests(
    *,
    block: str | None = None,
    webhook_url: str | None = None,
    allow_private_url: bool = False,
    name: str = AUTOMATION_NAME,
) -> NotificationAutomation:
    """Create, or update in place, the automation named ``name`` that notifies through the
    notification block ``block`` (a slug), or through a webhook block saved for
    ``webhook_url``, on every ``claude-sessions.human.requested`` event."""
    if (block is None) == (webhook_url is None):
        raise NotificationSetupError("give either --block TYPE/NAME or --webhook-url URL")
    if not name.strip():
        raise NotificationSetupError("--name must not be empty")
    if webhook_url is not None:
        block = await save_webhook_block(webhook_url, allow_private_url=allow_private_url)
    assert block is not None
    block_document_id = await load_notification_block(block)
    automation = human_request_automation(block_document_id, name=name)
    async with get_client() as client:
        existing = await client.read_automations_by_name(name)
        if existing:
            first, *extra = existing
            await client.update_automation(first.id, automation)
            for duplicate in extra:  # left by hand or by an older version: keep one
                await client.delete_automation(duplicate.id)
            return NotificationAutomation(str(first.id), name, block, created=False)
        created = await client.create_automation(automation)
    return NotificationAutomation(str(created), name, block, created=True)
