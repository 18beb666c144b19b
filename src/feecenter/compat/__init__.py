"""Tencent Cloud API 3.0 compatible endpoint (XTR-5, docs/api.md): ``POST /`` with
X-TC-Action / X-TC-Version 2018-07-09, TC3-HMAC-SHA256, the ``Response``
envelope, fen amounts and Tencent error codes. Works with the official
tencentcloud-sdk-python-billing client and tccli unchanged."""
