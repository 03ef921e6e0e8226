"""`memory-bridge send`: sign and POST an onMessageAdded webhook, exactly as Twilio would.

On the local stack (no --url) the message is real: a conversation is made in the stack's Conversations
sandbox through its REST API (a customer on --channel with the business number as proxy_address, and an
agent in chat with attributes {"role": "agent"}), the message is created by POST …/Messages as the
customer or the agent (--as), and the webhook carries that message's fields: MessageSid, ConversationSid,
ParticipantSid, Author, Index, DateCreated, Source (SDK for a chat author, with ClientIdentity; API
otherwise, as twilio-notes.md documents). The same --from continues its newest active conversation
(found with GET /v1/ParticipantConversations) unless --new-conversation.

With --url (a deployed stack) the fields are made up as before: a deployed bridge reads the real
conversation's participants from Twilio, so pass --conversation-sid of a conversation that exists there
(with --from and --agent as its participants) for it to find the speaker.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from memory_bridge.domain.signature import compute_signature
from memory_bridge_cli.common import (
    Console,
    UsageError,
    WorkFailed,
    e164_violation,
    local_credentials,
    local_stack_state,
)
from memory_bridge_cli.conversations import ConversationsClient, ConversationsFailure, answered

CHANNELS = ("sms", "whatsapp", "chat")
DEFAULT_AGENT = "agent@example.com"
DEFAULT_BUSINESS_NUMBER = "+15555550000"


@dataclass(frozen=True)
class Speaker:
    """Who writes: `author` as Twilio puts it in the webhook, and the webhook's `Source`."""

    role: str  # "customer" or "agent"
    channel: str  # the customer's channel
    author: str
    source: str  # "SDK" for a chat author (with ClientIdentity), else "API"


def channel_of(address: str) -> str:
    return "whatsapp" if address.startswith("whatsapp:") else "sms" if address.startswith("+") else "chat"


def speaker_for(args: argparse.Namespace) -> Speaker:
    """The speaker --from, --channel, --as and --agent describe; a usage error when they disagree."""
    looks_like = channel_of(args.from_)
    channel = args.channel or looks_like
    if channel != looks_like:
        wanted = {"sms": "+E.164 (+15555550100)", "whatsapp": "whatsapp:+E.164", "chat": "a chat identity"}
        raise UsageError(
            f"--channel {channel} needs --from {wanted[channel]}, and {args.from_!r} is a {looks_like} "
            "address: change one of them"
        )
    if not args.agent or channel_of(args.agent) != "chat":
        raise UsageError(f"--agent {args.agent!r}: the agent is a chat identity (e.g. {DEFAULT_AGENT})")
    if not args.business_number.startswith("+"):
        raise UsageError(f"--business-number {args.business_number!r}: the business's number, +E.164")
    if args.as_ == "agent":
        return Speaker("agent", channel, args.agent, "SDK")
    return Speaker("customer", channel, args.from_, "SDK" if channel == "chat" else "API")


def pages(client: ConversationsClient, path: str, key: str, what: str) -> list[dict[str, Any]]:
    """Every item of a Conversations list, following meta.next_page_url."""
    items: list[dict[str, Any]] = []
    while path:
        page = answered(client.request("GET", path), what)
        items += page.get(key) or []
        following = str((page.get("meta") or {}).get("next_page_url") or "")
        path = following[len(client.base_url) :] if following.startswith(client.base_url) else ""
    return items


def find_conversation(client: ConversationsClient, args: argparse.Namespace, channel: str) -> str | None:
    """--conversation-sid, else (unless --new-conversation) the customer's newest active conversation."""
    if args.conversation_sid:
        answered(
            client.request("GET", f"/v1/Conversations/{args.conversation_sid}"), "find --conversation-sid"
        )
        return str(args.conversation_sid)
    if args.new_conversation:
        return None
    who = ("Identity" if channel == "chat" else "Address", args.from_)
    path = "/v1/ParticipantConversations?" + urlencode([who, ("PageSize", "50")])
    found = pages(client, path, "conversations", "look up the customer's conversations")
    active = [c for c in found if c.get("conversation_state") == "active"]
    # Stable: of two made in the same second, the later one listed (made later) is the newest.
    active.sort(key=lambda c: str(c.get("conversation_date_created")))
    return str(active[-1]["conversation_sid"]) if active else None


