"""The console's 消息 page: the in-site messages the REST API lists (read and unread,
each in the page's language), marking one (htmx, with the header's count swapped)
or all read, the unread count in the header and the latest five on the overview;
the kinds a role does not receive stay hidden (ACC-2); bad ids and CSRF refused
with nothing marked.

Both backends (the ``rt`` fixture), the app in-process (TestClient).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from feecenter.db.engine import transaction
from feecenter.notifications import service as notifications
from feecenter.notifications.tables import in_site_messages
from tests.helpers import api_key
from tests.test_console import csrf_of, logged_in, shop  # noqa: F401 - fixture
from tests.test_console_users import actor_of, rest


def notify(rt, uin: int, n: int) -> None:
    with transaction(rt.engine) as conn:
        for i in range(n):
            notifications.notify(conn, rt.clock, uin, "balance_low",
                                 {"available": f"{i}.00", "threshold": "100.00"},
                                 key=f"console-messages:{uin}:{i}")


def shown(html: str) -> list[tuple[str, str]]:
    """(message id, read) of each message listed."""
    return re.findall(r'data-message="(\d+)" data-read="(\w+)"', html)


def read_marks(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(in_site_messages)
                            .where(in_site_messages.c.read_at.is_not(None))).scalar_one()


def header_count(html: str) -> str:
    return re.search(r'id="unread-count"[^>]*data-unread="(\d+)"', html).group(1)


@pytest.mark.spec("ARR-3")
def test_the_inbox_lists_what_the_rest_api_lists_in_the_pages_language(rt, shop):  # noqa: F811 - the fixture imported above
    notify(rt, shop, 3)
    api = rest(rt, api_key(rt, shop))
    with rt.engine.connect() as conn:
        first = notifications.list_messages(conn, actor_of(rt, shop, None), shop)["items"][-1]["id"]
    api.send("POST", f"/api/v1/accounts/{shop}/messages/read", {"ids": [first]})
    listed = api.send("GET", f"/api/v1/accounts/{shop}/messages").json()
    http = logged_in(rt)
    page = http.get("/console/messages")
    assert page.status_code == 200 and "<h1>消息</h1>" in page.text
    assert shown(page.text) == [(str(m["id"]), str(m["read"]).lower()) for m in listed["items"]]
    assert "共 3 条消息，2 条未读" in page.text and header_count(page.text) == "2"
    titles = re.findall(r"data-title>([^<]*)<", page.text)
    assert titles == [m["title"].split(" / ")[0] for m in listed["items"]]  # the zh half
    assert all(m["created_at"] in page.text for m in listed["items"])
    assert "[Low balance]" not in page.text

    http.cookies.set("fc_lang", "en", path="/console")
    english = http.get("/console/messages").text
    assert re.findall(r"data-title>([^<]*)<", english) == [
        m["title"].split(" / ")[1] for m in listed["items"]]
    assert "3 messages, 2 unread" in english and "余额" not in english.split("<main>")[1]

    unread_only = http.get("/console/messages?unread=1").text
    assert [i for i, _ in shown(unread_only)] == [
        str(m["id"]) for m in api.send("GET", f"/api/v1/accounts/{shop}/messages",
                                       query={"unread": "true"}).json()["items"]]


def test_mark_one_through_htmx_then_all_read(rt, shop):  # noqa: F811 - the fixture imported above
    notify(rt, shop, 3)
    http = logged_in(rt)
    page = http.get("/console/messages").text
    newest = shown(page)[0][0]
    one = http.post("/console/messages/read", data={"id": newest},
                    headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page)})
    assert one.status_code == 200 and one.text.startswith('<section id="messages"')
    assert (newest, "true") in shown(one.text) and len(shown(one.text)) == 3
    assert 'hx-swap-oob="true"' in one.text and header_count(one.text) == "2"
    api = rest(rt, api_key(rt, shop))
    assert api.send("GET", f"/api/v1/accounts/{shop}/messages").json()["unread"] == 2

    every = http.post("/console/messages/read", data={"all": "1", "csrf_token": csrf_of(page)})
    assert every.status_code == 303 and every.headers["location"].startswith("/console/messages")
    assert api.send("GET", f"/api/v1/accounts/{shop}/messages").json()["unread"] == 0
    assert header_count(http.get("/console/").text) == "0"


def test_the_overview_shows_the_latest_five_and_the_header_the_unread_count(rt, shop):  # noqa: F811 - the fixture imported above
    notify(rt, shop, 7)
    http = logged_in(rt)
    overview = http.get("/console/").text
    latest = re.search(r"<section class=\"latest-messages\".*?</section>", overview, re.S)[0]
    listed = rest(rt, api_key(rt, shop)).send("GET", f"/api/v1/accounts/{shop}/messages",
                                              query={"limit": "5"}).json()
    assert re.findall(r'data-message="(\d+)"', latest) == [str(m["id"]) for m in listed["items"]]
    assert header_count(overview) == "7"


@pytest.mark.spec("ACC-2")
def test_a_role_sees_only_the_kinds_addressed_to_it_and_cannot_mark_others(rt, shop):  # noqa: F811 - the fixture imported above
    notify(rt, shop, 2)
    readonly = logged_in(rt, "acme-readonly")
    page = readonly.get("/console/messages")
    assert page.status_code == 200 and shown(page.text) == [] and header_count(page.text) == "0"
    assert "暂无消息" in page.text
    hidden = shown(logged_in(rt).get("/console/messages").text)[0][0]
    refused = readonly.post("/console/messages/read", data={"id": hidden,
                                                            "csrf_token": csrf_of(page.text)})
    assert refused.status_code == 404 and f"站内信不存在：{hidden}" in refused.text
    assert 'data-error-field="ids"' in refused.text
    assert read_marks(rt) == 0


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_bad_input_and_csrf_mark_nothing(rt, shop, lang):  # noqa: F811 - the fixture imported above
    notify(rt, shop, 1)
    http = logged_in(rt)
    http.cookies.set("fc_lang", lang, path="/console")
    csrf = csrf_of(http.get("/console/messages").text)
    zh = lang == "zh-CN"
    for data, status, text in (
            ({"id": "１"}, 400, "ids 必须是由数字" if zh else "ids must be an id of ASCII digits"),
            ({"id": "99999999"}, 404, "站内信不存在：99999999" if zh else
             "message not found: 99999999"),
            ({}, 400, "请选择消息" if zh else "choose a message, or mark all read")):
        response = http.post("/console/messages/read", data={**data, "csrf_token": csrf})
        assert response.status_code == status and text in response.text, response.text
        assert 'data-error-field="ids"' in response.text
    bad_page = http.get("/console/messages?page=0")
    assert bad_page.status_code == 400 and 'data-error-field="page"' in bad_page.text
    for token in ("", csrf + "x"):
        assert http.post("/console/messages/read",
                         data={"all": "1", "csrf_token": token}).status_code == 403
    assert read_marks(rt) == 0
