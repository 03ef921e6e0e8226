"""What every command shares: the console, the errors that set the exit code, argument types,
where Memory is and whose credentials to use, and the local stack's state file.

The command modules (main, dlq, deploy) import from here and never from each other, except main,
which assembles the parser from all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from memory_bridge.config import DEFAULT_MEMORY_API_BASE_URL, STORE_ID_PATTERN
from memory_bridge.domain.credentials import (
    CredentialsError,
    TwilioCredentials,
    credentials_from_env,
    parse_secret_string,
)
from memory_bridge.domain.outcomes import Accepted

LOCAL_STATE_ENV = "MEMORY_BRIDGE_LOCAL_STATE"


class UsageError(Exception):
    """Bad arguments or configuration: exit 2 with this message."""


class WorkFailed(Exception):
    """The command ran but its work did not succeed: exit 1 with this message."""


def local_state_path() -> Path:
    override = os.environ.get(LOCAL_STATE_ENV)
    if override:
        return Path(override)
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "memory-bridge" / "local-stack.json"
    )


_stale_state: list[str] = []  # what local_stack_state ignored in this command, for its error line


def local_stack_state() -> dict[str, Any] | None:
    """What `make run` wrote about the running local stack, if it is running.

    A file left by a stack that is gone (killed, or the machine restarted) is ignored: otherwise every
    command would aim at ports where nothing answers. `stale_state_note` says so when a command fails.
    """
    path = local_state_path()
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if isinstance(pid, int) and not process_alive(pid):
        note = (
            f"ignored {path}: the local stack that wrote it (pid {pid}) is not running; "
            "start it with `make run`, or delete the file"
        )
        if note not in _stale_state:
            _stale_state.append(note)
        return None
    return state


def stale_state_note() -> str | None:
    return _stale_state[-1] if _stale_state else None


def forget_stale_state() -> None:
    _stale_state.clear()


def process_alive(pid: int) -> bool:
    """True while a process with this pid runs (someone else's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def aws_client_config() -> Any:
    """Every AWS call the CLI makes gives up within about half a minute (a stopped local stack, say,
    accepts connections and never answers), instead of botocore's 60 s reads retried four times."""
    from botocore.config import Config

    return Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 2})


def writable_path(flag: str, text: str) -> Path:
    """A file the command will write at its end, checked before it does any work."""
    path = Path(text)
    if path.is_dir():
        raise UsageError(f"{flag} {text}: is a directory; name a file in it")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {text}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {text}: not writable")
    return path


NO_REGION = "no AWS region: pass --region (e.g. us-east-1) or set AWS_REGION"


