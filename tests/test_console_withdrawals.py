"""提现 in the console (console/withdrawals.py, console/ops_withdrawals.py;
docs/withdrawal.md, "Console"): the withdrawable amount with the held money, applying
through the preview (legs, arrival estimates) with the form's idempotency key, the
records with their state and legs, refusals naming the field with nothing written;
the operator's payout queue (export a batch, upload the bank's result) and the
failed-review page (return to cash, pay offline) with a reason and a confirmation.
Every form needs the CSRF token."""

from __future__ import annotations

import csv
import io
import re

import pytest

from feecenter.auth import operator_sessions, sessions
from feecenter.auth import service as auth
from feecenter.db.engine import transaction
from feecenter.withdrawals import service
from feecenter.withdrawals.tables import withdrawal_legs, withdrawals
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, new_account, row_counts,
                           run_threads)
from tests.test_console_ops import (CUSTOMER_PASSWORD, PASSWORD, USCC, client, csrf_of,
                                    customer_client, operator_client, with_cookie)

BANK = {"holder": "上海示例云计算有限公司", "account_no": "6222020200000000001",
        "bank": "中国工商银行", "branch": "上海浦东支行"}


@pytest.fixture
def world(rt):
    """Operator alice and acme-cloud (enterprise, ¥50.00 cash added by an operator, so
    only an offline withdrawal can take it), both with console passwords."""
    with transaction(rt.engine) as conn:
        auth.create_operator(conn, rt.clock, OPS, "alice")
        operator_sessions.set_password(conn, rt.clock, OPS, "alice", PASSWORD)
    uin = new_account(rt, "acme-cloud", enterprise_name="上海示例云计算有限公司", uscc=USCC)
    add_cash(rt, uin, 50_00)
    with transaction(rt.engine) as conn:
        sessions.set_password(conn, rt.clock, OPS, uin, None, CUSTOMER_PASSWORD)
    return uin


def written(rt):
    return row_counts(rt, withdrawals, withdrawal_legs)


def _post(http, path: str, page: str, **data):
    return http.post(path, data={"csrf_token": csrf_of(http.get(page).text), **data})


def _preview(http, amount: str = "20.00", **fields):
    return _post(http, "/console/withdrawals/preview", "/console/withdrawals", amount=amount,
                 **{"route": "offline", **BANK, **fields})


