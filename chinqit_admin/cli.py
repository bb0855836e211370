"""Operator tool: provision AWS resources, manage API keys and devices.

    chinqit-admin --stage prod deploy [--alarm-email E] [--domain D --certificate-arn A]
    chinqit-admin --stage prod destroy [--data]
    chinqit-admin --stage prod template data|app
    chinqit-admin --stage prod package OUT               (the app stack as deployed: OUT/package)
    chinqit-admin [--stage dev|prod] provision
    chinqit-admin keys create --account ACME [--name "web shop"]
    chinqit-admin keys list [--account ACME]
    chinqit-admin keys revoke PREFIX
    chinqit-admin devices create --name phone-1 [--account ACME]
    chinqit-admin devices list
    chinqit-admin devices assign DEVICE --account ACME   (dedicate it to one account)
    chinqit-admin devices unassign DEVICE                (back to the shared pool)
    chinqit-admin accounts quota ACME [smsPerMinute=120 ...]
    chinqit-admin accounts fallback ACME on|off          (shared pool while its devices are off)
    chinqit-admin inbox [--limit 50]                     (received SMS no account claims)
    chinqit-admin pools                                  (queue depth, oldest message, devices)
    chinqit-admin oauth create --account ACME [--name "crm"]
    chinqit-admin oauth revoke CLIENT_ID

Talks to AWS_ENDPOINT_URL when set (the local stack), else to your AWS account.
``--stage`` takes table and queue names from .chalice/config.json, as the Lambdas do.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path

CONFIG_FILE = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"


def load_stage(stage: str) -> None:
    """Export the stage's environment variables, without overriding ones already set."""
    config = json.loads(CONFIG_FILE.read_text())
    variables = {
        **config.get("environment_variables", {}),
        **config["stages"][stage].get("environment_variables", {}),
    }
    for name, value in variables.items():
        os.environ.setdefault(name, value)


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def cmd_provision(args) -> str:
    from . import provision

    if os.environ.get("AWS_ENDPOINT_URL"):  # the embedded AWS of the local stack
        return json.dumps(provision.all_resources(), indent=2)
    return json.dumps(provision.data_and_devices(_stage(args)), indent=2)


def _stage(args) -> str:
    if not args.stage:
        raise ValueError("say which stage: chinqit-admin --stage prod ...")
    return args.stage


def cmd_deploy(args) -> str:
    from . import stacks

    parameters = {
        name: value
        for name, value in (
            ("AlarmEmail", args.alarm_email),
            ("DomainName", args.domain),
            ("CertificateArn", args.certificate_arn),
            ("ThrottleRate", args.throttle_rate),
            ("ThrottleBurst", args.throttle_burst),
        )
        if value is not None
    }
    if bool(parameters.get("DomainName")) != bool(parameters.get("CertificateArn")):
        raise ValueError("--domain and --certificate-arn go together")
    return json.dumps(stacks.deploy(_stage(args), parameters), indent=2)


def cmd_destroy(args) -> str:
    from . import stacks

    deleted = stacks.destroy(_stage(args), data=args.data)
    kept = "" if args.data else "; the data stack (tables, queues, secret) is kept"
    return f"deleted: {', '.join(deleted) or 'nothing (already gone)'}{kept}"


def cmd_package(args) -> str:
    from . import stacks

    return str(stacks.package(_stage(args), Path(args.out)))


def cmd_template(args) -> str:
    from . import template

    stage = _stage(args)
    build = template.data_template if args.which == "data" else template.app_overrides
    return json.dumps(build(stage), indent=1)


def _account(name: str) -> str:
    from chalicelib.accounts import RESERVED

    if name in RESERVED:
        raise argparse.ArgumentTypeError(
            f"{name!r} is reserved: received SMS no account claims are filed under it"
        )
    return name


def cmd_keys_create(args) -> str:
    from chalicelib import auth

    key, credential = auth.create_key("api", args.account, name=args.name)
    return (
        f"API key for account {args.account} (shown once, store it now):\n{key}\n"
        f"prefix: {credential.prefix}"
    )