def explain(error: BaseException) -> tuple[int, str] | None:
    """(exit code, a line naming the cause and the fix) for the failures people hit, or None for the
    unexpected. Missing configuration exits 2, like a bad argument; an unreachable peer exits 1."""
    import botocore.exceptions as aws
    import urllib3.exceptions as http

    if isinstance(error, aws.NoCredentialsError):
        return (
            2,
            "no AWS credentials: run `aws configure` (or `aws sso login`), set AWS_PROFILE or pass "
            "--profile NAME (the local stack, `make run`, needs none)",
        )
    if isinstance(error, aws.NoRegionError):
        return 2, NO_REGION
    if isinstance(error, aws.ProfileNotFound):
        return 2, f"{error}: check --profile / AWS_PROFILE against `aws configure list-profiles`"
    if isinstance(error, aws.ConnectTimeoutError | aws.ReadTimeoutError):
        return (
            1,
            f"the AWS endpoint {error.kwargs.get('endpoint_url')} did not answer in time: check --region "
            "and --endpoint-url (for the local stack: is `make run` suspended, with Ctrl-Z, or stopped?)",
        )
    if isinstance(error, aws.EndpointConnectionError):
        return (
            1,
            f"could not reach the AWS endpoint {error.kwargs.get('endpoint_url')}: check --region, "
            "--endpoint-url and AWS_ENDPOINT_URL (for the local stack, is `make run` still running?)",
        )
    if isinstance(error, aws.ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
            return 2, "the AWS credentials have expired: renew them (`aws sso login`)"
        if code in {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException"}:
            operation = getattr(error, "operation_name", "the call")
            return 2, f"AWS refused {operation} ({code}): check --profile and that role's permissions"
    if isinstance(error, http.HTTPError):
        return (
            1,
            f"could not reach Memory ({type(error).__name__}): check --memory-api-url / "
            "MEMORY_API_BASE_URL (for the local stack, is `make run` still running?)",
        )
    return None


@dataclass
class Console:
    out: TextIO
    err: TextIO
    json_output: bool = False

    def progress(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    def result(self, document: Any, text: str) -> None:
        print(json.dumps(document, indent=2, default=str) if self.json_output else text, file=self.out)


# ---- shared options -------------------------------------------------------------------------


def add_memory_options(parser: argparse.ArgumentParser) -> None:
    """Where Memory is and how to authenticate. On every command `--profile` is the AWS profile and
    `--profile-id` a Memory profile."""
    group = parser.add_argument_group("Memory API")
    group.add_argument(
        "--memory-api-url", help="base URL (default: $MEMORY_API_BASE_URL, the local stack, or Twilio's)"
    )
    group.add_argument(
        "--secret",
        help="Secrets Manager secret with the Twilio credentials (default: the TWILIO_* variables)",
    )
    group.add_argument("--region", help="AWS region for --secret")
    group.add_argument(
        "--profile", dest="aws_profile", type=aws_profile_name, help="AWS profile for --secret"
    )
    group.add_argument("--endpoint-url", help="AWS endpoint (e.g. moto's server) for --secret")
    parser.add_argument("--json", action="store_true", help="print the result as JSON for scripts")


E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
NANP = re.compile(r"^\+1[0-9]{10}$")


def e164_violation(address: str | None) -> str | None:
    """Why a phone address is not E.164, or None. Addresses that start with `+` or `whatsapp:` are
    phone numbers; a typo there would silently create a new Memory profile, so it is refused."""
    if address is None:
        return None
    whatsapp = address[:9].lower() == "whatsapp:"
    number = address[9:] if whatsapp else address
    if not (address.startswith("+") or whatsapp):
        return None  # an email or a chat identity
    if whatsapp and not address.startswith("whatsapp:"):
        return "the prefix is lowercase: whatsapp:+15555550100"
    if not E164.fullmatch(number):
        return (
            "a phone address must be E.164: '+', the country code, then digits only, no spaces or letters "
            "(e.g. +15555550100 or whatsapp:+15555550100)"
        )
    if number.startswith("+1") and not NANP.fullmatch(number):
        return "a +1 (North American) number has 10 digits after +1 (e.g. +15555550100)"
    return None


def aws_profile_name(text: str) -> str:
    """An argparse type for --profile: the AWS profile. A Memory profile id goes to --profile-id."""
    if text.startswith("mem_profile_"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a Memory profile: --profile is the AWS profile; pass the Memory one as --profile-id"
        )
    return text


def memory_client(args: argparse.Namespace) -> Any:
    from memory_bridge.adapters.memory_api import MemoryApiClient
    from memory_bridge.ports import StaticCredentials

    state = local_stack_state()
    base_url = args.memory_api_url or os.environ.get("MEMORY_API_BASE_URL")
    if not base_url:
        base_url = state["sandbox_url"] if state else DEFAULT_MEMORY_API_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise UsageError(f"the Memory API URL must start with https:// (http:// locally), got {base_url!r}")
    credentials = cli_credentials(args, state)
    return MemoryApiClient(
        base_url, StaticCredentials(credentials), connect_timeout=3.0, read_timeout=15.0, pool_size=4
    )


def cli_credentials(args: argparse.Namespace, state: dict[str, Any] | None) -> TwilioCredentials:
    try:
        if args.secret:
            return parse_secret_string(read_secret(args))
        from_env = credentials_from_env(os.environ)
        if from_env is not None:
            return from_env
    except CredentialsError as error:
        raise UsageError(str(error)) from None
    if state:
        return TwilioCredentials(state["account_sid"], state["auth_token"])
    raise UsageError(
        "no Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
        "(or TWILIO_API_KEY and TWILIO_API_SECRET), pass --secret NAME, "
        "or start the local stack with `make run`"
    )


def read_secret(args: argparse.Namespace) -> str:
    import boto3

    session = boto3.session.Session(profile_name=args.aws_profile, region_name=args.region)
    client = session.client("secretsmanager", endpoint_url=args.endpoint_url, config=aws_client_config())
    try:
        value: str = client.get_secret_value(SecretId=args.secret)["SecretString"]
    except Exception as error:  # noqa: BLE001 - any AWS failure gets the same advice
        raise UsageError(
            f"could not read secret {args.secret!r}: {type(error).__name__}; check --region/--profile"
        ) from None
    return value


def store_id_for(args: argparse.Namespace) -> str:
    state = local_stack_state()
    store_id = args.store or os.environ.get("MEMORY_STORE_ID") or (state or {}).get("store_id")
    if not store_id:
        raise UsageError("no store: pass --store mem_store_… or set MEMORY_STORE_ID")
    if not STORE_ID_PATTERN.match(store_id):
        raise UsageError(f"--store must match {STORE_ID_PATTERN.pattern}, got {store_id!r}")
    return str(store_id)


def failure_hint(status: int | None) -> str:
    """What to check when Memory did not accept a call."""
    if status is None:
        return "; is Memory reachable? check --memory-api-url / MEMORY_API_BASE_URL (local stack: `make run`)"
    if status in (401, 403):
        return " (check the Twilio credentials: TWILIO_* variables or --secret)"
    return ""


def fail_on(outcome: Any, what: str) -> Accepted:
    if isinstance(outcome, Accepted):
        return outcome
    status = getattr(outcome, "status", None)
    code = getattr(outcome, "code", None)
    message = getattr(outcome, "message", "")
    hint = failure_hint(status)
    raise WorkFailed(
        f"{what}: HTTP {status or 'no answer'}"
        + (f", Twilio code {code}" if code else "")
        + (f": {message}" if message else "")
        + hint
    )


def store_tools(args: argparse.Namespace, console: Console) -> tuple[Any, Any, Any]:
    from memory_bridge_cli.stores import Backoff, OperationWatch

    client = memory_client(args)
    backoff = Backoff(on_retry=console.progress)

    def progress(status: str, elapsed: float) -> None:
        console.progress(f"  … {status} after {elapsed:.0f}s")

    return client, backoff, OperationWatch(client, backoff, on_progress=progress)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive(kind: Callable[[str], Any], meaning: str) -> Callable[[str], Any]:
    """An argparse type: a number greater than 0, whose error says what was expected."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {meaning}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    return parse


positive_float = positive(float, "a number of seconds")
positive_int = positive(int, "a whole number")
