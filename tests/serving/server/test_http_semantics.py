"""What probes, scrapers and hand-written clients meet beyond the endpoints themselves: HEAD
wherever GET is answered, a trailing slash answered with the JSON 404 naming the path without
it (never a redirect), and /metrics in the format the scraper's Accept header prefers. In the
app, then over a real `kefu serve`."""

import re

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic
from support.serving import JSON, Server, connect, copy_bundle, error, isolated_settings

from kefu.serving.server.app import create_app

API_KEY = "semantics-key"
GET_PATHS = ["/healthz", "/readyz", "/metrics", "/v1/model", "/docs", "/openapi.json"]
# Accept headers as the scrapers send them
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_1 = (  # and Prometheus 2 before OpenMetrics: protobuf, which kefu does not write
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
    "q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
)
CLASSIC_FIRST = (  # Prometheus 3 with scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]
    "text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=1.0.0;q=0.2,*/*;q=0.1"
)
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
TEXT_1_0_0 = "text/plain; version=1.0.0; charset=utf-8"
JSON_TYPE = "application/json"
SCRAPES = [
    ("Prometheus 3", PROMETHEUS_3, OPENMETRICS + "; escaping=allow-utf-8"),
    ("Prometheus 2", PROMETHEUS_2, OPENMETRICS + "; escaping=underscores"),
    ("Prometheus 1", PROMETHEUS_1, TEXT_0_0_4),
    ("classic text preferred", CLASSIC_FIRST, TEXT_0_0_4),
    ("vmagent", "text/plain;version=0.0.4;q=1,*/*;q=0.1", TEXT_0_0_4),
    ("text 1.0.0", "text/plain;version=1.0.0", TEXT_1_0_0 + "; escaping=underscores"),
    ("curl", "*/*", TEXT_0_0_4),
    ("a browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", TEXT_0_0_4),
    ("no header", None, TEXT_0_0_4),
    ("OpenMetrics refused", "application/openmetrics-text;q=0,*/*;q=0.1", TEXT_0_0_4),
    ("an unreadable version", "text/plain;version=one", TEXT_0_0_4),
    # a version prometheus-client does not write is not acceptable: the next range, else 0.0.4
    ("an unknown OpenMetrics version", "application/openmetrics-text; version=9.9.9", TEXT_0_0_4),
    ("an unknown text version", "text/plain; version=7.0.0", TEXT_0_0_4),
    (
        "an unknown version, then text 1.0.0",
        "application/openmetrics-text;version=2.0.0,text/plain;version=1.0.0;q=0.5",
        TEXT_1_0_0 + "; escaping=underscores",
    ),
    (
        "an unknown text version, then OpenMetrics",
        "text/plain;version=0.0.5,application/openmetrics-text;version=1.0.0;q=0.5",
        OPENMETRICS + "; escaping=underscores",
    ),
]


@pytest.fixture(scope="module")
def client(tiny_bundle):
    settings = isolated_settings(tiny_bundle, api_keys=[API_KEY])
    with TestClient(create_app(settings), headers={"X-API-Key": API_KEY}) as test_client:
        yield test_client


def without_request_id(headers: httpx.Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name != "x-request-id"}


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_answers_as_get_does_without_a_body(client, path):
    head, get = client.head(path), client.get(path)
    assert (head.status_code, head.content) == (200, b"")
    if path == "/metrics":  # the scrape counts the HEAD just made: one more series, other sizes
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-type"].startswith("text/plain; version=")
        assert int(head.headers["content-length"]) > 0
    else:
        assert without_request_id(head.headers) == without_request_id(get.headers)
        assert int(head.headers["content-length"]) == len(get.content)
    assert len(head.headers["x-request-id"]) == 32


def test_head_needs_what_get_needs_and_is_counted_as_head(client):
    refused = client.head("/v1/model", headers={"X-API-Key": "wrong"})
    assert (refused.status_code, refused.content) == (401, b"")
    assert refused.headers["content-type"] == "application/json"
    before = requests_counted(client, "/healthz", "HEAD", "200")
    client.head("/healthz")
    assert requests_counted(client, "/healthz", "HEAD", "200") == before + 1
    assert requests_counted(client, "/v1/model", "HEAD", "401") >= 1


