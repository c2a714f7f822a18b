"""HTTP client for the node protocol, patient with a server that restarts."""

from __future__ import annotations

import logging
import time

import httpx
import pydantic_core

log = logging.getLogger("tiermover.node")


class LeaseLost(Exception):
    """The server gave the execution to another node (this one was silent too long)."""


class NodeClient:
    def __init__(self, server_url: str, api_key: str, timeout: float = 60.0):
        self.http = httpx.Client(base_url=server_url.rstrip("/") + "/api/v2",
                                 headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, retry_until: float | None = None, json=None,
              **kwargs):
        """One request; connection failures are retried (with backoff) until `retry_until`."""
        if json is not None:
            # Reports carry thousands of items: pydantic's encoder writes them several
            # times faster than the standard library's, which httpx would use.
            kwargs["content"] = pydantic_core.to_json(json)
            kwargs["headers"] = {"Content-Type": "application/json"}
        delay = 0.2
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                if retry_until is None or time.monotonic() >= retry_until:
                    raise
                log.warning("server unreachable (%s); retrying in %.1fs", error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code >= 500 and retry_until and time.monotonic() < retry_until:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            return response

    def storages(self, retry_until: float) -> list[dict]:
        response = self._call("GET", "/nodes/-/storages", retry_until=retry_until)
        response.raise_for_status()
        return response.json()["storages"]

    def register(self, name: str, concurrency: int, storages: list[str], version: str,
                 retry_until: float) -> dict:
        response = self._call("POST", "/nodes", retry_until=retry_until, json={
            "name": name, "concurrency": concurrency, "storages": storages, "version": version})
        response.raise_for_status()
        return response.json()

    def claim(self, node_id: int, wait: float) -> dict | None:
        response = self._call("POST", f"/nodes/{node_id}/claim", params={"wait": wait},
                              timeout=wait + 30)
        if response.status_code == 204:
            return None
        response.raise_for_status()
        return response.json()

    def claim_many(self, node_id: int, wait: float, limit: int) -> list[dict]:
        """Long-poll for up to `limit` executions (an empty list when none came)."""
        response = self._call("POST", f"/nodes/{node_id}/claim",
                              params={"wait": wait, "max": limit}, timeout=wait + 30)
        if response.status_code == 204:
            return []
        response.raise_for_status()
        return response.json()["executions"]

    def exchange(self, node_id: int, reports: list[dict], claim: int,
                 retry_until: float | None = None) -> dict:
        """Several executions' reports in one request, claiming up to `claim` executions
        in the same request: `{"results": {id: {"command"} | {"lost"}}, "executions"}`."""
        response = self._call("POST", f"/nodes/{node_id}/reports",
                              json={"reports": reports, "claim": claim}, retry_until=retry_until)
        response.raise_for_status()
        return response.json()

    def heartbeat(self, node_id: int, running: list[str]) -> dict[str, str]:
        response = self._call("POST", f"/nodes/{node_id}/heartbeat", json={"running": running})
        response.raise_for_status()
        return response.json()["commands"]

    def report(self, node_id: int, execution_id: str, body: dict,
               retry_until: float | None = None) -> str | None:
        response = self._call("POST", f"/nodes/{node_id}/executions/{execution_id}/report",
                              json=body, retry_until=retry_until)
        if response.status_code in (403, 404):
            raise LeaseLost(response.text)
        response.raise_for_status()
        return response.json()["command"]

    def final_report(self, node_id: int, execution_id: str, body: dict, claim_next: bool,
                     retry_until: float | None = None) -> dict | None:
        """The execution's last report; with `claim_next`, the next execution's spec (or
        None when there is none to run)."""
        response = self._call("POST", f"/nodes/{node_id}/executions/{execution_id}/report",
                              params={"claim_next": "true"} if claim_next else None,
                              json=body, retry_until=retry_until)
        if response.status_code in (403, 404):
            raise LeaseLost(response.text)
        response.raise_for_status()
        return response.json().get("next")

    def references(self, node_id: int, execution_id: str, kind: str, after: str | None,
                   limit: int, retry_until: float | None = None) -> dict:
        """One page of catalog records an execution works from (see node/references.py)."""
        params = {"kind": kind, "limit": limit}
        if after is not None:
            params["after"] = after
        response = self._call("GET", f"/nodes/{node_id}/executions/{execution_id}/references",
                              params=params, retry_until=retry_until)
        if response.status_code in (403,):
            raise LeaseLost(response.text)
        response.raise_for_status()
        return response.json()
