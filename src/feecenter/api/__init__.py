"""Native REST API under /api/v1 (FastAPI): thin routers over the domain services."""
