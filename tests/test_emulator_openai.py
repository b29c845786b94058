"""The OpenAI emulator: determinism, validation, the fault control API, and SDK conformance."""

from __future__ import annotations

import base64
import threading
import time
from io import BytesIO

import httpx
import imagehash
import pytest
from PIL import Image

from probes.emulator.faults import FAULTS, FaultBoard
from probes.emulator.images import render_image
from probes.emulator.server import EmulatorServer

AUTH = {"Authorization": "Bearer sk-test"}


def generate(emulator: EmulatorServer, **body) -> httpx.Response:
    body = {"model": "dall-e-3", "prompt": "a red apple", "response_format": "b64_json"} | body
    return httpx.post(f"{emulator.base_url('openai')}/images/generations", json=body, headers=AUTH, timeout=10)


def image_of(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["data"][0]["b64_json"])


# -- images -------------------------------------------------------------------------------


def test_same_prompt_and_seed_give_identical_bytes(emulator):
    assert image_of(generate(emulator, seed=1)) == image_of(generate(emulator, seed=1))


def test_different_seeds_give_different_pictures(emulator):
    first, second = (Image.open(BytesIO(image_of(generate(emulator, seed=s)))) for s in (1, 2))
    assert imagehash.phash(first) - imagehash.phash(second) >= 16


def test_render_image_is_deterministic_and_copies():
    a = render_image("p", 3, "m", 128, 96)
    a.paste((0, 0, 0), (0, 0, 128, 96))  # mutating a result must not poison the cache
    b, c = render_image("p", 3, "m", 128, 96), render_image("p", 3, "m", 128, 96)
    assert b.size == (128, 96) and b.tobytes() == c.tobytes() != a.tobytes()


# -- the API --------------------------------------------------------------------------------


def test_dalle3_response_shape(emulator):
    response = generate(emulator)
    payload = response.json()
    assert response.headers["x-request-id"].startswith("req_")
    assert isinstance(payload["created"], int) and len(payload["data"]) == 1
    assert payload["data"][0]["revised_prompt"] and "usage" not in payload


def test_gpt_image_response_shape(emulator):
    response = generate(emulator, model="gpt-image-1", response_format=None, size="1536x1024", output_format="webp")
    payload = response.json()
    assert payload["size"] == "1536x1024" and payload["output_format"] == "webp" and payload["usage"]["total_tokens"] > 0
    assert "revised_prompt" not in payload["data"][0]
    assert Image.open(BytesIO(image_of(response))).size == (1536, 1024)


def test_url_mode_serves_the_file(emulator):
    response = generate(emulator, response_format="url")
    url = response.json()["data"][0]["url"]
    assert url.startswith(emulator.url + "/openai/files/")
    file = httpx.get(url)
    assert file.status_code == 200 and file.headers["content-type"] == "image/png"


def test_expired_url_fault(emulator):
    emulator.faults.set("openai", "expired_url")
    url = generate(emulator, response_format="url").json()["data"][0]["url"]
    assert httpx.get(url).status_code == 404


