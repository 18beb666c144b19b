"""Payment-provider adapters behind the recharge port (``recharges.gateway``):
``wechatpay`` (WeChat Pay API v3 on the ``wechatpayv3`` package), and
``configured()``, which builds the gateways the environment configures (once,
when the runtime opens: ``runtime.open_runtime``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from feecenter.errors import ConfigurationError
from feecenter.recharges.gateway import PaymentGateway


def configured(env: Mapping[str, str] | None = None) -> dict[str, PaymentGateway]:
    """The gateways configured in the environment, by channel (none configured: {});
    a configuration that cannot work raises ConfigurationError naming the variable.

    QQ Wallet and online banking have no real adapter yet: with
    ``FEECENTER_SANDBOX_CHANNELS=qq,netbank`` they go to the same WeChat Pay v3
    speaking server as ``wechat`` — meant for the sandbox provider only.
    """
    from feecenter.gateways.wechatpay import PRODUCTION_URL, WeChatPayConfig, WeChatPayGateway

    env = os.environ if env is None else env
    try:
        config = WeChatPayConfig.from_env(env)
        if config is None:
            return {}
        wechat = WeChatPayGateway(config)
    except Exception as exc:  # ours name the variable; the package raises bare Exception
        raise ConfigurationError("微信支付配置有误（FEECENTER_WECHATPAY_*）：" + str(exc)[:300],
                                 "the WeChat Pay configuration (FEECENTER_WECHATPAY_*) cannot "
                                 "work: " + str(exc)[:300]) from exc
    if config.base_url.rstrip("/") == PRODUCTION_URL:  # a real merchant takes WeChat only
        return {"wechat": wechat}
    extra = [c for c in (env.get("FEECENTER_SANDBOX_CHANNELS") or "").split(",") if c]
    return {"wechat": wechat, **{channel: wechat for channel in extra
                                 if channel in ("qq", "netbank")}}
