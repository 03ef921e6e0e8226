"""Adapter for Twilio's Memory API (https://memory.twilio.com, v1): its endpoints, over
memory_bridge.adapters.twilio_http (pooled urllib3, deadlines, outcomes as values)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memory_bridge.adapters.twilio_http import TwilioJsonClient, outcome_from_response, path_segment
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.observations import Observation
from memory_bridge.domain.outcomes import Outcome

__all__ = ["MemoryApiClient", "outcome_from_response"]


class MemoryApiClient(TwilioJsonClient):
    # ---- profiles and observations (the webhook's hot path) -------------------------------

    def lookup_profiles(self, store_id: str, identifier: Identifier, timeout: float | None = None) -> Outcome:
        return self.request(
            "POST",
            f"/v1/Stores/{path_segment(store_id)}/Profiles/Lookup",
            json_body=identifier.to_json(),
            timeout=timeout,
        )

    def create_profile(
        self, store_id: str, trait_group: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome:
        traits = {trait_group: {identifier.id_type: identifier.value}}
        return self.request(
            "POST",
            f"/v1/Stores/{path_segment(store_id)}/Profiles",
            json_body={"traits": traits},
            timeout=timeout,
        )

    def create_observations(
        self,
        store_id: str,
        profile_id: str,
        observations: Sequence[Observation],
        timeout: float | None = None,
    ) -> Outcome:
        return self.request(
            "POST",
            f"/v1/Stores/{path_segment(store_id)}/Profiles/{path_segment(profile_id)}/Observations",
            json_body={"observations": list(observations)},
            timeout=timeout,
            compressible=True,
        )

    def list_observations(
        self,
        store_id: str,
        profile_id: str,
        *,
        page_size: int = 50,
        page_token: str | None = None,
        source: str | None = None,
        created_after: str | None = None,
        order_by: str | None = None,
        timeout: float | None = None,
    ) -> Outcome:
        query = {
            "pageSize": str(page_size),
            "pageToken": page_token,
            "source": source,
            "createdAfter": created_after,
            "orderBy": order_by,
        }
        return self.request(
            "GET",
            f"/v1/Stores/{path_segment(store_id)}/Profiles/{path_segment(profile_id)}/Observations",
            query=query,
            timeout=timeout,
        )

    # ---- stores and operations (control plane) ------------------------------------------

    def create_store(self, display_name: str, description: str | None = None) -> Outcome:
        body: dict[str, str] = {"displayName": display_name}
        if description is not None:
            body["description"] = description
        return self.request("POST", "/v1/ControlPlane/Stores", json_body=body)

    def list_stores(self, page_size: int = 50, page_token: str | None = None) -> Outcome:
        return self.request(
            "GET", "/v1/ControlPlane/Stores", query={"pageSize": str(page_size), "pageToken": page_token}
        )

    def fetch_store(self, store_id: str) -> Outcome:
        return self.request("GET", f"/v1/ControlPlane/Stores/{path_segment(store_id)}")

    def fetch_operation(self, operation_id: str) -> Outcome:
        return self.request("GET", f"/v1/ControlPlane/Operations/{path_segment(operation_id)}")

    def fetch_identity_settings(self, store_id: str) -> Outcome:
        return self.request(
            "GET", f"/v1/ControlPlane/Stores/{path_segment(store_id)}/IdentityResolutionSettings"
        )

    def update_identity_settings(self, store_id: str, settings: Any, etag: str | None = None) -> Outcome:
        """Asynchronous (202 with an operation); `etag` (If-Match) makes a concurrent change a 412."""
        path = f"/v1/ControlPlane/Stores/{path_segment(store_id)}/IdentityResolutionSettings"
        return self.request("PUT", path, json_body=settings, headers={"If-Match": etag} if etag else None)