def requests_counted(client, route: str, method: str, status: str) -> float:
    wanted = {"route": route, "method": method, "status": status}
    for family in classic(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "kefu_requests_total" and sample.labels == wanted:
                return sample.value
    return 0.0


def test_the_schema_lists_no_head_operation(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {method for operations in paths.values() for method in operations} == {"get", "post"}


def test_a_405_allows_head_wherever_it_allows_get(client):
    wrong = client.post("/healthz", json={})
    assert (wrong.status_code, wrong.headers["allow"], wrong.json()) == (
        405,
        "GET, HEAD",
        error("method_not_allowed", "POST is not allowed on /healthz"),
    )
    head = client.head("/v1/classify")
    assert (head.status_code, head.headers["allow"]) == (405, "POST")


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/v1/classify/", "/v1/classify"),
        ("GET", "/healthz/", "/healthz"),
        ("GET", "/v1/model//", "/v1/model"),
        ("GET", "/openapi.json/", "/openapi.json"),
        ("GET", "/docs/", "/docs"),
    ],
)
def test_a_trailing_slash_is_a_404_naming_the_path_without_it(client, method, path, endpoint):
    response = client.request(method, path, json={"text": "在吗"}, follow_redirects=False)
    assert (response.status_code, response.json()) == (
        404,
        error(
            "not_found",
            f"no endpoint at {path}; the endpoint is {endpoint}, without the trailing slash",
        ),
    )
    assert "location" not in response.headers


def test_a_trailing_slash_on_no_endpoint_is_the_plain_404(client):
    for path in ("/nowhere/", "/v1/"):
        response = client.get(path)
        assert (response.status_code, response.json()) == (
            404,
            error("not_found", f"no endpoint at {path}; see /docs"),
        )


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_docs_page_and_its_files_take_no_trailing_slash(client, method):
    """/docs and each file its page loads answer as every other path: with a trailing slash, the
    JSON 404 naming the path without it (a file was once served there as if the slash were not)."""
    files = re.findall(r'"(/docs/assets/[^"]+)"', client.get("/docs").text)
    assert len(files) == 3  # Swagger UI's script and style sheet, and the icon
    for path in ["/docs", *files]:
        assert client.request(method, path).status_code == 200
        response = client.request(method, path + "/")
        assert (response.status_code, response.headers["content-type"]) == (404, JSON_TYPE)
        if method == "GET":
            assert response.json() == error(
                "not_found",
                f"no endpoint at {path}/; the endpoint is {path}, without the trailing slash",
            )
        refused = client.post(path)
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")
        assert refused.json() == error("method_not_allowed", f"POST is not allowed on {path}")


