"""Which exposition format a `/metrics` scrape gets: what its Accept header prefers.

prometheus-client's `choose_encoder` knows the formats (OpenMetrics 1.0.0, Prometheus text
1.0.0 and 0.0.4, with their `escaping`), but takes the first one it knows in the order the
header is written and never stops at classic text: `text/plain;version=0.0.4;q=0.5,
application/openmetrics-text;q=0.2` would get OpenMetrics. Here the media ranges are ranked by
their `q` (equal ones keep their order, q=0 is "not acceptable"), and the ranking stops at the
first range the classic text format (0.0.4) answers (`text/plain` of version 0.0.4 or none,
`text/*`, `*/*`): `choose_encoder` then picks among what the scraper prefers to it, and gives
0.0.4 when that is nothing. Prometheus 2 and 3 list OpenMetrics first and get it; a scraper of
the classic format (or curl, `*/*`) gets `text/plain; version=0.0.4`.

A range naming a version prometheus-client does not write is not acceptable as written and is
left out: `choose_encoder` would answer `application/openmetrics-text; version=9.9.9` with
OpenMetrics 1.0.0 labelled 9.9.9, and `text/plain; version=7.0.0` with text 1.0.0, which the
scraper did not ask for. The scraper gets its next acceptable range instead, else 0.0.4.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

Encoder = Callable[[Collector], bytes]
OPENMETRICS = "application/openmetrics-text"  # the media type, as /openapi.json declares it
_CLASSIC_RANGES = {"text/plain", "text/*", "*/*"}
# the versions prometheus-client writes (its CONTENT_TYPE_* constants), by media type
_WRITTEN_VERSIONS = {OPENMETRICS: {"1.0.0"}, "text/plain": {"1.0.0", "0.0.4"}}


def scrape_format(accept: str | None) -> tuple[Encoder, str]:
    """The encoder and Content-Type answering a scrape that sent `accept` (None: no header)."""
    ranges = [_parsed(entry) for entry in (accept or "").split(",") if entry.strip()]
    ranked = sorted(
        (parsed for parsed in ranges if parsed is not None and parsed[0] > 0),
        key=lambda parsed: -parsed[0],
    )
    preferred = []
    for _, entry, classic in ranked:
        preferred.append(entry)
        if classic:
            break
    return choose_encoder(",".join(preferred))


def scrape_body(body: bytes, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
    """The body gzipped when the scraper accepts gzip, as prometheus-client's own servers answer
    (Prometheus always asks: every histogram bucket is a line, and the text shrinks about
    tenfold), with the headers that say so."""
    headers = {"Vary": "Accept-Encoding"}
    if gzip_accepted(accept_encoding or ""):
        return gzip.compress(body), headers | {"Content-Encoding": "gzip"}
    return body, headers


def _parsed(entry: str) -> tuple[float, str, bool] | None:
    """(q, the range, whether `choose_encoder` answers it with the 0.0.4 text format); None for
    a range of OpenMetrics or text naming a version prometheus-client does not write."""
    media_type, *parameters = (part.strip() for part in entry.split(";"))
    pairs = (parameter.split("=", 1) for parameter in parameters if "=" in parameter)
    named = {key.strip().lower(): value.strip() for key, value in pairs}
    version = named.get("version", "")
    media_type = media_type.lower()
    if version and version not in _WRITTEN_VERSIONS.get(media_type, {version}):
        return None
    try:
        quality = float(named.get("q", "1"))
    except ValueError:
        quality = 1.0  # unreadable: taken as absent, as lenient servers do
    modern = media_type == "text/plain" and version == "1.0.0"
    return quality, entry, media_type in _CLASSIC_RANGES and not modern