@pytest.mark.parametrize(
    "body, status, param, code",
    [
        ({"prompt": None}, 400, "prompt", "missing_required_parameter"),
        ({"size": "512x512"}, 400, "size", "invalid_value"),
        ({"n": 2}, 400, "n", "integer_out_of_range"),
        ({"model": "gpt-image-1", "response_format": "b64_json"}, 400, "response_format", "unknown_parameter"),
        ({"model": "gpt-image-1", "response_format": None, "n": 11}, 400, "n", "integer_out_of_range"),
        ({"model": "dall-e-2", "prompt": "x" * 1001}, 400, "prompt", "string_above_max_length"),
        ({"model": "dall-e-2", "size": "auto"}, 400, "size", "invalid_value"),
        ({"colour": "red"}, 400, "colour", "unknown_parameter"),
        ({"model": "imagen-9"}, 400, "model", "invalid_value"),
    ],
)
def test_validation_like_the_real_api(emulator, body, status, param, code):
    response = generate(emulator, **body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


@pytest.mark.parametrize("authorization", [None, "sk-test", "Bearer", "Bearer a b", "Basic abc"])
def test_missing_or_garbled_key_is_401(emulator, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(f"{emulator.base_url('openai')}/images/generations", json={"prompt": "p"}, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_models_listing(emulator):
    response = httpx.get(f"{emulator.base_url('openai')}/models", headers=AUTH)
    payload = response.json()
    assert payload["object"] == "list" and "dall-e-3" in {m["id"] for m in payload["data"]}


def test_unknown_route_is_an_openai_404(emulator):
    response = httpx.get(f"{emulator.base_url('openai')}/nope", headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"


# -- fault control ----------------------------------------------------------------------------


def test_control_api(emulator):
    control = f"{emulator.url}/_faults"
    response = httpx.post(f"{control}/openai", json={"fault": "rate_limited", "retry_after": 9})
    assert response.status_code == 200
    assert response.json() == {"faults": {"openai": {"fault": "rate_limited", "retry_after": 9, "remaining": None}}}
    limited = generate(emulator)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "9"

    response = httpx.post(f"{control}/openai?fault=server_error&count=2")
    assert response.json()["faults"]["openai"] == {"fault": "server_error", "remaining": 2}
    assert httpx.get(control).json()["faults"]["openai"]["fault"] == "server_error"
    assert generate(emulator).status_code == 500
    assert httpx.get(control).json()["faults"]["openai"]["remaining"] == 1

    assert httpx.delete(f"{control}/openai").json() == {"faults": {}}
    httpx.post(f"{control}/openai?fault=hang")
    assert httpx.delete(control).json() == {"faults": {}}
    assert generate(emulator).status_code == 200


@pytest.mark.parametrize(
    "url, body, message",
    [
        ("/_faults/openai?fault=explode", None, "unknown fault 'explode' (known: server_error"),
        ("/_faults/openai", {"fault": "slow", "sconds": 2}, "does not take sconds"),
        ("/_faults/openai?fault=slow&seconds=soon", None, "seconds must be a float"),
        ("/_faults/openai?fault=server_error&count=0", None, "count must be at least 1"),
        ("/_faults/openai", None, "missing 'fault'"),
        ("/_faults/nobody?fault=server_error", None, "unknown provider 'nobody'"),
    ],
)
def test_control_api_rejects_bad_input(emulator, url, body, message):
    response = httpx.post(emulator.url + url, json=body) if body else httpx.post(emulator.url + url)
    assert response.status_code == 400 and message in response.json()["error"]
    assert emulator.faults.snapshot() == {}


def test_fault_board_lists_known_faults():
    board = FaultBoard()
    with pytest.raises(ValueError, match="known: " + ", ".join(FAULTS)):
        board.set("openai", "nope")
    board.set("openai", "slow", seconds="1.5", count="3")
    assert board.active("openai").params == {"seconds": 1.5} and board.active("openai").remaining == 3
    assert board.take("openai", {"server_error"}) is None and board.active("openai").remaining == 3


def test_stop_wakes_hung_requests():
    server = EmulatorServer().start()
    server.faults.set("openai", "hang")
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(generate(server).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)
    began = time.monotonic()
    server.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and outcome
    assert time.monotonic() - began < 2


# -- the official SDK ---------------------------------------------------------------------------


@pytest.fixture
def sdk(emulator):
    openai = pytest.importorskip("openai")
    return openai, openai.OpenAI(base_url=emulator.base_url("openai"), api_key="sk-test", max_retries=0, timeout=10)


@pytest.mark.sdk
def test_sdk_dalle3_b64(sdk):
    _, client = sdk
    result = client.images.generate(model="dall-e-3", prompt="a red apple", response_format="b64_json", size="1024x1792")
    image = Image.open(BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.format == "PNG" and image.size == (1024, 1792)
    assert result.data[0].revised_prompt


@pytest.mark.sdk
def test_sdk_gpt_image(sdk):
    _, client = sdk
    result = client.images.generate(model="gpt-image-1", prompt="a red apple", size="1024x1024", quality="low")
    assert Image.open(BytesIO(base64.b64decode(result.data[0].b64_json))).format == "PNG"
    assert result.usage.total_tokens > 0 and result.size == "1024x1024" and result.output_format == "png"


@pytest.mark.sdk
def test_sdk_content_policy(sdk, emulator):
    openai, client = sdk
    emulator.faults.set("openai", "content_policy")
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dall-e-3", prompt="a red apple", response_format="b64_json")
    assert caught.value.code == "content_policy_violation"


@pytest.mark.sdk
def test_sdk_invalid_key(sdk, emulator):
    openai, client = sdk
    emulator.faults.set("openai", "invalid_key")
    with pytest.raises(openai.AuthenticationError):
        client.images.generate(model="dall-e-3", prompt="a red apple")


@pytest.mark.sdk
def test_sdk_rate_limited(sdk, emulator):
    openai, client = sdk
    emulator.faults.set("openai", "rate_limited")
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(model="gpt-image-1", prompt="a red apple")
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.sdk
def test_sdk_models(sdk):
    _, client = sdk
    assert "gpt-image-1" in {model.id for model in client.models.list()}
