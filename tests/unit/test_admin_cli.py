"""The operator tool's commands for devices, quotas and the unassigned inbox."""

import pytest

from chalicelib import auth, quotas
from chalicelib.models import Device
from chinqit_admin import cli


def admin(capsys, *argv) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_assign_and_unassign_a_device(aws, capsys):
    Device("phone-7", name="boutique").save()
    assert admin(capsys, "devices", "assign", "phone-7", "--account", "acme")[0] == 0
    assert Device.get("phone-7").account_id == "acme"
    code, out = admin(capsys, "devices", "list")
    assert code == 0 and "acme" in out
    assert admin(capsys, "devices", "unassign", "phone-7")[0] == 0
    assert Device.get("phone-7").account_id is None
    assert "(shared pool)" in admin(capsys, "devices", "list")[1]


def test_assigning_an_unknown_device_is_an_error(aws, capsys):
    code, out = admin(capsys, "devices", "assign", "ghost", "--account", "acme")
    assert code == 1 and "no device ghost" in out
    assert list(Device.scan()) == []


def test_the_unassigned_account_cannot_be_given_a_device(aws, capsys):
    Device("phone-7").save()
    with pytest.raises(SystemExit):
        cli.main(["devices", "assign", "phone-7", "--account", "unassigned"])
    assert Device.get("phone-7").account_id is None


def test_quotas_are_shown_and_set(aws, capsys):
    code, out = admin(capsys, "accounts", "quota", "acme", "smsPerMinute=120", "otpPerDay=50")
    assert code == 0 and "smsPerMinute" in out and "120" in out
    assert quotas.of("acme")["smsPerMinute"] == 120 and quotas.of("acme")["otpPerDay"] == 50


@pytest.mark.parametrize("pair", ["smsPerMinute", "smsPerMinute=-3", "nope=3"])
def test_bad_quota_values_change_nothing(aws, capsys, pair):
    code, out = admin(capsys, "accounts", "quota", "acme", pair)
    assert code == 1 and out.startswith("error:")
    assert quotas.of("acme")["smsPerMinute"] == quotas.DEFAULTS["smsPerMinute"][1]


def test_the_inbox_lists_replies_no_account_claims(api, capsys):
    Device("shared-1").save()
    key = auth.create_key("device", "shared-1")[0]
    body = {"from": "+22248089336", "text": "Bonjour <b>qui</b> ?\x1b[2J", "deviceRef": "r1"}
    assert api.device_post("/device/inbound", body, key).status_code == 200
    code, out = admin(capsys, "inbox")
    assert code == 0 and "+22248089336" in out and "shared-1" in out and "<b>qui</b>" in out
    assert "\x1b" not in out  # a received SMS cannot drive the operator's terminal


def test_pools_show_queue_depth_and_devices(api, capsys):
    from chalicelib import clock

    Device("phone-7", last_seen_at=clock.now()).save()
    Device("phone-8").save()
    api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"})
    code, out = admin(capsys, "pools")
    assert code == 0, out
    [_, otp, bulk] = out.splitlines()
    assert otp.split()[:3] == ["shared", "otp", "0"] and bulk.split()[:3] == ["shared", "bulk", "1"]
    assert bulk.split()[-1] == "1/2"  # one device with a recent heartbeat


def test_pools_list_each_account_with_dedicated_devices(api, capsys):
    from chalicelib import clock
    from chinqit_admin import provision

    Device("acme-phone", account_id="acme", last_seen_at=clock.now(), polls_own_queue=True).save()
    provision.device_queues("acme-phone")
    assert (
        api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"}).status_code == 200
    )
    code, out = admin(capsys, "pools")
    assert code == 0, out
    rows = [line.split() for line in out.splitlines()[1:]]
    acme = {row[1]: row for row in rows if row[0] == "acme"}
    assert acme["bulk"][2] == "1" and acme["otp"][2] == "0"  # acme's SMS waits on its phone
    assert [row[2] for row in rows if row[0] == "shared"] == ["0", "0"]


def test_fallback_is_set_per_account(aws, capsys):
    from chalicelib.models import Account

    assert admin(capsys, "accounts", "fallback", "acme", "on")[0] == 0
    assert Account.get("acme").shared_fallback is True
    quotas_kept = admin(capsys, "accounts", "quota", "acme", "smsPerDay=5")
    assert quotas_kept[0] == 0 and Account.get("acme").shared_fallback is True
    assert admin(capsys, "accounts", "fallback", "acme", "off")[0] == 0
    assert Account.get("acme").shared_fallback is False
