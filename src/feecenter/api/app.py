"""The ASGI application: native REST API, compat endpoint, OpenAPI at /docs, the web
console at /console.

/docs and /redoc load Swagger UI and ReDoc from assets shipped in a package
(fastapi-offline), so they work with no internet."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from feecenter import __version__
from feecenter.api import arrears as arrears_routes
from feecenter.api import balance_warnings as balance_warning_routes
from feecenter.api import bill_compare as bill_compare_routes
from feecenter.api import bill_exports as bill_export_routes
from feecenter.api import bills as bill_routes
from feecenter.api import cancellation as cancellation_routes
from feecenter.api import catalog as catalog_routes
from feecenter.api import consumption as consumption_routes
from feecenter.api import coupons as coupon_routes
from feecenter.api import cost_bills as cost_bill_routes
from feecenter.api import errors, routes, strict
from feecenter.api import invoices as invoice_routes
from feecenter.api import orders as order_routes
from feecenter.api import notifications as notification_routes
from feecenter.api import recharges as recharge_routes
from feecenter.api import remittances as remittance_routes
from feecenter.api import renewal as renewal_routes
from feecenter.api import service_requests as service_request_routes
from feecenter.api import usage as usage_routes
from feecenter.api import withdrawals as withdrawal_routes
from feecenter.compat import endpoint as compat
from feecenter.console import web as console
from feecenter.runtime import Runtime

ROUTERS = (routes.router, catalog_routes.router, order_routes.router, usage_routes.router,
           notification_routes.router, bill_routes.router, coupon_routes.router,
           arrears_routes.router, recharge_routes.router, service_request_routes.router,
           remittance_routes.router, renewal_routes.router, consumption_routes.router,
           cost_bill_routes.router, bill_compare_routes.router, bill_export_routes.router,
           invoice_routes.router, withdrawal_routes.router, cancellation_routes.router,
           balance_warning_routes.router,
           compat.router)


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPIOffline(title="Fee Center 费用中心", version=__version__,
                  description="Native REST API (yuan strings) and a Tencent Cloud Billing "
                              "API 2018-07-09 compatible endpoint at POST / (fen).")
    app.state.runtime = rt
    errors.install(app)
    strict.install_openapi(app)
    app.add_middleware(strict.BodyGuard)
    for router in ROUTERS:
        app.include_router(router)
    errors.install_method_routing(app, [route for r in ROUTERS for route in r.routes])
    console.install(app)  # the web console at /console (docs/console.md)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    return app