@pytest.mark.parametrize(
    "path",
    [
        "/redoc",  # FastAPI's other docs pages, not served
        "/redoc/",
        "/docs/oauth2-redirect",
        "/docs/oauth2-redirect/",
        "/docs/assets",
        "/docs/assets/",
        "/docs/assets/none.js",
        "/docs/assets/none.js/",
        "/docs/assets/index.html",  # the package's demo page, which loads an API from the web
        "/docs/assets/swagger-ui.js",  # files of the package the page does not load
        "/docs/assets/swagger-ui.css.map",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_a_docs_path_with_no_page_or_file_is_the_plain_404(client, method, path):
    response = client.request(method, path)
    assert (response.status_code, response.headers["content-type"]) == (404, JSON_TYPE)
    if method != "HEAD":
        assert response.json() == error("not_found", f"no endpoint at {path}; see /docs")


@pytest.mark.parametrize(("scraper", "accept", "content_type"), SCRAPES)
def test_a_scrape_gets_the_format_its_accept_header_prefers(client, scraper, accept, content_type):
    client.get("/healthz")  # a request counted, whichever test ran before
    if accept is None:
        del client.headers["Accept"]  # httpx's default, */*
    try:
        response = client.get("/metrics", headers={} if accept is None else {"Accept": accept})
    finally:
        client.headers["Accept"] = "*/*"
    assert (response.status_code, response.headers["content-type"]) == (200, content_type)
    # each parser refuses what is not its format (OpenMetrics: a body without "# EOF")
    parse = openmetrics if content_type.startswith("application/openmetrics-text") else classic
    families = {family.name: family for family in parse(response.text)}
    assert {sample.name for sample in families["kefu_requests"].samples} == {"kefu_requests_total"}


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    work = tmp_path_factory.mktemp("semantics")
    running = Server(copy_bundle(tiny_bundle, work / "bundle"), work / "server.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_over_uvicorn_head_has_no_body_on_the_wire(server):
    """A HEAD then a GET on one kept-alive connection: the GET's status line follows the
    HEAD's headers at once (a body in between would be read as the next response)."""
    with connect(server.port) as sock:
        sock.sendall(
            b"HEAD /healthz HTTP/1.1\r\nHost: kefu\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: kefu\r\n\r\n"
        )
        data = b""
        while data.count(b"\r\n\r\n") < 2 or not data.endswith(b'{"status":"ok"}'):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    head_answer, get_answer = data.split(b"\r\n\r\n", 1)
    assert head_answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 15\r\n" in head_answer.lower() + b"\r\n"
    assert get_answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert get_answer.endswith(b'\r\n\r\n{"status":"ok"}')


def test_over_uvicorn_a_trailing_slash_is_not_redirected(server):
    response = httpx.post(
        f"{server.url}/v1/classify/", content='{"text": "在吗"}'.encode(), headers=JSON, timeout=10
    )
    assert (response.status_code, response.json()) == (
        404,
        error(
            "not_found",
            "no endpoint at /v1/classify/; the endpoint is /v1/classify, without the trailing "
            "slash",
        ),
    )
    assert response.headers["content-type"] == "application/json"


def test_over_uvicorn_a_docs_file_takes_no_trailing_slash(server):
    response = httpx.get(f"{server.url}/docs/assets/swagger-ui.css/", timeout=10)
    assert (response.status_code, response.json()) == (
        404,
        error(
            "not_found",
            "no endpoint at /docs/assets/swagger-ui.css/; the endpoint is "
            "/docs/assets/swagger-ui.css, without the trailing slash",
        ),
    )


@pytest.mark.parametrize(("scraper", "accept", "content_type"), SCRAPES[:3])
def test_over_uvicorn_scrapers_get_their_format(server, scraper, accept, content_type):
    response = httpx.get(f"{server.url}/metrics", headers={"Accept": accept}, timeout=10)
    assert (response.status_code, response.headers["content-type"]) == (200, content_type)
    head = httpx.head(f"{server.url}/metrics", headers={"Accept": accept}, timeout=10)
    assert (head.status_code, head.headers["content-type"]) == (200, content_type)


@pytest.mark.parametrize(("accept_encoding", "gzipped"), [("gzip", True), ("identity", False)])
def test_a_scrape_is_gzipped_when_the_scraper_accepts_it(client, accept_encoding, gzipped):
    response = client.get("/metrics", headers={"Accept-Encoding": accept_encoding})
    assert response.headers.get("content-encoding") == ("gzip" if gzipped else None)
    assert response.headers["vary"] == "Accept-Encoding"
    families = {family.name for family in classic(response.text)}  # httpx decodes the gzip
    assert "kefu_requests" in families


def test_over_uvicorn_prometheus_gets_its_scrape_gzipped(server):
    headers = {"Accept": PROMETHEUS_3, "Accept-Encoding": "gzip"}
    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert (response.status_code, response.headers["content-encoding"]) == (200, "gzip")
    assert response.num_bytes_downloaded * 3 < len(response.content)  # the text, compressed
    assert {family.name for family in openmetrics(response.text)} >= {"kefu_requests"}
