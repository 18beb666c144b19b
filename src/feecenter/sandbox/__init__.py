"""The sandbox payment provider (RCH-1): a small ASGI service speaking the WeChat Pay
API v3 wire protocol (``feecenter sandbox-pay``), so that the real adapter
(``feecenter.gateways.wechatpay``) is what tests and the demo exercise.

``keys``: the sandbox's merchant and platform keys and the environment that points
the adapter at it; ``protocol``: signing, verification and AES-256-GCM, written
from the protocol's description with ``cryptography`` (independently of the
``wechatpayv3`` package the adapter uses); ``app``: the provider itself.
"""
