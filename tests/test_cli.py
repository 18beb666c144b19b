"""The operator CLI's scripting contract (issue #2 item 9), on both databases."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MASTER_KEY

VALID_USCC = "91310115MA1K4LXK21"


@pytest.mark.spec("ACC-1", "BAL-1", "BAL-2")
def test_create_adjust_balance_reconcile(cli):
    _, created = cli.json("account", "create", "--name", "Acme", "--enterprise", "示例公司",
                          "--uscc", VALID_USCC, "--email", "a@b.cn")
    uin = created["uin"]
    assert isinstance(uin, int) and uin > 10**11
    _, key = cli.json("apikey", "create", "--uin", uin)
    assert key["secret_id"].startswith("AKID") and len(key["secret_key"]) == 32
    cli.json("adjust", "--uin", uin, "--cash", "100.00", "--reason", "补偿",
             "--idempotency-key", "k1")
    cli.json("adjust", "--uin", uin, "--gift", "20.50", "--reason", "活动赠送")
    _, bal = cli.json("balance", "--uin", uin)
    assert {k: bal[k] for k in ("cash", "income", "gift", "frozen", "arrears", "available")} == {
        "cash": "100.00", "income": "0.00", "gift": "20.50", "frozen": "0.00",
        "arrears": "0.00", "available": "120.50"}
    code, rec = cli.json("reconcile")
    assert code == 0 and rec == {"clean": True, "differences": []}


def test_repeated_idempotency_key_returns_first_result(cli):
    _, created = cli.json("account", "create", "--name", "idem")
    uin = created["uin"]
    _, first = cli.json("adjust", "--uin", uin, "--cash", "10.00", "--reason", "r",
                        "--idempotency-key", "same")
    _, again = cli.json("adjust", "--uin", uin, "--cash", "10.00", "--reason", "r",
                        "--idempotency-key", "same")
    assert again["txn_id"] == first["txn_id"] and again["created"] is False
    assert again["balance"]["cash"] == "10.00"
    code, conflict = cli.json("adjust", "--uin", uin, "--cash", "11.00", "--reason", "r",
                              "--idempotency-key", "same", ok=False)
    assert code == 1 and conflict["error"]["code"] == "IdempotencyConflict"
    _, bal = cli.json("balance", "--uin", uin)
    assert bal["cash"] == "10.00"


@pytest.mark.parametrize("amount", ["1.234", "-0", "abc", "1e5", "", "99999999999999.00"])
def test_malformed_amounts_are_refused_and_write_nothing(cli, amount):
    _, created = cli.json("account", "create", "--name", "strict")
    uin = created["uin"]
    code, body = cli.json("adjust", "--uin", uin, "--cash", amount, "--reason", "r", ok=False)
    assert code == 1
    assert body["error"]["field"] == "cash"
    assert body["error"]["message_zh"] and body["error"]["message_en"]
    _, page = cli.json("transactions", "--uin", uin)
    assert page["total"] == 0


def test_bad_account_input_is_refused_naming_the_field(cli):
    code, body = cli.json("account", "create", "--name", "bad", "--enterprise", "X公司",
                          "--uscc", "91310115MA1K4LXK22", ok=False)
    assert code == 1 and body["error"]["field"] == "uscc"
    cli.json("account", "create", "--name", "dup")
    code, body = cli.json("account", "create", "--name", "dup", ok=False)
    assert code == 1 and body["error"]["field"] == "name"
    code, body = cli.json("balance", "--uin", 999, ok=False)
    assert code == 1 and body["error"]["field"] == "uin"
    code, body = cli.json("adjust", "--uin", 999, "--cash", "1.00", "--reason", "r", ok=False)
    assert code == 1 and body["error"]["field"] == "uin"


def test_cannot_take_cash_below_zero(cli):
    _, created = cli.json("account", "create", "--name", "poor")
    code, body = cli.json("adjust", "--uin", created["uin"], "--cash", "-5.00", "--reason", "r",
                          ok=False)
    assert code == 1 and body["error"]["code"] == "InsufficientBalance"


def test_reconcile_exits_nonzero_on_a_difference(cli, engine):
    _, created = cli.json("account", "create", "--name", "tampered")
    cli.json("adjust", "--uin", created["uin"], "--cash", "5.00", "--reason", "r")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ledger_accounts SET balance = balance + 1 WHERE kind = 'cash'")
    code, body = cli.json("reconcile", ok=False)
    assert code == 1 and body["clean"] is False
    assert body["differences"][0]["kind"] == "balance_mismatch"


@pytest.mark.slow
def test_entry_point_runs_as_a_program(database_url, tmp_path):
    env = {**os.environ, "FEECENTER_DATABASE_URL": database_url,
           "FEECENTER_MASTER_KEY": MASTER_KEY, "FEECENTER_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "feecenter.cli", "account", "create", "--name",
                           "proc", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "uin" in json.loads(done.stdout)
    bad = subprocess.run([sys.executable, "-m", "feecenter.cli", "balance", "--uin", "1"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "account not found" in bad.stderr


def test_serve_refuses_half_a_tls_pair_naming_the_option(cli, tmp_path):
    cert = tmp_path / "server.pem"
    cert.write_text("not read: the check comes first")
    half = cli("serve", "--tls-cert", cert, ok=False)
    assert half.exit_code == 1
    assert "[tls_key] --tls-cert 与 --tls-key 必须同时提供 / give --tls-cert and --tls-key together" \
        in half.output
    missing = cli("serve", "--tls-cert", cert, "--tls-key", tmp_path / "none.pem", ok=False)
    assert missing.exit_code == 1 and "[tls_key] 找不到文件" in missing.output


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the transport only
def test_serve_speaks_https_with_the_given_certificate(cli, tmp_path):
    import socket
    import time
    import urllib.error

    from feecenter.cli.client import FeeCenterClient
    from feecenter.cli.tls import local_tls

    files = local_tls(tmp_path / "tls")
    _, created = cli.json("account", "create", "--name", "over-tls")
    cli.json("adjust", "--uin", created["uin"], "--cash", "12.34", "--reason", "r")
    _, key = cli.json("apikey", "create", "--uin", created["uin"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the environment the cli fixture set: this test's database and master key
    server = subprocess.Popen([sys.executable, "-m", "feecenter.cli", "serve", "--port", str(port),
                               "--tls-cert", files.cert, "--tls-key", files.key],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = FeeCenterClient(f"https://127.0.0.1:{port}", key["secret_id"], key["secret_key"],
                             cafile=str(files.ca))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                balance = client.get(f"/api/v1/accounts/{created['uin']}/balance")
                break
            except urllib.error.URLError as exc:  # not listening yet
                assert time.monotonic() < deadline and server.poll() is None, exc
                time.sleep(0.2)
        assert balance["cash"] == "12.34"
    finally:
        server.terminate()
        server.wait(timeout=10)
