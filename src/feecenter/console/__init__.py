"""The web console (费用中心控制台) under /console: server-rendered pages (Jinja2),
htmx for partial updates, gettext catalogs in zh-CN and English (docs/console.md).

An adapter like api/ and cli/: a page parses its input, calls service functions
(the same ones REST calls) and renders; permissions are the services'.
``web.install`` mounts it on the ASGI app (api.app is the composition root).
"""
