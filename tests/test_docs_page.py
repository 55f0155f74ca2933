"""The docs page (Swagger UI 5): its routes over the test client, then in a real browser.

The browser tests drive Debian's ``chromium`` headless with selenium and
``chromedriver`` against the app served by a real server on 127.0.0.1. Without
them they are skipped, except under ``CI=true``, where they fail.

Until the API's own document exists, the app of the browser tests serves a
hand-written OpenAPI 3.1 document next to the page (``hand_written_app``);
``test_the_example_docs_page_in_a_browser`` drives the cookies example itself once
``backo_restful.api.openapi`` is there.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from flask import Blueprint, Flask, jsonify
from werkzeug.serving import make_server

from backo_restful import Engine
from backo_restful.api import docs_page
from backo_restful.api.flask import Api
from backo_restful.auth import JWTAuth
from backo_restful.exceptions import DeclarationError
from backo_restful.storage import PeeweeStorage
from example import cookies

from .conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2000",
)
#: Seconds any one wait of the browser may take.
WAIT = 20
KEY = "a secret key of the docs page tests, 32+ bytes long"


# --- the apps -----------------------------------------------------------------


def hand_written_document(server: str = "/", *, bearer: bool = False) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the cookies example's ``GET /cookie`` and ``GET /jar``."""
    cookie = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "type": {"type": "string", "minLength": 1},
            "jar": {"type": ["integer", "null"]},
        },
    }

    def listing(tag: str, schema: str) -> dict[str, Any]:
        return {
            "tags": [tag],
            "operationId": f"get_{tag}",
            "summary": f"List the {tag}s",
            "parameters": [
                {"name": "depth", "in": "query", "schema": {"type": "integer", "minimum": 0}}
            ],
            "responses": {
                "200": {
                    "description": f"The {tag}s",
                    "content": {
                        "application/json": {"schema": {"type": "array", "items": {"$ref": schema}}}
                    },
                },
                "401": {"description": "No valid token"},
            },
        }

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Cookies", "version": "0.1.0"},
        "servers": [{"url": server}],
        "paths": {
            "/cookie": {"get": listing("cookie", "#/components/schemas/Cookie")},
            "/jar": {"get": listing("jar", "#/components/schemas/Jar")},
        },
        "components": {
            "schemas": {
                "Cookie": cookie,
                "Jar": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                },
            }
        },
    }
    if bearer:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        document["security"] = [{"bearer": []}]
    return document


def hand_written_app(database: str, *, prefix: str = "", auth: JWTAuth | None = None) -> Flask:
    """The cookies example's resources, a hand-written document at
    ``<prefix>/openapi.json`` and the docs page at ``<prefix>/docs``, on a
    blueprint mounted at ``prefix``."""
    engine = Engine(cookies.dm, PeeweeStorage(database))
    engine.post("jar", {"name": "blue", "cookies": [{"type": "biscuit"}]})
    app = Flask(__name__)
    blueprint = Blueprint("cookies", __name__)
    api = Api(blueprint, engine=engine, auth=auth)
    api.add_resource(cookies.JarResource, "/jar")
    api.add_resource(cookies.CookieResource, "/cookie")
    document = hand_written_document(prefix or "/", bearer=auth is not None)
    blueprint.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document))
    docs_page.register(blueprint)
    app.register_blueprint(blueprint, url_prefix=prefix or None)
    return app


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], str]]:
    """Serves an app on a free port of 127.0.0.1 in a thread; gives its base URL."""
    servers = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- the routes, over the test client -------------------------------------------


def page_urls(html: str) -> list[str]:
    """The URLs the page loads (stylesheets, icons, scripts), as written in it."""
    return re.findall(r'(?:href|src)="([^"]+)"', html)