def join(client: ConversationsClient, sid: str, args: argparse.Namespace, channel: str) -> None:
    """The customer (on `channel`, the business number as proxy_address) and the agent (chat, role
    agent) as participants of `sid`, each added when missing."""
    proxy = ("whatsapp:" if channel == "whatsapp" else "") + args.business_number
    customer = (
        [("Identity", args.from_)]
        if channel == "chat"
        else [("MessagingBinding.Address", args.from_), ("MessagingBinding.ProxyAddress", proxy)]
    )
    agent = [("Identity", args.agent), ("Attributes", json.dumps({"role": "agent"}))]
    path = f"/v1/Conversations/{sid}/Participants"
    present = pages(client, path + "?PageSize=100", "participants", "list the participants")
    known = {p.get("identity") for p in present} | {
        (p.get("messaging_binding") or {}).get("address") for p in present
    }
    for wanted, name in ((customer, args.from_), (agent, args.agent)):
        if name not in known:
            answered(client.request("POST", path, wanted), f"add {name} to {sid}")


def converse(
    args: argparse.Namespace, state: dict[str, Any], speaker: Speaker, console: Console
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Write the message in the local stack's Conversations sandbox; the webhook's fields for it."""
    client = ConversationsClient(str(state["conversations_url"]), local_credentials(state))
    sid = find_conversation(client, args, speaker.channel)
    if sid is None:
        friendly = [("FriendlyName", f"memory-bridge send: {args.from_}")]
        sid = str(
            answered(client.request("POST", "/v1/Conversations", friendly), "create a conversation")["sid"]
        )
        console.progress(
            f"• new conversation {sid}: {args.from_} ({speaker.channel}) and {args.agent} (agent)"
        )
    join(client, sid, args, speaker.channel)
    conversation = answered(client.request("GET", f"/v1/Conversations/{sid}"), "read the conversation")
    if args.message_sid:
        message = answered(
            client.request("GET", f"/v1/Conversations/{sid}/Messages/{args.message_sid}"),
            f"find --message-sid in {sid}",
        )
    else:
        form = [("Author", speaker.author), ("Body", args.body)]
        message = answered(
            client.request("POST", f"/v1/Conversations/{sid}/Messages", form), "create the message"
        )
    return webhook_fields(state, conversation, message, speaker), {
        "conversationSid": sid,
        "participantSid": message.get("participant_sid"),
        "as": speaker.role,
        "channel": speaker.channel,
    }


def webhook_fields(
    state: dict[str, Any], conversation: dict[str, Any], message: dict[str, Any], speaker: Speaker
) -> list[tuple[str, str]]:
    """onMessageAdded as Twilio sends it for `message` (twilio-notes.md)."""
    created = str(message.get("date_created") or "")
    if created.endswith("Z") and "." not in created:
        created = created[:-1] + ".000Z"  # Twilio's webhooks carry milliseconds
    author = str(message.get("author"))
    sdk = author == speaker.author and speaker.source == "SDK"
    optional = [
        ("MessagingServiceSid", conversation.get("messaging_service_sid")),
        ("ParticipantSid", message.get("participant_sid")),
        ("ClientIdentity", author if sdk else None),
    ]
    return [
        ("EventType", "onMessageAdded"),
        ("AccountSid", str(state.get("account_sid") or conversation.get("account_sid"))),
        ("ConversationSid", str(conversation["sid"])),
        ("MessageSid", str(message["sid"])),
        ("ChatServiceSid", str(conversation.get("chat_service_sid"))),
        ("Index", str(message.get("index", 0))),
        ("DateCreated", created),
        ("Body", str(message.get("body") or "")),
        ("Author", author),
        ("Attributes", str(message.get("attributes") or "{}")),
        ("Source", "SDK" if sdk else "API"),
        ("RetryCount", "0"),
        *((name, str(value)) for name, value in optional if value),
    ]


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def made_up_params(args: argparse.Namespace, account_sid: str, speaker: Speaker) -> list[tuple[str, str]]:
    """The fields for a stack whose Conversations we cannot write to (--url): sids made up unless given."""
    params = [
        ("EventType", "onMessageAdded"),
        ("AccountSid", account_sid),
        ("ConversationSid", args.conversation_sid or new_sid("CH")),
        ("MessageSid", args.message_sid or new_sid("IM")),
        ("ChatServiceSid", "IS" + "0" * 32),
        ("Index", "0"),
        ("DateCreated", datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")),
        ("Body", args.body),
        ("Author", speaker.author),
        ("ParticipantSid", new_sid("MB")),
        ("Attributes", "{}"),
        ("Source", speaker.source),
        *([("ClientIdentity", speaker.author)] if speaker.source == "SDK" else []),
        ("RetryCount", "0"),
    ]
    return params + media_params(args)


def media_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    media = [media_item(spec) for spec in args.media or []]
    return [("Media", json.dumps(media))] if media else []


def media_item(spec: str) -> dict[str, str]:
    content_type, _, filename = spec.partition(":")
    if "/" not in content_type:
        raise UsageError(f"--media must be CONTENT_TYPE[:FILENAME], e.g. image/jpeg:photo.jpg (got {spec!r})")
    item = {"sid": new_sid("ME"), "content_type": content_type}
    if filename:
        item["filename"] = filename
    return item


@dataclass(frozen=True)
class EventFile:
    """The form fields of an API Gateway event file, and the signature to send with them.

    A file whose own signature verifies (for the URL it was sent to, under the token we sign with)
    is a good webhook: it is re-signed for the target URL. A file whose signature does not verify
    is meant to be refused, so its signature is sent as it is and the bridge should answer 403.
    """

    params: list[tuple[str, str]]
    kept_signature: str | None


def read_event_file(path: Path, token: str) -> EventFile:
    from memory_bridge.domain.events import MalformedRequest, read_webhook_request
    from memory_bridge.domain.signature import is_valid_signature

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"--event-file {path}: not found (the samples are in events/)") from None
    except OSError as error:
        raise UsageError(f"--event-file {path}: cannot be read ({error.strerror})") from None
    try:
        event = json.loads(text)
        request = read_webhook_request(event, public_url=None)
    except (ValueError, MalformedRequest, AttributeError, TypeError):
        raise UsageError(f"--event-file {path} is not an API Gateway event with a form body") from None
    if not request.first("EventType"):
        raise UsageError(f"--event-file {path} is not a Conversations webhook (it has no EventType field)")
    signature = request.headers.get("x-twilio-signature")
    if signature and not is_valid_signature(
        urls=request.urls,
        params=request.params,
        raw_body=request.raw_body,
        signature=signature,
        auth_tokens=[token],
    ):
        return EventFile(list(request.params), kept_signature=signature)
    return EventFile(list(request.params), kept_signature=None)


def send_token(args: argparse.Namespace, url: str, state: dict[str, Any] | None, console: Console) -> str:
    """The auth token to sign with: --auth-token (with a warning), the local stack's dev token when it
    is the target, $TWILIO_AUTH_TOKEN, or a hidden prompt when stdin is a terminal. Never echoed."""
    if args.auth_token:
        console.progress(
            "memory-bridge: warning: --auth-token lands in your shell history (and the process list); "
            "prefer TWILIO_AUTH_TOKEN, or leave both out to be asked for it"
        )
        return str(args.auth_token)
    if state and state.get("auth_token") and url == state.get("webhook_url"):
        return str(state["auth_token"])  # the local stack checks signatures with its dev token
    token = os.environ.get("TWILIO_AUTH_TOKEN")
    if token:
        return token
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        token = getpass.getpass(f"Twilio auth token to sign for {url} (not shown): ")
        if token:
            return token
    raise UsageError(
        f"no auth token to sign for {url}: set TWILIO_AUTH_TOKEN (run in a terminal to be asked for it "
        "instead), or start the local stack with `make run` and leave out --url"
    )


def check_arguments(args: argparse.Namespace) -> Speaker | None:
    """Usage errors before anything is sent; the speaker (None with --event-file)."""
    if args.event_file:
        return None
    if args.from_ is None or args.body is None:
        raise UsageError("--from and --body are required (or pass --event-file events/…)")
    for name, value in (("--from", args.from_), ("--business-number", args.business_number)):
        violation = e164_violation(value)
        if violation:
            raise UsageError(f"{name} {value!r}: {violation}")
    if args.new_conversation and args.conversation_sid:
        raise UsageError("--new-conversation and --conversation-sid contradict each other: pass one")
    return speaker_for(args)


def signed_request(
    args: argparse.Namespace,
    url: str,
    state: dict[str, Any] | None,
    console: Console,
    speaker: Speaker | None,
) -> tuple[list[tuple[str, str]], str, dict[str, Any]]:
    """(the form fields, their signature, what to add to the result) for this send."""
    token = send_token(args, url, state, console)
    if speaker is None:
        event_file = read_event_file(Path(args.event_file), token)
        if event_file.kept_signature:
            console.progress(
                f"• {args.event_file}: its signature does not verify for its own URL, so it is sent as it "
                "is (expect 403)"
            )
            return event_file.params, event_file.kept_signature, {}
        console.progress(f"• {args.event_file}: fields sent as they are, re-signed for {url}")
        return event_file.params, compute_signature(url, event_file.params, token), {}
    local = state is not None and url == state.get("webhook_url")
    if local and state and state.get("conversations_url"):
        try:
            params, extra = converse(args, state, speaker, console)
        except ConversationsFailure as error:
            raise WorkFailed(f"{error} (is `make run` still running?)") from None
        params += media_params(args)
    else:
        # The local stack's URL gets its own dev account, never the real one of this shell.
        account_sid = (
            (state or {}).get("account_sid") if local else os.environ.get("TWILIO_ACCOUNT_SID")
        ) or "AC" + "0" * 32
        params, extra = made_up_params(args, account_sid, speaker), {}
    return params, compute_signature(url, params, token), extra


def command_send(args: argparse.Namespace, console: Console) -> int:
    import urllib3

    state = local_stack_state()
    url = args.url or (state or {}).get("webhook_url")
    if not url:
        raise UsageError(
            "no target: pass --url (with TWILIO_AUTH_TOKEN set) for a deployed stack, "
            "or start the local stack with `make run`"
        )
    speaker = check_arguments(args)
    params, signature, extra = signed_request(args, url, state, console, speaker)
    started = time.monotonic()
    try:
        response = urllib3.request(
            "POST",
            url,
            body=urlencode(params).encode(),
            timeout=urllib3.Timeout(connect=5, read=15),
            retries=False,
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "X-Twilio-Signature": signature,
                "User-Agent": "memory-bridge-cli",
            },
        )
    except urllib3.exceptions.HTTPError as error:
        raise WorkFailed(f"could not reach {url}: {type(error).__name__}; is the stack running?") from None
    elapsed_ms = (time.monotonic() - started) * 1000
    try:
        answer: Any = json.loads(response.data or b"null")
    except ValueError:
        answer = response.data.decode(errors="replace")[:200]
    fields = dict(params)
    message_sid = fields.get("MessageSid")
    document = {
        "status": response.status,
        "answer": answer,
        "messageSid": message_sid,
        "ms": round(elapsed_ms),
    }
    document |= {"conversationSid": fields.get("ConversationSid"), "author": fields.get("Author"), **extra}
    console.result(
        document,
        f"HTTP {response.status} in {elapsed_ms:.0f} ms  {json.dumps(answer)}  (MessageSid {message_sid})",
    )
    return 0 if 200 <= response.status < 300 else 1


def register(commands: Any) -> None:
    send = commands.add_parser(
        "send",
        help="sign and POST an onMessageAdded webhook, exactly as Twilio would",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("--url", help="webhook URL (a deployed stack's WebhookUrl output)")
    send.add_argument(
        "--auth-token",
        help="avoid: it lands in shell history; set TWILIO_AUTH_TOKEN instead (or answer the prompt)",
    )
    send.add_argument(
        "--from",
        dest="from_",
        metavar="ADDRESS",
        help="the customer: +1555… (sms), whatsapp:+1… (whatsapp), or a chat identity (chat)",
    )
    send.add_argument("--body", help="message text")
    send.add_argument(
        "--channel",
        choices=CHANNELS,
        help="the customer's channel (default: what --from looks like, sms for a +1555… number); it "
        "must agree with --from",
    )
    send.add_argument(
        "--as",
        dest="as_",
        choices=("customer", "agent"),
        default="customer",
        help="who writes the message: the customer (--from) or the agent (--agent) (default customer)",
    )
    send.add_argument(
        "--agent", default=DEFAULT_AGENT, help=f"the agent's chat identity (default {DEFAULT_AGENT})"
    )
    send.add_argument(
        "--business-number",
        default=DEFAULT_BUSINESS_NUMBER,
        help=f"the business's number, the customer's proxy_address (default {DEFAULT_BUSINESS_NUMBER})",
    )
    send.add_argument(
        "--new-conversation",
        action="store_true",
        help="start a new conversation instead of continuing --from's newest active one (local stack)",
    )
    send.add_argument(
        "--conversation-sid",
        help="CH…: on the local stack, an existing sandbox conversation to write in; with --url, the "
        "ConversationSid sent (default: a new one)",
    )
    send.add_argument(
        "--message-sid",
        help="IM…: send the webhook of this message again (on the local stack, a message of the "
        "conversation) to see duplicate handling; default: a new message",
    )
    send.add_argument(
        "--media",
        action="append",
        metavar="TYPE[:FILENAME]",
        help="an attachment, e.g. image/jpeg:photo.jpg (repeatable)",
    )
    send.add_argument(
        "--event-file",
        help="send the form fields of an API Gateway event file from events/: re-signed for --url when "
        "its own signature verifies, sent with its own (bad) signature when it does not",
    )
    send.add_argument("--json", action="store_true", help="print the result as JSON")
    send.set_defaults(handler=command_send)
