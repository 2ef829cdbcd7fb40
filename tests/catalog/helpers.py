"""Test doubles for the catalog source tests: replies and routes of a paged listing API."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from baghunter.local.sample.server import Reply, Request


def json_reply(payload: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(
        status, json.dumps(payload).encode(), headers=headers, content_type="application/json"
    )


class PagedRoute:
    """A route that answers by the ``page`` query parameter, like a paged listing API.

    A page given a list of replies plays them in turn (the last one repeats), so a page can
    fail before it succeeds. Pages not listed get ``beyond``. Every query is recorded.
    """

    def __init__(self, pages: dict[int, Reply | list[Reply]], beyond: Reply) -> None:
        self.pages = pages
        self.beyond = beyond
        self.queries: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self._served: Counter[int] = Counter()

    def __call__(self, request: Request) -> Reply:
        self.queries.append(request.query)
        self.headers.append(request.headers)
        number = int(request.query.get("page", "0"))
        replies = self.pages.get(number, self.beyond)
        if isinstance(replies, Reply):
            return replies
        reply = replies[min(self._served[number], len(replies) - 1)]
        self._served[number] += 1
        return reply

    @property
    def requested_pages(self) -> list[int]:
        return [int(query["page"]) for query in self.queries]