@pytest.mark.parametrize(
    ("make_app", "page"),
    [
        (lambda: Flask("plain"), "/docs"),
        (lambda: Flask("prefixed"), "/api/docs"),
        (lambda: "blueprint", "/v1/api/docs"),
    ],
    ids=["app", "api-prefix", "blueprint"],
)
def test_the_page_and_its_files(make_app: Callable[[], Any], page: str) -> None:
    """The page names its files by URLs relative to its own, and they answer
    with their type and a year of caching; ``openapi.json`` is next to the page."""
    made = make_app()
    prefix = "/api" if page != "/docs" else ""
    if made == "blueprint":
        app = Flask("bp")
        blueprint = Blueprint("v1", __name__)
        Api(blueprint, prefix="/api", openapi=True)
        app.register_blueprint(blueprint, url_prefix="/v1")
    else:
        app = made
        Api(app, prefix=prefix, openapi=True)
    client = app.test_client()
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    assert "<script>" not in html and "http" not in html  # no inline script, no CDN
    assert re.search(r'data-url="openapi.json"', html)
    assert urljoin(page, "openapi.json") == page.removesuffix("docs") + "openapi.json"
    types = {}
    for url in page_urls(html):
        path = urljoin(page, url)
        assert path.startswith(page + "/"), path
        loaded = client.get(path)
        assert loaded.status_code == 200, path
        assert loaded.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert loaded.headers["X-Content-Type-Options"] == "nosniff"
        types[path.rsplit("/", 1)[1]] = loaded.headers["Content-Type"]
    assert types == {
        "swagger-ui.css": "text/css; charset=utf-8",
        "index.css": "text/css; charset=utf-8",
        "favicon-32x32.png": "image/png",
        "favicon-16x16.png": "image/png",
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "docs-page.js": "text/javascript; charset=utf-8",
    }


def file_url(client: Any, page: str, name: str) -> str:
    html = client.get(page).get_data(as_text=True)
    [url] = [url for url in page_urls(html) if url.endswith("/" + name)]
    return urljoin(page, url)


