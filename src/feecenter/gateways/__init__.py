"""Payment-provider adapters behind the recharge port (``recharges.gateway``):
``wechatpay`` (WeChat Pay API v3 on the ``wechatpayv3`` package), and
``configured()``, which builds the gateways the environment configures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from feecenter.recharges.gateway import PaymentGateway


def configured(env: Mapping[str, str] | None = None) -> dict[str, PaymentGateway]:
    """The gateways configured in the environment, by channel (none configured: {}).

    QQ Wallet and online banking have no real adapter yet: with
    ``FEECENTER_SANDBOX_CHANNELS=qq,netbank`` they go to the same WeChat Pay v3
    speaking server as ``wechat`` — meant for the sandbox provider only.
    """
    from feecenter.gateways.wechatpay import PRODUCTION_URL, WeChatPayConfig, gateway_for

    env = os.environ if env is None else env
    config = WeChatPayConfig.from_env(env)
    if config is None:
        return {}
    wechat = gateway_for(config)
    if config.base_url.rstrip("/") == PRODUCTION_URL:  # a real merchant takes WeChat only
        return {"wechat": wechat}
    extra = [c for c in (env.get("FEECENTER_SANDBOX_CHANNELS") or "").split(",") if c]
    return {"wechat": wechat, **{channel: wechat for channel in extra
                                 if channel in ("qq", "netbank")}}
