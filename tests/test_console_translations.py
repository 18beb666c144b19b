"""The translation walk: every text the console shows is a message with its Chinese
and its English.

- Every template's literal text (text nodes and the attributes people read:
  title, aria-label, placeholder, alt, a button's value) outside ``{{ _() }}`` is
  only numbers, symbols or a name that is not translated (``UNTRANSLATED``).
- Every message id is English (no Chinese in it) and has its Chinese, not fuzzy.
- Pages rendered in zh-CN show no English message id, in English no Chinese of
  the catalog: what the code shows went through ``_()``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2 import Environment

from feecenter.console import i18n
from tests.test_console import logged_in, shop  # noqa: F401 - shop is a fixture
from tests.test_console_ledger import add_line

CONSOLE = Path(__file__).resolve().parent.parent / "src/feecenter/console"
TEMPLATES = sorted((CONSOLE / "templates").glob("*.html"))
READ_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}
# names and formats, the same in both languages (YYYY-MM-DD HH:MM:SS; cvm: a product code;
# SecretId and SecretKey: the API key's parts, so named in Tencent Cloud's Chinese console too)
UNTRANSLATED = {"UIN", "CSV", "ID", "YYYY", "MM", "DD", "HH", "SS", "cvm", "SecretId",
                "SecretKey"}
HOLE = "\x00"  # where an expression was (a statement leaves nothing)
LETTERS = re.compile(r"[^\W\d_]+")


def catalog():
    with (CONSOLE / "translations/zh_CN/LC_MESSAGES/messages.po").open("rb") as po:
        return {m.id: m for m in read_po(po) if m.id}


def literal_html(source: str) -> str:
    """The template's own markup: its data, each expression a hole."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    parts = []
    for _, kind, value in env.lex(source):
        if kind == "data":
            parts.append(value)
        elif kind == "variable_begin":
            parts.append(HOLE)
    return "".join(parts)


class Visible(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")
        for name, value in attrs:
            if value and (name in READ_ATTRIBUTES
                          or (name == "value" and tag == "input"  # a button shows its content
                              and ("type", "submit") in attrs)):
                self.texts.append(value)

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.skip:
            self.texts.append(data)


def untranslated_words(html: str) -> list[str]:
    parser = Visible()
    parser.feed(html)
    return [word for text in parser.texts for word in LETTERS.findall(text)
            if word not in UNTRANSLATED]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_templates_show_no_text_outside_a_message(template):
    assert untranslated_words(literal_html(template.read_text(encoding="utf-8"))) == []


def test_the_walk_finds_text_outside_a_message():
    assert untranslated_words(literal_html('<p title="Hello">{{ _("Ok") }} Total: {{ n }}</p>'
                                           '<script>var x;</script>')) == ["Hello", "Total"]


def test_message_ids_are_english_and_each_has_its_chinese():
    cjk = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
    entries = catalog().values()
    assert [m.id for m in entries if cjk.search(m.id)] == []
    assert [m.id for m in entries if not m.string or m.fuzzy] == []
    assert [m.id for m in entries if LETTERS.search(m.id) and not cjk.search(m.string)
            and m.string not in UNTRANSLATED] == []


def shown_texts(html: str) -> set[str]:
    parser = Visible()
    parser.feed(html)
    return {" ".join(text.split()) for text in parser.texts} - {""}


def test_pages_show_each_message_in_the_page_language(rt, shop):  # noqa: F811
    """Render every main page in both languages: no zh-CN page shows a message's
    English text, no English page a message's Chinese (a text shown without _())."""
    from tests.helpers import buy, load_sample_catalog

    load_sample_catalog(rt)
    add_line(rt, shop, 0)
    order_id = buy(rt, shop)[0]
    entries = [m for m in catalog().values() if m.string != m.id and "%(" not in m.id]
    http = logged_in(rt)
    paths = ("/console/", "/console/transactions", "/console/bills", "/console/orders",
             f"/console/orders/{order_id}", f"/console/orders/pay?order_id={order_id}",
             "/console/remittance", "/console/renewal", "/console/renewal?tab=packages",
             "/console/recycle-bin", "/console/invoices", "/console/invoices/title",
             "/console/withdrawals",
             "/console/no-such-page")
    for lang, foreign in (("zh-CN", lambda m: m.id), ("en", lambda m: m.string)):
        http.cookies.set(i18n.COOKIE, lang, path="/console")
        for path in paths:
            texts = shown_texts(http.get(path).text)
            assert sorted(foreign(m) for m in entries if foreign(m) in texts) == [], (lang, path)
        http.cookies.delete("fc_session", path="/console")
        texts = shown_texts(http.get("/console/login").text)
        assert sorted(foreign(m) for m in entries if foreign(m) in texts) == [], (lang, "login")
        http = logged_in(rt)