def test_the_files_are_gzipped_for_browsers_that_take_it() -> None:
    app = Flask(__name__)
    Api(app, openapi=True)
    client = app.test_client()
    url = file_url(client, "/docs", "swagger-ui-bundle.js")
    plain = client.get(url)
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"
    assert b"SwaggerUIBundle" in plain.data
    packed = client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert len(packed.data) < len(plain.data) / 2
    assert gzip.decompress(packed.data) == plain.data
    assert packed.headers["ETag"] != plain.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": plain.headers["ETag"]})
    assert (again.status_code, again.data) == (304, b"")
    icon = client.get(
        file_url(client, "/docs", "favicon-16x16.png"), headers={"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in icon.headers and icon.data.startswith(b"\x89PNG")


def test_the_initializer_keeps_the_document_to_itself() -> None:
    """No validator badge (nothing sent to validator.swagger.io), no top bar to
    load another document, "Try it out" a click away."""
    app = Flask(__name__)
    Api(app, openapi=True)
    client = app.test_client()
    script = client.get(file_url(client, "/docs", "docs-page.js")).get_data(as_text=True)
    assert "validatorUrl: null" in script
    assert 'layout: "BaseLayout"' in script
    assert "tryItOutEnabled: false" in script


@pytest.mark.parametrize(
    "path",
    [
        "swagger-ui.js",  # in the package, not loaded by the page
        "swagger-initializer.js",
        "../../../setup.py",
        "..%2F..%2F..%2Fsetup.py",
        "%2e%2e/%2e%2e/%2e%2e/setup.py",
        "/etc/passwd",
        "static/swagger-ui.css",
        "swagger-ui.css/",
        "SWAGGER-UI.CSS",
    ],
)
def test_unknown_files_are_a_json_404(path: str) -> None:
    """Only the page's files are served: by name, never by a path on the disk."""
    app = Flask(__name__)
    Api(app, prefix="/api", openapi=True)
    client = app.test_client()
    token = file_url(client, "/api/docs", "swagger-ui.css").split("/")[-2]
    # Werkzeug first merges "//" by a redirect.
    response = client.get(f"/api/docs/{token}/{path}", follow_redirects=True)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"
    assert b"setuptools" not in response.data and b"root:" not in response.data


def test_the_files_of_another_token_are_a_json_404() -> None:
    app = Flask(__name__)
    Api(app, openapi=True)
    client = app.test_client()
    url = file_url(client, "/docs", "swagger-ui.css")
    token = url.split("/")[-2]
    response = client.get(url.replace(token, "0" * len(token)))
    assert response.status_code == 404
    assert response.get_json() == {
        "error": {
            "code": "NOT_FOUND",
            "message": f"The docs page has no file {'0' * len(token)}/swagger-ui.css.",
            "details": {},
        }
    }


def test_the_page_takes_get_only() -> None:
    app = Flask(__name__)
    Api(app, openapi=True)
    client = app.test_client()
    response = client.post("/docs")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    head = client.head("/docs")
    assert (head.status_code, head.data) == (200, b"")


def test_the_page_needs_no_token() -> None:
    """With an API that requires a token, the page and its files need none."""
    app = Flask(__name__)
    api = Api(app, auth=JWTAuth(KEY, required=True), openapi=True)
    api.add_resource(cookies.CookieResource, "/cookie")
    client = app.test_client()
    assert client.get("/cookie").status_code == 401
    assert client.get("/docs").status_code == 200
    assert client.get(file_url(client, "/docs", "docs-page.js")).status_code == 200


@pytest.mark.parametrize(
    ("openapi", "setting", "served"),
    [(None, None, False), (None, True, True), (True, None, True), (False, True, False)],
)
def test_openapi_or_the_setting_serve_the_page(
    openapi: bool | None, setting: bool | None, served: bool
) -> None:
    """``Api(openapi=...)`` decides; left out, ``BACKO_OPENAPI`` does (off by default)."""
    app = Flask(__name__)
    if setting is not None:
        app.config["BACKO_OPENAPI"] = setting
    api = Api(app, openapi=openapi)
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert ("/docs" in rules, "/openapi.json" in rules) == (served, served)
    with app.app_context():
        assert api.settings()["BACKO_OPENAPI"] is served
    response = app.test_client().get("/docs")
    assert response.status_code == (200 if served else 404)


def test_the_setting_is_read_when_the_blueprint_is_registered() -> None:
    blueprint = Blueprint("late", __name__)
    Api(blueprint)
    app = Flask(__name__)
    app.config["BACKO_OPENAPI"] = True
    app.register_blueprint(blueprint, url_prefix="/late")
    assert app.test_client().get("/late/docs").status_code == 200


def test_the_page_is_the_same_for_two_apis_of_one_app() -> None:
    app = Flask(__name__)
    Api(app, prefix="/one", openapi=True)
    Api(app, prefix="/two", openapi=True)
    client = app.test_client()
    one, two = client.get("/one/docs"), client.get("/two/docs")
    assert one.status_code == two.status_code == 200
    assert one.data == two.data


def test_without_swagger_ui_py_the_page_fails_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing package is told when the page is added, not at the first visit."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "swagger_ui" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    docs_page._files.cache_clear()
    try:
        with pytest.raises(DeclarationError, match=r"pip install swagger-ui-py"):
            Api(Flask(__name__), openapi=True)
    finally:
        monkeypatch.undo()
        docs_page._files.cache_clear()
    assert Path(docs_page.swagger_ui_folder(), "swagger-ui-bundle.js").is_file()


# --- in a browser -----------------------------------------------------------------


def _browser_missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium, its console log kept."""
    missing = _browser_missing()
    if missing and IN_CI:
        pytest.fail(f"The browser tests need a browser: {missing}")
    if missing:
        pytest.skip(missing)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


class DocsPage:
    """The docs page open in the browser, as a visitor uses it."""

    def __init__(self, driver: Any, url: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.wait = WebDriverWait(driver, WAIT)
        driver.get_log("browser")  # forget what earlier pages logged
        driver.delete_all_cookies()
        driver.get(url)
        self.wait.until(lambda d: d.find_elements("css selector", ".opblock"))

    def find(self, selector: str, within: Any = None) -> Any:
        """The element ``selector`` names, once it is visible."""
        from selenium.webdriver.support import expected_conditions as ec

        root = within or self.driver
        self.wait.until(lambda _: root.find_elements("css selector", selector))
        element = root.find_element("css selector", selector)
        self.wait.until(ec.visibility_of(element))
        return element

    def click(self, selector: str, within: Any = None) -> None:
        element = self.find(selector, within)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def operations(self) -> list[str]:
        """``METHOD path`` of each operation the page lists."""
        return [
            " ".join(
                block.find_element("css selector", selector).text
                for selector in (".opblock-summary-method", ".opblock-summary-path")
            )
            for block in self.driver.find_elements("css selector", ".opblock")
        ]

    def execute(self, method: str, path: str) -> tuple[str, str]:
        """Open the operation, "Try it out", "Execute": the status and body the
        page then shows."""
        [block] = [
            block
            for block in self.driver.find_elements("css selector", f".opblock-{method.lower()}")
            if block.find_element("css selector", ".opblock-summary-path").text == path
        ]
        if "is-open" not in block.get_attribute("class"):
            self.click(".opblock-summary-control", block)
        self.find(".try-out__btn", block)  # the opened block is drawn
        if not block.find_elements("css selector", ".try-out__btn.cancel"):
            self.click(".try-out__btn", block)
        before = len(block.find_elements("css selector", ".live-responses-table"))
        self.click("button.execute", block)
        self.wait.until(
            lambda _: (
                len(block.find_elements("css selector", ".live-responses-table")) > before
                or block.find_elements("css selector", ".live-responses-table .response-col_status")
            )
        )
        table = self.find(".live-responses-table tbody", block)
        status = self.find(".response-col_status", table).text
        body = self.find(".response-col_description pre", table).text
        return status, body

    def authorize(self, token: str) -> None:
        self.click(".auth-wrapper button.authorize")
        modal = self.find(".modal-ux")
        self.find("input", modal).send_keys(token)
        self.click(".auth-btn-wrapper button[type=submit]", modal)
        self.click(".auth-btn-wrapper button.btn-done", modal)
        self.wait.until(lambda d: not d.find_elements("css selector", ".modal-ux"))

    def console_errors(self) -> list[dict[str, Any]]:
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_the_docs_page_in_a_browser(
    browser: Any, serve: Callable[[Flask], str], tmp_path: Path, prefix: str
) -> None:
    """The page loads with no console error, lists the operations, and "Try it
    out" on ``GET /cookie`` shows the cookies."""
    app = hand_written_app(f"sqlite:///{tmp_path / 'cookies.db'}", prefix=prefix)
    page = DocsPage(browser, serve(app) + f"{prefix}/docs")
    assert page.operations() == ["GET /cookie", "GET /jar"]
    assert browser.title == "Cookies - docs"
    assert page.find(".info .title").text.startswith("Cookies")
    assert not browser.find_elements("css selector", ".topbar, .swagger-ui img[src*=validator]")
    status, body = page.execute("GET", "/cookie")
    assert status == "200"
    assert '"type": "biscuit"' in body
    assert page.console_errors() == []


def test_the_authorize_button_in_a_browser(
    browser: Any, serve: Callable[[Flask], str], tmp_path: Path
) -> None:
    """With a bearer scheme, "Try it out" is a 401 until the visitor gives a
    token with "Authorize"."""
    auth = JWTAuth(KEY, required=True)
    app = hand_written_app(f"sqlite:///{tmp_path / 'cookies.db'}", prefix="/v1", auth=auth)
    page = DocsPage(browser, serve(app) + "/v1/docs")
    status, body = page.execute("GET", "/cookie")
    assert status == "401"
    assert '"code": "UNAUTHORIZED"' in body
    page.authorize(auth.create_token({"sub": 1}))
    status, body = page.execute("GET", "/cookie")
    assert status == "200"
    assert '"type": "biscuit"' in body
    # The browser logs the refused try as a failed load: the only error.
    [error] = page.console_errors()
    assert error["message"].endswith(
        "/v1/cookie - Failed to load resource: the server responded with a status of 401 "
        "(UNAUTHORIZED)"
    )


def test_the_example_docs_page_in_a_browser(
    browser: Any, serve: Callable[[Flask], str], tmp_path: Path
) -> None:
    """The cookies example's own page, on its generated document."""
    pytest.importorskip("backo_restful.api.openapi")
    app = cookies.create_app(f"sqlite:///{tmp_path / 'cookies.db'}")
    app.test_client().post("/cookie", json={"type": "biscuit"})
    page = DocsPage(browser, serve(app) + "/docs")
    assert {"GET /cookie", "POST /cookie", "GET /jar"} <= set(page.operations())
    status, body = page.execute("GET", "/cookie")
    assert status == "200"
    assert '"type": "biscuit"' in body
    assert page.console_errors() == []