def cmd_keys_list(args) -> str:
    from chalicelib.models import Credential

    rows = [
        {
            "prefix": c.prefix,
            "account": c.owner_id,
            "name": c.name,
            "created": c.created_at.isoformat(timespec="seconds"),
            "revoked": "yes" if c.revoked else "no",
        }
        for c in Credential.scan((Credential.kind == "api") & Credential.parent.does_not_exist())
        if not args.account or c.owner_id == args.account
    ]
    rows.sort(key=lambda r: r["created"])
    return _table(rows, ["prefix", "account", "name", "created", "revoked"])


def cmd_keys_revoke(args) -> str:
    from chalicelib import auth

    credential = auth.revoke_key(args.prefix)
    return f"revoked {credential.prefix} (account {credential.owner_id})"


def cmd_devices_create(args) -> str:
    from chalicelib import auth
    from chalicelib.models import Device

    device_id = args.id or f"dev-{uuid.uuid4().hex[:12]}"
    Device(device_id, name=args.name, account_id=args.account).save(
        Device.device_id.does_not_exist()
    )
    key, _ = auth.create_key("device", device_id, name=args.name)
    from . import provision

    provision.device_queues(device_id)
    return (
        f"device {device_id} registered; device key (shown once, put it in the bridge's "
        f"config):\n{key}"
    )


def _info(device, name: str):
    """One value a device's bridge last reported (signal, battery), or ""."""
    return (device.info or {}).get(name, "")


def cmd_devices_list(_args) -> str:
    from chalicelib.models import Device

    rows = [
        {
            "device": d.device_id,
            "name": d.name,
            "dedicated to": d.account_id or "(shared pool)",
            "driver": d.driver or "",
            "last seen": d.last_seen_at.isoformat(timespec="seconds")
            if d.last_seen_at
            else "never",
            "signal": _info(d, "signalPercent"),
            "battery": _info(d, "batteryPercent"),
            "lines": " ".join(
                f"{int(x.slot)}:{x.number}({x.operator or '?'}"
                + (f", {int(x.signal_percent)}%)" if x.signal_percent is not None else ")")
                for x in d.lines or []
            ),
        }
        for d in Device.scan()
    ]
    columns = [
        "device",
        "name",
        "dedicated to",
        "driver",
        "last seen",
        "signal",
        "battery",
        "lines",
    ]
    return _table(rows, columns)


def cmd_devices_assign(args) -> str:
    from pynamodb.exceptions import UpdateError

    from chalicelib.models import Device

    account = getattr(args, "account", None)
    action = Device.account_id.set(account) if account else Device.account_id.remove()
    try:
        Device(args.device).update(actions=[action], condition=Device.device_id.exists())
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise LookupError(f"no device {args.device}") from None
        raise
    if account:
        return f"device {args.device} is dedicated to account {account}"
    return f"device {args.device} is in the shared pool"


def cmd_accounts_quota(args) -> str:
    from chalicelib import quotas

    values = {}
    for pair in args.values:
        name, _, value = pair.partition("=")
        if not value:
            raise ValueError(f"{pair!r}: write NAME=VALUE, e.g. smsPerMinute=120")
        values[name] = value
    shown = quotas.set_quotas(args.account, values) if values else quotas.of(args.account)
    rows = [
        {"quota": name, "value": value, "default": quotas.DEFAULTS[name][1]}
        for name, value in shown.items()
    ]
    return f"account {args.account}\n" + _table(rows, ["quota", "value", "default"])


def cmd_accounts_fallback(args) -> str:
    """May the account's SMS leave from the shared pool while its own devices are offline?"""
    from chalicelib import clock
    from chalicelib.models import Account

    allowed = args.state == "on"
    Account(args.account).update(  # creates the item if needed, keeps the quotas
        actions=[Account.shared_fallback.set(allowed), Account.updated_at.set(clock.now())]
    )
    if allowed:
        return f"account {args.account}: the shared pool sends when its devices are offline"
    return f"account {args.account}: only its own devices send its SMS"


