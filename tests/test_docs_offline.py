"""/docs and /redoc work with no internet: every script and stylesheet they load is
served by the app itself."""

import re

import pytest
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.runtime import Runtime


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_documentation_loads_its_assets_from_the_app(page):
    client = TestClient(create_app(Runtime(engine=None, clock=None, settings=None)))
    html = client.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    scripts = [a for a in assets if a.endswith((".js", ".css"))]
    assert scripts, html
    for asset in scripts:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
