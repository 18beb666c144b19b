"""Payment-provider adapters behind the recharge port (``recharges.gateway``):
``wechatpay`` (WeChat Pay API v3 on the ``wechatpayv3`` package), and
``configured()``, which builds the gateways the environment configures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from feecenter.recharges.gateway import PaymentGateway


def configured(env: Mapping[str, str] | None = None) -> dict[str, PaymentGateway]:
    """The gateways configured in the environment, by channel (none configured: {})."""
    from feecenter.gateways.wechatpay import WeChatPayConfig, gateway_for

    config = WeChatPayConfig.from_env(os.environ if env is None else env)
    return {"wechat": gateway_for(config)} if config else {}
