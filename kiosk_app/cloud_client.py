"""Short calls the till makes to the cloud on a cashier's or installer's request (blocking:
run them in a worker thread). Checkouts go through the outbox and `Uplink`, never through here.

Every failure is a `CloudError` whose message a cashier can pass on: the cloud unreachable
(with the reason), an invalid URL, a refused key, the cloud's own ErrorBody detail. URLs are
shown with any credentials masked. The client, the key header and the reading of error
answers are `cloud_transport`'s.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import ValidationError

from contract import CustomerOut, DecisionAnswer, DeviceInfo, MembershipRequest
from kiosk_app.cloud_transport import CloudError, error_from_response, make_client
from kiosk_app.sources import mask_url

__all__ = ["CloudClient", "CloudError", "TIMEOUT_S"]

TIMEOUT_S = 10.0
#: the most of a non-ErrorBody answer shown to a cashier
_MAX_DETAIL = 200


class CloudClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.strip().rstrip("/")
        self.shown = mask_url(self.base_url)
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._transport = transport

    def _request(self, method: str, path: str, json: object | None = None) -> httpx.Response:
        shown = self.shown
        try:
            with make_client(
                self.base_url,
                self._api_key,
                timeout=httpx.Timeout(self._timeout_s, connect=min(3.0, self._timeout_s)),
                transport=self._transport,
            ) as client:
                response = client.request(method, path, json=json)
        except httpx.TimeoutException:
            raise CloudError(
                f"cannot reach {shown}: no answer within {self._timeout_s:g} s"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            raise CloudError(f"invalid cloud API URL {shown}: {error}") from None
        except httpx.TransportError as error:
            raise CloudError(f"cannot reach {shown}: {error}") from None
        except UnicodeEncodeError:
            raise CloudError("the API key contains characters that are not allowed") from None
        status = response.status_code
        if status < 400:
            return response
        answer = error_from_response(response)
        detail = answer.detail if answer.code is not None else answer.detail[:_MAX_DETAIL]
        if status in (401, 403):
            message = f"the API key was refused by {shown} ({detail or status})"
        else:
            message = f"{shown} answered {status}" + (f": {detail}" if detail else "")
        raise CloudError(message, status, code=answer.code, detail=detail, fields=answer.fields)

    def device(self) -> DeviceInfo:
        """What this key is: device, kind and store (`GET /v1/device`)."""
        try:
            response = self._request("GET", "/v1/device")
        except CloudError as error:
            if error.status == 404:
                raise CloudError(
                    f"{self.shown} has no /v1/device: is this the StoreSight cloud API "
                    "(and up to date)?",
                    404,
                ) from None
            raise
        try:
            return DeviceInfo.model_validate_json(response.content)
        except ValidationError:
            raise CloudError(
                f"{self.shown} did not answer like the StoreSight cloud API "
                "(unexpected /v1/device reply)"
            ) from None

    def enrol(self, customer_id: int, membership: MembershipRequest) -> CustomerOut:
        response = self._request(
            "PUT",
            f"/v1/customers/{customer_id}/membership",
            json=membership.model_dump(mode="json"),
        )
        return CustomerOut.model_validate_json(response.content)

    def delete_customer(self, customer_id: int) -> None:
        self._request("DELETE", f"/v1/customers/{customer_id}")

    def confirm_decision(self, decision_id: int) -> DecisionAnswer:
        """The customer is the member the card asked about (`POST .../confirm`): the answer
        carries the member's full card."""
        return self._decide(decision_id, "confirm")

    def reject_decision(self, decision_id: int) -> DecisionAnswer:
        """The customer is not that member (`POST .../reject`): the answer carries the card to
        show instead (an anonymous customer's)."""
        return self._decide(decision_id, "reject")

    def _decide(self, decision_id: int, action: Literal["confirm", "reject"]) -> DecisionAnswer:
        try:
            response = self._request("POST", f"/v1/decisions/{decision_id}/{action}")
        except CloudError as error:
            if error.status == 409:
                raise CloudError(
                    "this customer was already answered (confirmed or rejected)", 409
                ) from None
            if error.status == 404:
                raise CloudError(
                    f"{self.shown} does not know this recognition decision", 404
                ) from None
            if error.status == 403:
                raise CloudError(
                    "this recognition decision belongs to another store", 403
                ) from None
            raise
        try:
            return DecisionAnswer.model_validate_json(response.content)
        except ValidationError:
            raise CloudError(
                f"{self.shown} did not answer like the StoreSight cloud API "
                f"(unexpected /v1/decisions/.../{action} reply)"
            ) from None
