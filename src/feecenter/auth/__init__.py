"""Authentication: API keys (SecretId/SecretKey) for customer users and operators,
encrypted at rest, and TC3-HMAC-SHA256 request signatures checked exactly as
Tencent specifies (timestamp window, scope, signed headers, raw path), with
replay refusal for requests that carry a signed nonce; shared by the native
REST API and the compat API."""
