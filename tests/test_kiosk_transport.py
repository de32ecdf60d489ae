"""The kiosk's one cloud transport (`kiosk_app.cloud_transport`), with httpx.MockTransport:
the client it builds, the retry policy, and error answers read into one `CloudError`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from contract import ErrorBody, FieldError
from kiosk_app.cloud_client import CloudClient
from kiosk_app.cloud_client import CloudError as ClientCloudError
from kiosk_app.cloud_transport import (
    API_KEY_HEADER,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    Backoff,
    CloudError,
    error_from_response,
    is_transient,
    kiosk_version,
    make_client,
    retry_after_s,
)


def _recording() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    return seen, httpx.MockTransport(handler)


# --- the client -----------------------------------------------------------------------------


def test_the_client_sends_the_key_and_the_kiosk_user_agent_to_the_base_url() -> None:
    seen, transport = _recording()
    with make_client("http://cloud.test/prefix/ ", "device-key", transport=transport) as client:
        assert client.get("/v1/device").status_code == 200
    (request,) = seen
    assert request.url == "http://cloud.test/prefix/v1/device"
    assert request.headers[API_KEY_HEADER] == "device-key"
    assert request.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith(f"storesight-kiosk/{kiosk_version()} ")


def test_the_client_has_explicit_timeouts_and_extra_headers() -> None:
    seen, transport = _recording()
    with make_client("http://c", "k", transport=transport) as client:
        assert client.timeout == DEFAULT_TIMEOUT
        assert DEFAULT_TIMEOUT.connect is not None and DEFAULT_TIMEOUT.read is not None
    own = httpx.Timeout(connect=1.0, read=25.0, write=3.0, pool=4.0)
    with make_client(
        "http://c", "k", timeout=own, transport=transport, headers={"Accept": "text/event-stream"}
    ) as client:
        assert client.timeout == own
        client.get("/x")
    assert seen[-1].headers["Accept"] == "text/event-stream"
    assert seen[-1].headers[API_KEY_HEADER] == "k"


def test_a_key_a_header_cannot_carry_is_refused_when_the_client_is_built() -> None:
    with pytest.raises(UnicodeEncodeError):
        make_client("http://c", "clé")


# --- the retry policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "transient"),
    [(500, True), (503, True), (408, True), (425, True), (429, True)]
    + [(400, False), (401, False), (404, False), (409, False), (422, False), (302, False)],
)
def test_which_answers_are_worth_a_retry(status: int, transient: bool) -> None:
    assert is_transient(status) is transient


def test_backoff_doubles_up_to_its_bound_without_jitter() -> None:
    policy = Backoff(0.5, 5.0, jitter=0.0)
    assert [policy.delay_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert policy.delay_s(10_000) == 5.0  # no overflow after a long outage
    assert policy.delay_s(0) == 0.5


def test_backoff_jitter_stays_within_its_spread_and_the_bound() -> None:
    policy = Backoff(1.0, 30.0, jitter=0.1, rng=random.Random(3))
    samples = [policy.delay_s(2) for _ in range(500)]
    assert all(1.8 <= s <= 2.2 for s in samples) and len(set(samples)) > 100
    assert all(policy.delay_s(6) <= 30.0 for _ in range(500))  # 32 s +- 10 %, capped


def test_backoff_honours_retry_after_up_to_its_bound() -> None:
    policy = Backoff(0.5, 30.0, jitter=0.0)
    assert policy.delay_s(1, retry_after=7.0) == 7.0  # longer than the backoff: as asked
    assert policy.delay_s(4, retry_after=1.0) == 4.0  # shorter: the backoff stands
    assert policy.delay_s(1, retry_after=3600.0) == 30.0  # never beyond the maximum


@pytest.mark.parametrize(
    ("initial", "maximum", "jitter"), [(0.0, 1.0, 0.1), (2.0, 1.0, 0.1), (0.5, 1.0, 1.0)]
)
def test_backoff_refuses_bounds_that_make_no_sense(
    initial: float, maximum: float, jitter: float
) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, maximum, jitter)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    in_a_minute = format_datetime(now + timedelta(seconds=60), usegmt=True)
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "7"}), 0.0) == 7.0
    asked = retry_after_s(
        httpx.Response(503, headers={"Retry-After": in_a_minute}), now.timestamp()
    )
    assert asked == pytest.approx(60.0)
    past = format_datetime(now - timedelta(seconds=60), usegmt=True)
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": past}), now.timestamp()) == 0
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": "soon"}), 0.0) is None
    assert retry_after_s(httpx.Response(503), 0.0) is None


# --- error answers --------------------------------------------------------------------------


def test_an_error_body_is_read_into_the_error_with_status_code_and_detail() -> None:
    body = ErrorBody(
        error="validation_error",
        detail="invalid fields",
        fields=[FieldError(field="receipt.items", message="too many")],
    )
    error = error_from_response(httpx.Response(422, json=body.model_dump(mode="json")))
    assert isinstance(error, CloudError)
    assert error.status == 422
    assert error.code == "validation_error"
    assert error.detail == "invalid fields (receipt.items: too many)"
    assert error.fields == (FieldError(field="receipt.items", message="too many"),)
    assert str(error) == "HTTP 422: invalid fields (receipt.items: too many)"
    assert error.summary == "validation_error: invalid fields (receipt.items: too many)"


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(404, json={"detail": "Not Found"}), "Not Found"),  # a framework's own
        (httpx.Response(502, text="<html>bad gateway</html>"), "<html>bad gateway</html>"),
        (httpx.Response(429, json={"error": "slow down"}), '{"error":"slow down"}'),
        (httpx.Response(503), "Service Unavailable"),
    ],
)
def test_any_other_error_answer_still_gives_a_status_and_a_detail(
    response: httpx.Response, detail: str
) -> None:
    error = error_from_response(response)
    assert (error.status, error.code, error.detail) == (response.status_code, None, detail)
    assert str(error) == f"HTTP {response.status_code}: {detail}"
    assert error.summary.startswith(f"HTTP {response.status_code}")


def test_a_huge_error_answer_is_cut_short() -> None:
    error = error_from_response(httpx.Response(500, text="x" * 100_000))
    assert len(error.detail) <= 2000 and len(error.summary) <= 2000


def test_a_streamed_error_answer_is_read_before_it_is_parsed() -> None:
    body = ErrorBody(error="unauthorised", detail="unknown API key").model_dump(mode="json")
    transport = httpx.MockTransport(lambda _: httpx.Response(401, json=body))
    with make_client("http://c", "k", transport=transport) as client:
        with client.stream("GET", "/v1/stores/1/alerts") as response:
            error = error_from_response(response)
    assert (error.status, error.code, error.detail) == (401, "unauthorised", "unknown API key")


def test_the_cloud_client_raises_the_one_error_type_with_the_answer_in_it() -> None:
    assert ClientCloudError is CloudError
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = ErrorBody(error="conflict", detail="already answered")
        return httpx.Response(409, json=body.model_dump(mode="json"))

    client = CloudClient("http://cloud.test", "till-key", transport=httpx.MockTransport(handler))
    with pytest.raises(CloudError) as caught:
        client.delete_customer(7)
    assert caught.value.status == 409 and caught.value.code == "conflict"
    assert caught.value.detail == "already answered"
    assert str(caught.value) == "http://cloud.test answered 409: already answered"
    (request,) = seen
    assert request.headers[API_KEY_HEADER] == "till-key"
    assert request.headers["User-Agent"] == USER_AGENT
