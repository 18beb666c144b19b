"""The console's languages and message catalogs.

Message ids are English; ``translations/<locale>/LC_MESSAGES/messages.po`` holds
the other languages. The ``.po`` files are the only source: each is compiled
in memory (Babel) the first time it is used, so a fresh clone needs no build
step and no compiled ``.mo`` file is kept in git.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = {"zh-CN": "中文", "en": "English"}
DEFAULT = "zh-CN"
COOKIE = "fc_lang"
CATALOGS = Path(__file__).parent / "translations"
_LOCALES = {"zh-CN": "zh_CN"}  # languages with a catalog; English is the message ids


def language(value: str | None) -> str:
    """The language a cookie names, else the default (zh-CN)."""
    return value if value in LANGUAGES else DEFAULT


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark, translate later"
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


@lru_cache(maxsize=None)
def translations(lang: str) -> gettext.NullTranslations:
    locale = _LOCALES.get(lang)
    if locale is None:
        return gettext.NullTranslations()
    with (CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled)
