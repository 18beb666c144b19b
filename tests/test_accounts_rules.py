"""Pure account rules (no database): who may buy, ACC-1 and ACC-4."""

import pytest

from feecenter.accounts.rules import refuse_buyer
from feecenter.errors import PurchaseRefused


@pytest.mark.spec("ACC-1", "ACC-4")
@pytest.mark.parametrize("status, realname, field", [
    ("restricted", "personal", "uin"), ("cancelled", "enterprise", "uin"),
    ("normal", "abnormal", "realname_state"), ("restricted", "abnormal", "uin"),
])
def test_restricted_cancelled_or_abnormal_real_name_refuses(status, realname, field):
    with pytest.raises(PurchaseRefused) as err:
        refuse_buyer(status, realname)
    assert (err.value.code, err.value.http_status, err.value.field) == (
        "PurchaseRefused", 403, field)


@pytest.mark.parametrize("realname", ["none", "personal", "enterprise"])
def test_a_normal_account_may_buy(realname):
    refuse_buyer("normal", realname)
