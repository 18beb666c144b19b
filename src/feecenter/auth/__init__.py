"""Authentication: API keys (SecretId/SecretKey) for customer users and operators,
encrypted at rest, and TC3-HMAC-SHA256 request signatures with a timestamp
window and replay refusal, shared by the native REST API and the compat API."""