def _confirm_form(preview_html: str) -> dict:
    form = re.search(r'<form method="post" action="/console/withdrawals/apply".*?</form>',
                     preview_html, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def _apply(http, amount: str = "20.00") -> tuple[str, str]:
    """Preview, confirm twice (the second repeats the first); the page after it."""
    preview = _preview(http, amount)
    assert preview.status_code == 200, preview.text
    confirm = _confirm_form(preview.text)
    done = http.post("/console/withdrawals/apply", data=confirm)
    assert done.status_code == 303, done.text
    again = http.post("/console/withdrawals/apply", data=confirm)
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    return done.headers["location"], http.get(done.headers["location"]).text


def _withdrawal_id(location: str) -> int:
    return int(location.rsplit("=", 1)[1])


@pytest.mark.spec("WDR-1", "WDR-3", "WDR-4")
def test_an_offline_withdrawal_through_the_preview_is_held_once(rt, world):
    http = customer_client(rt)
    page = http.get("/console/withdrawals").text
    assert 'data-field="takeable">¥50.00<' in page and 'data-held="0"' in page
    assert "data-apply-form" in page and "暂无提现记录" in page
    preview = _preview(http)
    assert preview.status_code == 200, preview.text
    assert 'data-preview-amount="2000"' in preview.text and "data-leg=" in preview.text
    assert "data-estimate" in preview.text and "不可取消" in preview.text
    assert written(rt) == (0, 0)  # a preview writes nothing
    location, html = _apply(http)
    assert written(rt)[0] == 1
    assert 'data-held="2000"' in html and 'data-field="takeable">¥30.00<' in html
    row = re.search(r'<tr data-withdrawal="\d+">.*?</tr>\s*</tbody>\s*</table>\s*</td>', html,
                    re.S).group(0)
    assert 'data-state="in_progress"' in row and "提现中" in row and "线下提现" in row
    assert balance(rt, world).cash == 30_00  # held at once: neither spendable nor withdrawable
    assert_reconciled(rt, world)


@pytest.mark.parametrize("data, field", [
    ({"amount": "1.234"}, "amount"),
    ({"amount": ""}, "amount"),
    ({"amount": "50.01"}, "amount"),  # above the takeable ¥50.00
    ({"amount": "10.00", "route": "sideways"}, "route"),
])
def test_a_bad_application_is_shown_naming_the_field(rt, world, data, field):
    http = customer_client(rt)
    response = _preview(http, **data)
    assert response.status_code == 400, response.text
    assert f'data-error-field="{field}"' in response.text, response.text
    assert written(rt) == (0, 0)


@pytest.mark.spec("WDR-3")
@pytest.mark.parametrize("fields, field", [
    ({"holder": "另一家公司"}, "bank.holder"),  # not the verified entity
    ({"account_no": "12ab"}, "bank.account_no"),
    ({"branch": ""}, "bank.branch"),
])
def test_a_bad_bank_account_is_refused_at_the_confirmation(rt, world, fields, field):
    http = customer_client(rt)
    confirm = {**_confirm_form(_preview(http).text), **fields}
    response = http.post("/console/withdrawals/apply", data=confirm)
    assert response.status_code == 400, response.text
    assert f'data-error-field="{field}"' in response.text and 'aria-invalid="true"' in response.text
    assert written(rt) == (0, 0) and balance(rt, world).cash == 50_00


def test_forms_without_the_csrf_token_are_refused(rt, world):
    http = customer_client(rt)
    preview = _preview(http)
    confirm = {**_confirm_form(preview.text), "csrf_token": "forged"}
    assert http.post("/console/withdrawals/apply", data=confirm).status_code == 403
    assert http.post("/console/withdrawals/preview",
                     data={"amount": "1.00", "route": "offline", **BANK}).status_code == 403
    ops = operator_client(rt)
    for path in ("/console/ops/payouts/batches", "/console/ops/withdrawals/1/return"):
        assert ops.post(path, data={"reason": "x", "confirm": "yes"}).status_code == 403
    assert written(rt) == (0, 0)


@pytest.mark.postgres_only
@pytest.mark.spec("WDR-4")
def test_eight_concurrent_confirms_of_one_preview_apply_once(rt, world):
    http = customer_client(rt)
    confirm = _confirm_form(_preview(http).text)
    cookie = http.cookies.get("fc_session")
    statuses = []

    def submit(_):
        response = with_cookie(rt, "fc_session", cookie).post("/console/withdrawals/apply",
                                                              data=confirm)
        statuses.append((response.status_code, response.headers.get("location")))

    assert run_threads(8, submit) == []
    assert len(set(statuses)) == 1 and statuses[0][0] == 303
    assert written(rt)[0] == 1 and balance(rt, world).cash == 30_00
    assert_reconciled(rt, world)


def _result_csv(export_csv: str, outcome: str) -> str:
    """The bank's answer to an exported batch: every line ``outcome`` (paid | failed)."""
    rows = list(csv.DictReader(io.StringIO(export_csv.lstrip("\ufeff"))))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["leg_id", "result", "reason"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({"leg_id": row["leg_id"], "result": outcome,
                         "reason": "收款账户已销户" if outcome == "failed" else ""})
    return out.getvalue()


def _export_and_answer(ops, outcome: str) -> dict:
    page = ops.get("/console/ops/payouts")
    assert page.status_code == 200 and "data-payout=" in page.text, page.text
    exported = ops.post("/console/ops/payouts/batches", data={"csrf_token": csrf_of(page.text)})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-disposition"].startswith("attachment")
    batch_id = re.search(r"payout-batch-(\d+)\.csv", exported.headers["content-disposition"])[1]
    text = exported.content.decode("utf-8-sig")
    answer = ops.post("/console/ops/payouts/result",
                      data={"csrf_token": csrf_of(page.text), "batch_id": batch_id},
                      files={"result": ("result.csv", _result_csv(text, outcome).encode(),
                                        "text/csv")})
    assert answer.status_code == 200, answer.text
    return {"batch_id": batch_id, "html": answer.text}


@pytest.mark.spec("WDR-3")
def test_the_payout_queue_exports_a_batch_and_takes_the_banks_result(rt, world):
    http = customer_client(rt)
    location, _ = _apply(http)
    ops = operator_client(rt)
    done = _export_and_answer(ops, "paid")
    assert 'data-paid="1"' in done["html"] and "data-payout=" not in done["html"]
    html = http.get("/console/withdrawals").text
    assert 'data-state="paid"' in html and "已到账" in html and 'data-held="0"' in html
    assert balance(rt, world).cash == 30_00
    assert_reconciled(rt, world)


@pytest.mark.spec("WDR-5")
def test_a_failed_payout_is_returned_to_cash_after_review(rt, world):
    http = customer_client(rt)
    location, _ = _apply(http)
    number = _withdrawal_id(location)
    ops = operator_client(rt)
    _export_and_answer(ops, "failed")
    html = http.get("/console/withdrawals").text
    assert 'data-state="failed"' in html and "失败待审核" in html and 'data-held="2000"' in html
    link = re.search(r'href="([^"]+)" data-file-request', html).group(1)
    assert f"withdrawal_id={number}" in link
    form = http.get(link.replace("&amp;", "&"))
    assert form.status_code == 200 and 'data-kind="failed_payout"' in form.text
    assert f'name="field_withdrawal_id" value="{number}"' in form.text  # filled in

    review = ops.get("/console/ops/withdrawals/failed")
    assert f'data-withdrawal="{number}"' in review.text
    path = f"/console/ops/withdrawals/{number}/return"
    unconfirmed = ops.post(path, data={"csrf_token": csrf_of(review.text), "reason": "已销户"})
    assert unconfirmed.status_code == 400 and 'data-error-field="confirm"' in unconfirmed.text
    no_reason = ops.post(path, data={"csrf_token": csrf_of(review.text), "confirm": "yes"})
    assert no_reason.status_code == 400 and 'data-error-field="reason"' in no_reason.text
    assert balance(rt, world).cash == 30_00  # nothing written
    returned = ops.post(path, data={"csrf_token": csrf_of(review.text), "reason": "付款账户已销户",
                                    "confirm": "yes"})
    assert returned.status_code == 303, returned.text
    assert f'data-withdrawal="{number}"' not in ops.get(returned.headers["location"]).text
    again = ops.post(path, data={"csrf_token": csrf_of(review.text), "reason": "again",
                                 "confirm": "yes"})
    assert again.status_code in (404, 409)  # returned once, never twice
    html = http.get("/console/withdrawals").text
    assert 'data-state="returned"' in html and "已退回" in html and 'data-held="0"' in html
    assert balance(rt, world).cash == 50_00
    assert_reconciled(rt, world)


@pytest.mark.spec("WDR-5")
def test_a_failed_payout_is_paid_offline_after_review(rt, world):
    http = customer_client(rt)
    number = _withdrawal_id(_apply(http)[0])
    ops = operator_client(rt)
    _export_and_answer(ops, "failed")
    review = ops.get("/console/ops/withdrawals/failed")
    paid = ops.post(f"/console/ops/withdrawals/{number}/pay-offline",
                    data={"csrf_token": csrf_of(review.text), "reason": "客户提供新账户",
                          "confirm": "yes", **BANK})
    assert paid.status_code == 303, paid.text
    with rt.engine.connect() as conn:
        view = service.get(conn, OPS, number)
    assert view["state"] != "failed"
    assert balance(rt, world).cash == 30_00  # still out: paid, not returned
    assert_reconciled(rt, world)


def test_the_operator_pages_are_in_the_menu_and_empty_at_first(rt, world):
    ops = operator_client(rt)
    page = ops.get("/console/ops/payouts")
    assert page.status_code == 200 and "提现出款" in page.text and "data-empty" in page.text
    assert 'href="/console/ops/withdrawals/failed"' in page.text
    failed = ops.get("/console/ops/withdrawals/failed")
    assert failed.status_code == 200 and "提现失败审核" in failed.text
    assert client(rt).get("/console/ops/payouts").status_code == 303  # not logged in
    nothing = ops.post("/console/ops/payouts/batches", data={"csrf_token": csrf_of(page.text)})
    assert nothing.status_code == 409 and "data-error" in nothing.text  # no queued payout


@pytest.mark.spec("WDR-3")
def test_a_bad_result_file_is_refused_naming_the_line_and_nothing_is_settled(rt, world):
    http = customer_client(rt)
    _apply(http)
    ops = operator_client(rt)
    page = ops.get("/console/ops/payouts")
    exported = ops.post("/console/ops/payouts/batches", data={"csrf_token": csrf_of(page.text)})
    batch_id = re.search(r"payout-batch-(\d+)\.csv", exported.headers["content-disposition"])[1]
    for body in (b"leg_id,result,reason\n999999,paid,\n", b"leg,outcome\n", b""):
        answer = ops.post("/console/ops/payouts/result",
                          data={"csrf_token": csrf_of(page.text), "batch_id": batch_id},
                          files={"result": ("result.csv", body, "text/csv")})
        assert answer.status_code == 400, answer.text
        assert re.search(r'data-error-field="(csv|result)"', answer.text)
    html = http.get("/console/withdrawals").text
    assert 'data-state="in_progress"' in html and 'data-held="2000"' in html
