"""The customer menu. A page that exists has its path; the others are shown
disabled until their feature adds the page and sets the path here
(docs/console.md, "Adding a page")."""

from __future__ import annotations

from dataclasses import dataclass

from feecenter.console.i18n import N_


@dataclass(frozen=True)
class MenuItem:
    key: str
    label: str  # an English message id, translated when shown
    path: str | None  # None: not built yet, shown disabled


MENU = (
    MenuItem("overview", N_("Overview"), "/console/"),
    MenuItem("recharge", N_("Online recharge"), "/console/recharge"),
    MenuItem("remittance", N_("Corporate remittance"), "/console/remittance"),
    MenuItem("transactions", N_("Transactions"), "/console/transactions"),
    MenuItem("bills", N_("Bills"), "/console/bills"),
    MenuItem("bill_downloads", N_("Download center"), "/console/bills/downloads"),
    MenuItem("orders", N_("Orders"), "/console/orders"),
    MenuItem("resources", N_("Resources"), "/console/resources"),
    MenuItem("renewal", N_("Renewal management"), "/console/renewal"),
    MenuItem("recycle_bin", N_("Recycle bin"), "/console/recycle-bin"),
    MenuItem("coupons", N_("Coupons"), "/console/coupons"),
    MenuItem("arrears", N_("Arrears"), "/console/arrears"),
    MenuItem("invoices", N_("Invoices"), "/console/invoices"),
    MenuItem("withdrawals", N_("Withdrawals"), "/console/withdrawals"),
    MenuItem("users", N_("Users and keys"), "/console/users"),
    MenuItem("messages", N_("Messages"), "/console/messages"),
    MenuItem("service_requests", N_("Service requests"), "/console/service-requests"),
    MenuItem("cancellation", N_("Account cancellation"), "/console/cancellation"),
)

# how a user's role is shown (accounts.permissions.ROLES)
ROLE_LABELS = {"owner": N_("Owner"), "finance": N_("Finance"), "admin": N_("Administrator"),
               "readonly": N_("Read-only")}
