"""A bundle trained without urgency/emotion labels: those heads say nothing and route nothing."""

from fastapi.testclient import TestClient
from support.serving import copy_bundle, isolated_settings

from kefu.serving.server.app import create_app


def untrained_copy(tiny_bundle, tmp_path):
    return copy_bundle(
        tiny_bundle, tmp_path / "intent-only", untrained_heads=["urgency", "emotion"]
    )


def test_untrained_heads_return_no_label_and_never_drive_routing(tiny_bundle, tmp_path):
    settings = isolated_settings(untrained_copy(tiny_bundle, tmp_path))
    texts = [
        "我的快递三天没动了",
        "你们卖假货，我要打12315投诉你们",
        "在吗",
        "退款怎么还没到账！！",
    ]
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/classify", json={"messages": [{"text": t} for t in texts]})
        info = client.get("/v1/model").json()
    assert response.status_code == 200, response.text
    for result in response.json()["results"]:
        for head in ("urgency", "emotion"):
            assert result[head] == {
                "label": None,
                "name": None,
                "confidence": None,
                "abstain": True,
                "top": [],
            }
        assert result["intent"]["label"] is not None
        route = result["route"]
        assert not {"critical_urgency", "angry", "high_urgency_negative"} & set(route["reasons"])
        assert route["priority"] == "P2"  # no urgency: the ordinary priority
        if route["action"] == "clarify":  # only the intent's own doubt may ask the customer
            assert result["intent"]["abstain"]
    assert info["manifest"]["untrained_heads"] == ["urgency", "emotion"]
