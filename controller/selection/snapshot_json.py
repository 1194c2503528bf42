"""The desired-FIB snapshot as JSON, re-encoding only the request answers that changed.

``json.dumps(selection.to_dict())`` encodes every request answer each selection: ~2 µs each, so
tens of milliseconds of the event loop (which the API shares) with tens of thousands of active
requests. Most answers are the same from one selection to the next: their JSON is kept, by
value (an answer is a tuple of strings: equal answers, equal JSON), and a new one is written from
its strings with the encoder ``json.dumps`` uses for them.
"""

from __future__ import annotations

import json
from itertools import compress, repeat
from json.encoder import encode_basestring_ascii
from operator import is_
from typing import cast

from topfib.controller.selection.model import RequestAnswer, Selection


def answer_json(answer: RequestAnswer) -> str:
    """``json.dumps(answer.to_dict())``, without building the dict."""
    ip, status, prefix, reason, request_id = (
        answer.ip, answer.status, answer.prefix, answer.reason, answer.request_id)
    if not (type(ip) is type(status) is type(reason) is type(request_id) is str
            and (prefix is None or type(prefix) is str)):
        return json.dumps(answer.to_dict())  # not the strings the fields are typed as
    text = encode_basestring_ascii
    return (f'{{"ip": {text(ip)}, "status": {text(status)}, '
            f'"prefix": {"null" if prefix is None else text(prefix)}, "reason": {text(reason)}, '
            f'"request_id": {text(request_id)}}}')


SLICE = 500  # list items per json.dumps call: one C call holds the GIL throughout


def _slices(items: list[dict[str, object]]) -> str:
    """The items of ``json.dumps(items)`` without its brackets, encoded SLICE at a time."""
    return ", ".join(json.dumps(items[start:start + SLICE])[1:-1] for start in range(0, len(items), SLICE))


class SelectionJson:
    """Encodes selections of one switch, one after the other; the text is ``json.dumps(to_dict())``."""

    def __init__(self) -> None:
        self._text_of: dict[RequestAnswer, str] = {}  # the answers of the last selection encoded

    def encode(self, selection: Selection) -> str:
        """The snapshot's text. Safe in a worker thread (a selection is immutable); long lists
        are encoded in slices, so the event loop's thread gets the GIL back in between."""
        return "".join((
            '{"routes": [', _slices([route.to_dict() for route in selection.routes.values()]),
            '], "requests": [', ", ".join(self._answer_texts(selection.requests)),
            '], "pins": [', _slices([answer.to_dict() for answer in selection.pins]),
            '], "usage": ', json.dumps(dict(selection.usage)),
            ', "caps": ', json.dumps(dict(selection.caps)), "}",
        ))

    def _answer_texts(self, answers: tuple[RequestAnswer, ...]) -> list[str]:
        # SLICE at a time: each C-level map over tens of thousands of answers would hold the GIL,
        # and so the event loop's thread, for milliseconds
        texts: list[str] = []
        text_of: dict[RequestAnswer, str] = {}
        for start in range(0, len(answers), SLICE):
            some = answers[start:start + SLICE]
            found = list(map(self._text_of.get, some))
            for index in compress(range(len(found)), map(is_, found, repeat(None))):
                found[index] = answer_json(some[index])
            texts += cast(list[str], found)
            text_of.update(zip(some, cast(list[str], found), strict=True))
        self._text_of = text_of
        return texts
