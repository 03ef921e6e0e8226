"""What every command shares: the console, the errors that set the exit code, argument types,
where Memory is and whose credentials to use, and the local stack's state file.

The command modules (main, dlq, deploy) import from here and never from each other, except main,
which assembles the parser from all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, TextIO

from memory_bridge.config import (
    DEFAULT_MEMORY_API_BASE_URL,
    STORE_ID_PATTERN,
    ConfigError,
    require_memory_api_url,
)
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
        text = read_own_file(path)
        if text is None:
            return None
        state: dict[str, Any] = json.loads(text)
    except NotOwnFile:  # another user could have planted it (at the README's /tmp path, say)
        _note_ignored(
            f"ignored {path}: not a regular file of yours that others may not write (the local stack "
            "writes its own, 0600); delete it, or restart `make run`"
        )
        return None
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    pid = state.get("pid")
    if isinstance(pid, int) and not process_alive(pid):
        _note_ignored(
            f"ignored {path}: the local stack that wrote it (pid {pid}) is not running; "
            "start it with `make run`, or delete the file"
        )
        return None
    return state


def _note_ignored(note: str) -> None:
    if note not in _stale_state:
        _stale_state.append(note)


class NotOwnFile(Exception):
    """A symlink, or not a regular file of this user's, or one anyone may write."""


def read_own_file(path: Path) -> str | None:
    """The text of a regular file this user owns and others may not write; None when there is none.
    NotOwnFile for any other (a symlink's target is not followed), OSError for the rest."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:  # a symlink
            raise NotOwnFile(str(path)) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o002:
            raise NotOwnFile(str(path))
        return handle.read().decode("utf-8", errors="replace")


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
    """A file the command will write at its end (with private_file), checked before it does any work.
    A symlink there is replaced, not followed, so only the folder must be writable."""
    path = Path(text)
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"{flag} {text}: is a directory; name a file in it")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {text}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"{flag} {text}: not writable")
    with contextlib.suppress(FileNotFoundError):
        if path.lstat().st_uid != os.getuid():  # never written into, nor replaced: someone else's
            raise UsageError(f"{flag} {text}: is another user's file; name a new one")
    return path


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[IO[str]]:
    """Write `path` as a new file only its owner can read (0600), whatever the umask.

    What it holds (customer messages, a replay's report, the local stack's dev credentials) must not
    be readable by others, nor land in a file someone else prepared: the text goes to a new file
    created beside `path` with O_EXCL|O_NOFOLLOW (tempfile.mkstemp), which then replaces `path` by a
    rename. A symlink at `path` is replaced itself and its target left untouched; an existing file
    (of any mode, or another user's, which the rename into a sticky folder such as /tmp refuses) is
    never opened. What was written before an error or Ctrl-C is kept, as a plain write would keep it.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            try:
                yield handle
            finally:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(temporary, path)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_private_file(path: Path, text: str) -> None:
    with private_file(path) as handle:
        handle.write(text)


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
        "--memory-api-url",
        help="base URL: https://, or http:// only to loopback (default: $MEMORY_API_BASE_URL, the local "
        "stack, or Twilio's)",
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


def memory_client(args: argparse.Namespace, *, local_stack: bool = True) -> Any:
    """A Memory client. `local_stack=False` when the command's other end is not the local stack's
    (dlq replay of a queue named by --queue-url, say): its Memory URL is then never used."""
    from memory_bridge.adapters.memory_api import MemoryApiClient
    from memory_bridge.ports import StaticCredentials

    base_url, credentials = memory_target(args, local_stack_state() if local_stack else None)
    return MemoryApiClient(
        base_url, StaticCredentials(credentials), connect_timeout=3.0, read_timeout=15.0, pool_size=4
    )


def memory_target(args: argparse.Namespace, state: dict[str, Any] | None) -> tuple[str, TwilioCredentials]:
    """Memory's base URL and the credentials to send there.

    A URL named by the operator (--memory-api-url, MEMORY_API_BASE_URL) or Twilio's gets the
    operator's credentials. The local stack's URL, read from a state file that anyone who can write
    its path could have planted, gets only that file's own dev credentials: never real ones.
    """
    explicit = memory_api_url(args)
    own = operator_credentials(args)
    if explicit is not None or not state:
        if own is None and not state:
            raise UsageError(
                "no Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
                "(or TWILIO_API_KEY and TWILIO_API_SECRET), pass --secret NAME, "
                "or start the local stack with `make run`"
            )
        return explicit or DEFAULT_MEMORY_API_BASE_URL, own or local_credentials(state or {})
    local = local_credentials(state)
    if own is not None and own.authorization_header != local.authorization_header:
        raise UsageError(
            f"the local stack's Memory URL (from {local_state_path()}) is used only with its own dev "
            "credentials, and --secret or the TWILIO_* variables hold others: for the local stack, unset "
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_API_KEY and TWILIO_API_SECRET (and leave out "
            "--secret); for Twilio's Memory, pass --memory-api-url https://memory.twilio.com"
        )
    return checked_memory_url(f"sandbox_url in {local_state_path()}", str(state.get("sandbox_url"))), local


def memory_api_url(args: argparse.Namespace) -> str | None:
    """--memory-api-url, else MEMORY_API_BASE_URL, checked against the rule; None when neither is set."""
    if args.memory_api_url:
        return checked_memory_url("--memory-api-url", args.memory_api_url)
    from_env = os.environ.get("MEMORY_API_BASE_URL", "").strip()
    return checked_memory_url("MEMORY_API_BASE_URL", from_env) if from_env else None


def checked_memory_url(source: str, url: str) -> str:
    try:
        require_memory_api_url(source, url.rstrip("/"))
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return url.rstrip("/")


def operator_credentials(args: argparse.Namespace) -> TwilioCredentials | None:
    """--secret, else the TWILIO_* variables; None when neither is given."""
    try:
        if args.secret:
            return parse_secret_string(read_secret(args))
        return credentials_from_env(os.environ)
    except CredentialsError as error:
        raise UsageError(str(error)) from None


def local_credentials(state: dict[str, Any]) -> TwilioCredentials:
    return TwilioCredentials(str(state.get("account_sid", "")), str(state.get("auth_token", "")))


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


def store_tools(
    args: argparse.Namespace, console: Console, *, local_stack: bool = True
) -> tuple[Any, Any, Any]:
    from memory_bridge_cli.stores import Backoff, OperationWatch

    client = memory_client(args, local_stack=local_stack)
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
