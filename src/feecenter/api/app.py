"""The ASGI application: native REST API, compat endpoint, OpenAPI at /docs."""

from __future__ import annotations

from fastapi import FastAPI

from feecenter import __version__
from feecenter.api import arrears as arrears_routes
from feecenter.api import bills as bill_routes
from feecenter.api import catalog as catalog_routes
from feecenter.api import coupons as coupon_routes
from feecenter.api import errors, routes
from feecenter.api import orders as order_routes
from feecenter.api import notifications as notification_routes
from feecenter.api import usage as usage_routes
from feecenter.compat import endpoint as compat
from feecenter.runtime import Runtime


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(title="Fee Center 费用中心", version=__version__,
                  description="Native REST API (yuan strings) and a Tencent Cloud Billing "
                              "API 2018-07-09 compatible endpoint at POST / (fen).")
    app.state.runtime = rt
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(catalog_routes.router)
    app.include_router(order_routes.router)
    app.include_router(usage_routes.router)
    app.include_router(notification_routes.router)
    app.include_router(bill_routes.router)
    app.include_router(coupon_routes.router)
    app.include_router(arrears_routes.router)
    app.include_router(compat.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    return app
