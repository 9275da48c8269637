"""The micro-batcher inside kefu: behind a real (tiny) model, and shedding load in the app.

The batcher's own rules (coalescing, length groups, order, queue bound, failures, shutdown) are
tested with a stand-in model in `test_serving_batcher.py`.
"""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.classifier import Classifier
from kefu.serving.server.app import create_app
from kefu.serving.server.microbatch import MicroBatcher


def test_real_model_behind_the_batcher_matches_single_predictions(tiny_bundle):
    classifier = Classifier.from_bundle(tiny_bundle, intra_op_threads=1)
    texts = [
        "在吗",
        "我的快递三天没动了，急用！",
        "发票",
        "你们卖假货，我要打12315投诉你们" * 2,
        "谢谢",
    ]

    async def scenario():
        batcher = MicroBatcher(classifier.predict, max_batch_size=3, max_wait_ms=1)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([text]) for text in texts))
        await batcher.close()
        return [result[0] for result in results]

    for text, prediction in zip(texts, asyncio.run(scenario()), strict=True):
        alone = classifier.predict([text])[0]
        assert prediction.intent.label == alone.intent.label
        assert prediction.intent.confidence == pytest.approx(alone.intent.confidence, abs=1e-6)
        assert prediction.emotion.confidence == pytest.approx(alone.emotion.confidence, abs=1e-6)


def test_http_overload_is_a_503_with_retry_after_and_the_server_keeps_serving(tiny_bundle):
    settings = isolated_settings(tiny_bundle, max_batch=2, queue_size=2, retry_after_seconds=2)
    app = create_app(settings)
    two = {"messages": [{"text": "在吗"}, {"text": "发票"}]}
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        batcher = app.state.kefu.models.current.batcher
        gate = threading.Event()
        batcher._executor.submit(gate.wait, 5)  # hold the inference thread
        first = pool.submit(client.post, "/v1/classify", json=two)
        wait_for(lambda: batcher.in_flight == 2)
        second = pool.submit(client.post, "/v1/classify", json=two)
        wait_for(lambda: batcher.depth == 2)
        refused = client.post("/v1/classify", json={"text": "在吗"})
        gate.set()
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "2"
        assert refused.json() == {
            "error": {
                "code": "overloaded",
                "message": "server busy: the model's queue is full; retry after a short pause",
                "field": None,
            }
        }
        assert first.result().status_code == 200
        assert second.result().status_code == 200
        assert client.post("/v1/classify", json={"text": "在吗"}).status_code == 200


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_a_full_queue_refuses_before_reading_the_body(tiny_bundle):
    # the shed path answers from the request head: even a malformed body gets the 503, not a 400
    settings = isolated_settings(tiny_bundle, max_batch=2, queue_size=2)
    app = create_app(settings)
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        batcher = app.state.kefu.models.current.batcher
        gate = threading.Event()
        batcher._executor.submit(gate.wait, 5)
        first = pool.submit(client.post, "/v1/classify", json={"messages": [{"text": "a"}] * 2})
        wait_for(lambda: batcher.in_flight == 2)
        second = pool.submit(client.post, "/v1/classify", json={"messages": [{"text": "b"}] * 2})
        wait_for(lambda: batcher.depth == 2)
        refused = client.post(
            "/v1/classify", content=b"{not json", headers={"content-type": "application/json"}
        )
        model_info = client.get("/v1/model")  # only POST /v1/classify is shed
        gate.set()
        assert (model_info.status_code, model_info.json()["model_version"]) == (200, "tiny-0")
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "overloaded")
        assert first.result().status_code == second.result().status_code == 200


def test_queued_work_of_a_client_that_hung_up_is_dropped_before_inference(tiny_bundle):
    app = create_app(isolated_settings(tiny_bundle))
    metrics = app.state.kefu.metrics
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        batcher = app.state.kefu.models.current.batcher
        batches_before = metrics.batch_size._sum.get()
        gate = threading.Event()
        batcher._executor.submit(gate.wait, 5)  # hold the inference thread
        served = pool.submit(client.post, "/v1/classify", json={"text": "在吗"})
        wait_for(lambda: batcher.in_flight == 1)

        async def hung_up() -> list[dict]:
            """A raw ASGI request whose client disconnects while its message is queued."""
            gone, sent, calls = asyncio.Event(), [], []

            async def receive():
                calls.append(1)
                if len(calls) == 1:
                    return {"type": "http.request", "body": b'{"text": "x"}', "more_body": False}
                await gone.wait()
                return {"type": "http.disconnect"}

            async def send(message):
                sent.append(message)

            scope = {
                "type": "http",
                "method": "POST",
                "path": "/v1/classify",
                "raw_path": b"/v1/classify",
                "headers": [(b"content-type", b"application/json")],
                "query_string": b"",
                "http_version": "1.1",
                "scheme": "http",
                "server": ("test", 80),
                "client": ("test", 1),
                "root_path": "",
            }
            request = asyncio.create_task(app(scope, receive, send))
            while batcher.depth != 1:
                await asyncio.sleep(0.001)
            gone.set()
            await request
            return sent

        sent = client.portal.call(hung_up)
        gate.set()
        assert served.result().status_code == 200
    assert sent == []  # nothing was answered to nobody
    assert metrics.requests.labels("/v1/classify", "POST", "499")._value.get() == 1
    assert metrics.requests.labels("/v1/classify", "POST", "500")._value.get() == 0
    assert metrics.batch_size._sum.get() - batches_before == 1  # only the served message ran


def test_the_lone_session_gives_the_same_predictions_as_the_shared_one(tiny_bundle):
    classifier = Classifier.from_bundle(tiny_bundle, intra_op_threads=1, lone_threads=2)
    assert classifier.lone_session is not classifier.session is not None
    texts = ["在吗", "我的快递三天没动了，急用！", "你们卖假货，我要投诉"]
    for text in texts:
        shared, lone = classifier.predict([text])[0], classifier.predict([text], lone=True)[0]
        for head in ("intent", "urgency", "emotion"):
            assert lone.heads[head].label == shared.heads[head].label
            assert lone.heads[head].confidence == pytest.approx(
                shared.heads[head].confidence, abs=1e-5
            )
    assert (
        Classifier.from_bundle(tiny_bundle, intra_op_threads=2, lone_threads=2).lone_session is None
    )
