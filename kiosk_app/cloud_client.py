"""Short calls the till makes to the cloud on a cashier's request (blocking: run them in a
worker thread). Checkouts go through the outbox and `Uplink`, never through here."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from contract import CustomerOut, DeviceInfo, ErrorBody, MembershipRequest

TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=5.0, pool=3.0)


class CloudError(Exception):
    """A call failed; the message says why in words a cashier can pass on."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CloudClient:
    def __init__(
        self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._transport = transport

    def _request(self, method: str, path: str, json: object | None = None) -> httpx.Response:
        try:
            with httpx.Client(
                timeout=TIMEOUT, transport=self._transport, headers={"X-API-Key": self._api_key}
            ) as client:
                response = client.request(method, self.base_url + path, json=json)
        except httpx.HTTPError as error:
            raise CloudError(f"cannot reach the cloud at {self.base_url}: {error}") from error
        if response.status_code >= 400:
            raise CloudError(_describe(response), response.status_code)
        return response

    def device(self) -> DeviceInfo:
        return DeviceInfo.model_validate_json(self._request("GET", "/v1/device").content)

    def enrol(self, customer_id: int, membership: MembershipRequest) -> CustomerOut:
        response = self._request(
            "PUT",
            f"/v1/customers/{customer_id}/membership",
            json=membership.model_dump(mode="json"),
        )
        return CustomerOut.model_validate_json(response.content)

    def delete_customer(self, customer_id: int) -> None:
        self._request("DELETE", f"/v1/customers/{customer_id}")

    def healthy(self) -> bool:
        try:
            self._request("GET", "/healthz")
        except CloudError:
            return False
        return True


def _describe(response: httpx.Response) -> str:
    if response.status_code in (401, 403):
        prefix = "the cloud refused this device's API key"
    else:
        prefix = f"the cloud answered HTTP {response.status_code}"
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return prefix
    detail = body.detail
    if body.fields:
        detail += " (" + "; ".join(f"{f.field}: {f.message}" for f in body.fields) + ")"
    return f"{prefix}: {detail}"
