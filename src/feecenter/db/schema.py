"""Imports every domain's tables so the one MetaData knows the whole schema."""

from feecenter.accounts import tables as _accounts  # noqa: F401
from feecenter.arrears import tables as _arrears  # noqa: F401
from feecenter.audit import tables as _audit  # noqa: F401
from feecenter.auth import tables as _auth  # noqa: F401
from feecenter.balance_warnings import tables as _balance_warnings  # noqa: F401
from feecenter.bills import tables as _bills  # noqa: F401
from feecenter.catalog import tables as _catalog  # noqa: F401
from feecenter.coupons import tables as _coupons  # noqa: F401
from feecenter.db.base import metadata
from feecenter.funds import tables as _funds  # noqa: F401
from feecenter.invoices import tables as _invoices  # noqa: F401
from feecenter.jobs import tables as _jobs  # noqa: F401
from feecenter.ledger import tables as _ledger  # noqa: F401
from feecenter.notifications import tables as _notifications  # noqa: F401
from feecenter.orders import tables as _orders  # noqa: F401
from feecenter.packages import tables as _packages  # noqa: F401
from feecenter.recharges import tables as _recharges  # noqa: F401
from feecenter.remittances import tables as _remittances  # noqa: F401
from feecenter.renewal import tables as _renewal  # noqa: F401
from feecenter.resources import tables as _resources  # noqa: F401
from feecenter.service_requests import tables as _service_requests  # noqa: F401
from feecenter.settlement import tables as _settlement  # noqa: F401
from feecenter.usage import tables as _usage  # noqa: F401
from feecenter.withdrawals import tables as _withdrawals  # noqa: F401

__all__ = ["metadata"]
