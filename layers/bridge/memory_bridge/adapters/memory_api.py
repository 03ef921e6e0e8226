"""Adapter for Twilio's Memory API (https://memory.twilio.com, v1): its endpoints, over
memory_bridge.adapters.twilio_http (pooled urllib3, deadlines, outcomes as values)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
            _observations(store_id, profile_id),
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
        created_before: str | None = None,
        order_by: str | None = None,
        timeout: float | None = None,
    ) -> Outcome:
        """One page; `created_after` is inclusive, `created_before` exclusive, `order_by` ASC or DESC
        (Memory's default) by creation time. Memory lists a write only after a while."""
        query = {
            "pageSize": str(page_size),
            "pageToken": page_token,
            "source": source,
            "createdAfter": created_after,
            "createdBefore": created_before,
            "orderBy": order_by,
        }
        return self.request("GET", _observations(store_id, profile_id), query=query, timeout=timeout)

    # ---- after posting: edits, removals, erasure (issue 22) ----------------------------------
    # Each answers 202 when accepted. A 404 with code 520003 (domain.outcomes.observation_gone) is an
    # observation Memory no longer holds: deleted, or removed or reconciled on Twilio's side.

    def update_observation(
        self,
        store_id: str,
        profile_id: str,
        observation_id: str,
        fields: Mapping[str, object],
        timeout: float | None = None,
    ) -> Outcome:
        """PATCH the fields given (content, source, occurredAt, conversationIds; none is required)."""
        path = f"{_observations(store_id, profile_id)}/{path_segment(observation_id)}"
        return self.request("PATCH", path, json_body=dict(fields), timeout=timeout)

    def delete_observation(
        self, store_id: str, profile_id: str, observation_id: str, timeout: float | None = None
    ) -> Outcome:
        path = f"{_observations(store_id, profile_id)}/{path_segment(observation_id)}"
        return self.request("DELETE", path, timeout=timeout)

    def delete_profile(self, store_id: str, profile_id: str, timeout: float | None = None) -> Outcome:
        """The profile with its identifiers, traits and observations; Memory deletes asynchronously."""
        path = f"/v1/Stores/{path_segment(store_id)}/Profiles/{path_segment(profile_id)}"
        return self.request("DELETE", path, timeout=timeout)

    def list_profile_identifiers(
        self, store_id: str, profile_id: str, timeout: float | None = None
    ) -> Outcome:
        """Every identifier the profile holds, as IdentifierSets ({idType, values}); a 404 when it is gone."""
        path = f"/v1/Stores/{path_segment(store_id)}/Profiles/{path_segment(profile_id)}/Identifiers"
        return self.request("GET", path, timeout=timeout)

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


def _observations(store_id: str, profile_id: str) -> str:
    return f"/v1/Stores/{path_segment(store_id)}/Profiles/{path_segment(profile_id)}/Observations"
