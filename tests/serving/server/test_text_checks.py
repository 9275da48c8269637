"""A served text is checked once: by the request checks, which answer with the API's field
paths, not again by the deployment; a direct Python caller of the deployment keeps its checks."""

import pytest

from kefu.errors import InputError
from kefu.serving import inputs
from kefu.serving.normalize import has_content
from kefu.serving.server import handlers

TEXTS = ["我的快递三天没动了", "退款怎么还没到账", "转人工"]


@pytest.fixture
def checked(monkeypatch):
    """The texts `has_content` is asked about, by the server's checks and by the Python API's."""
    asked: list[str] = []

    def counting(text: str) -> bool:
        asked.append(text)
        return has_content(text)

    for module in (handlers, inputs):
        monkeypatch.setattr(module, "has_content", counting)
    return asked


def test_each_text_of_a_request_is_checked_once(client, checked):
    response = client.post("/v1/classify", json={"messages": [{"text": t} for t in TEXTS]})
    assert response.status_code == 200
    assert [result["id"] for result in response.json()["results"]] == ["0", "1", "2"]
    assert sorted(checked) == sorted(TEXTS)


def test_the_deployment_still_checks_the_texts_of_a_direct_caller(client, checked):
    deployment = client.app.state.kefu.models.require().deployment
    with pytest.raises(InputError) as refused:
        deployment.triage(["在吗", " \u200b "])
    assert (refused.value.code, refused.value.field) == ("empty_text", "texts[1]")
    assert checked == ["在吗", " \u200b "]