def _printable(text: str) -> str:
    """Untrusted text for a terminal: control characters (escape sequences) shown as \ufffd."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def cmd_inbox(args) -> str:
    from chalicelib.accounts import UNASSIGNED
    from chalicelib.models import Message

    rows = [
        {
            "received": m.created_at.isoformat(timespec="seconds"),
            "from": m.phone_number,
            "device": m.device_id or "",
            "message id": m.message_id,
            "text": _printable(m.text if len(m.text) <= 60 else m.text[:57] + "..."),
        }
        for m in Message.by_account.query(UNASSIGNED, scan_index_forward=False, limit=args.limit)
    ]
    return _table(rows, ["received", "from", "device", "message id", "text"])


def cmd_pools(_args) -> str:
    """Each pool (the shared one, then each account with dedicated devices): how many SMS
    wait on its queues and how old the oldest is, and how many of its devices are online."""
    from chalicelib import routing
    from chalicelib.config import settings
    from chalicelib.models import Device

    pools: dict[str, list] = {"shared": []}
    for device in Device.scan():
        pools.setdefault(device.account_id or "shared", []).append(device)
    config = settings()
    rows = []
    for pool, devices in sorted(pools.items(), key=lambda item: (item[0] != "shared", item[0])):
        online = sum(routing.is_online(d) for d in devices)
        for kind, shared_queue in (("otp", config.priority_queue), ("sms", config.outbound_queue)):
            names = [routing.device_queue(d.device_id, kind) for d in devices]
            rows.append(
                {
                    "pool": pool,
                    "queue": "otp" if kind == "otp" else "bulk",
                    **_depth([shared_queue, *names] if pool == "shared" else names),
                    "devices online": f"{online}/{len(devices)}",
                }
            )
    columns = ["pool", "queue", "waiting", "in flight", "oldest", "devices online"]
    return _table(rows, columns)


def _depth(queue_names: list[str]) -> dict:
    """Messages waiting and in flight on these queues together, and the oldest one's age;
    a queue that was never provisioned counts nothing."""
    from chalicelib import queue

    waiting = in_flight = 0
    ages = []
    for name in queue_names:
        try:
            attributes = queue.sqs().get_queue_attributes(
                QueueUrl=queue.queue_url(name),
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        except queue.sqs().exceptions.QueueDoesNotExist:
            continue
        waiting += int(attributes["ApproximateNumberOfMessages"])
        in_flight += int(attributes["ApproximateNumberOfMessagesNotVisible"])
        ages += [age] if (age := _oldest_message_age(name)) is not None else []
    oldest = f"{max(ages):.0f} s" if ages else "n/a"
    return {"waiting": waiting, "in flight": in_flight, "oldest": oldest}


def _oldest_message_age(queue_name: str) -> float | None:
    """SQS reports it only as a CloudWatch metric (ApproximateAgeOfOldestMessage)."""
    from datetime import UTC, datetime, timedelta

    from chalicelib import aws

    now = datetime.now(UTC)
    points = aws.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_name.rsplit("/", 1)[-1]}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    if not points:
        return None
    return max(points, key=lambda p: p["Timestamp"])["Maximum"]


def cmd_oauth_create(args) -> str:
    from chalicelib import oauth

    client_id, secret = oauth.create_client(args.account, name=args.name)
    return (
        f"OAuth2 client for account {args.account} (secret shown once, store it now):\n"
        f"client_id:     {client_id}\nclient_secret: {secret}"
    )


def cmd_oauth_revoke(args) -> str:
    from chalicelib import oauth

    tokens = oauth.revoke_client(args.client_id)
    return f"revoked {args.client_id} and {tokens} token(s) it was issued"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chinqit-admin", description=__doc__.split("\n")[0])
    root.add_argument("--stage", help="take resource names from this stage of .chalice/config.json")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "provision", help="create or update the data stack (tables, queues) and devices' queues"
    ).set_defaults(run=cmd_provision)
    deploy = commands.add_parser("deploy", help="deploy the stage's stacks (data, then app)")
    deploy.add_argument("--alarm-email", help="where alarms are mailed")
    deploy.add_argument("--domain", help="custom domain of the API, e.g. sms.example.com")
    deploy.add_argument("--certificate-arn", help="ACM certificate of --domain (same region)")
    deploy.add_argument("--throttle-rate", type=int, help="API requests per second")
    deploy.add_argument("--throttle-burst", type=int, help="API burst")
    deploy.set_defaults(run=cmd_deploy)
    destroy = commands.add_parser("destroy", help="delete the app stack (tables are kept)")
    destroy.add_argument(
        "--data", action="store_true", help="the data stack too (tables and secret retained)"
    )
    destroy.set_defaults(run=cmd_destroy)
    shown = commands.add_parser("template", help="print a stack's declaration")
    shown.add_argument("which", choices=["data", "app"], help="app: the chalice merge template")
    shown.set_defaults(run=cmd_template)
    packaged = commands.add_parser("package", help="the app stack and Lambda zip, not deployed")
    packaged.add_argument("out", help="directory: OUT/overrides.json, OUT/package/")
    packaged.set_defaults(run=cmd_package)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key (printed once)")
    create.add_argument("--account", required=True, type=_account, help="account the key acts for")
    create.add_argument("--name", default="", help="a label, e.g. the integration using it")
    create.set_defaults(run=cmd_keys_create)
    listing = keys.add_parser("list", help="list keys (prefixes only)")
    listing.add_argument("--account")
    listing.set_defaults(run=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke the key with this prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(run=cmd_keys_revoke)

    devices = commands.add_parser("devices", help="phones and modem hosts").add_subparsers(
        dest="action", required=True
    )
    register = devices.add_parser("create", help="register a device and print its key once")
    register.add_argument("--name", required=True)
    register.add_argument(
        "--account",
        type=_account,
        help="dedicate it to this account (its replies without a claim go there); "
        "default: the shared pool",
    )
    register.add_argument("--id", help="device id (default: generated)")
    register.set_defaults(run=cmd_devices_create)
    devices.add_parser("list", help="devices with their last-seen time").set_defaults(
        run=cmd_devices_list
    )
    assign = devices.add_parser("assign", help="dedicate a device to one account")
    assign.add_argument("device")
    assign.add_argument("--account", required=True, type=_account)
    assign.set_defaults(run=cmd_devices_assign)
    unassign = devices.add_parser("unassign", help="put a device back in the shared pool")
    unassign.add_argument("device")
    unassign.set_defaults(run=cmd_devices_assign)

    accounts = commands.add_parser("accounts", help="per-account settings").add_subparsers(
        dest="action", required=True
    )
    quota = accounts.add_parser("quota", help="show an account's quotas, or set some")
    quota.add_argument("account", type=_account)
    quota.add_argument("values", nargs="*", metavar="NAME=VALUE")
    quota.set_defaults(run=cmd_accounts_quota)
    fallback = accounts.add_parser(
        "fallback", help="on: the shared pool sends while the account's own devices are offline"
    )
    fallback.add_argument("account", type=_account)
    fallback.add_argument("state", choices=["on", "off"])
    fallback.set_defaults(run=cmd_accounts_fallback)

    commands.add_parser(
        "pools", help="queue depth, oldest message and devices online per pool"
    ).set_defaults(run=cmd_pools)

    inbox = commands.add_parser("inbox", help="received SMS that no account claims")
    inbox.add_argument("--limit", type=int, default=50)
    inbox.set_defaults(run=cmd_inbox)

    clients = commands.add_parser("oauth", help="OAuth2 clients").add_subparsers(
        dest="action", required=True
    )
    client = clients.add_parser("create", help="create a client (secret printed once)")
    client.add_argument("--account", required=True, type=_account)
    client.add_argument("--name", default="")
    client.set_defaults(run=cmd_oauth_create)
    revoke_client = clients.add_parser("revoke", help="revoke a client and its tokens")
    revoke_client.add_argument("client_id")
    revoke_client.set_defaults(run=cmd_oauth_revoke)
    return root


def main(argv=None) -> int:
    if importlib.util.find_spec("pynamodb") is None:
        print(
            "chinqit-admin needs the admin extra: pip install 'chinqit-gateway[admin]'",
            file=sys.stderr,
        )
        return 2
    args = parser().parse_args(argv)
    if args.stage:
        load_stage(args.stage)
    try:
        print(args.run(args))
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
