"""``GET /v1/matrix``: the traffic matrix of one interval, as JSON or CSV (viewers and operators)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from topfib.api.auth import VIEWER_ROLES, require_role
from topfib.api.context import ApiContext
from topfib.api.errors import validation_error
from topfib.api.models import error_doc
from topfib.collector.matrix.traffic_matrix import MatrixInterval, TrafficMatrix
from topfib.collector.matrix.writer import format_csv, interval_records, utc_stamp

_INTERVAL_PATTERN = r"^(last|current|[0-9]{1,12}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)$"
MATRIX_PAGE_MAX = 10_000  # rows per answer: bounds its size and the time spent serialising it
_MATRIX_404 = error_doc(404, "unknown switch, or no interval kept that starts there (or none closed yet)")
_CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "the rows, JSON or (format=csv) CSV with a header row",
          "content": {"text/csv": {"schema": {"type": "string"}}}},
}


class MatrixRowOut(BaseModel):
    switch: str
    input_if: int | None = Field(description="input interface (SNMP ifIndex); null on the other row")
    next_hop: str | None = Field(description="BGP next-hop; null: unrouted (no BGP path) or the other row")
    peer_asn: int | None = Field(description="peer destination ASN, 0 unknown; null on the other row")
    bytes: float = Field(description="bytes in the interval, scaled by the sampling rate")
    packets: float = Field(description="packets in the interval, scaled by the sampling rate")
    samples: int = Field(description="flow samples behind the row (few: a rough figure)")
    other: bool = Field(description="true on the row summing keys past matrix.max_rows")


class MatrixOut(BaseModel):
    interval_start: int = Field(description="Unix seconds, a multiple of matrix.interval_s")
    interval_end: int
    interval_start_utc: str
    complete: bool = Field(description="false when the collector did not see the whole interval")
    switch: str | None = Field(description="the switch asked for; null: all switches")
    rows: list[MatrixRowOut] = Field(description="per switch, largest bytes first, other row last")
    kept_intervals: list[int] = Field(description="starts of the closed intervals in memory, oldest first")
    next_offset: int | None = Field(None, description="offset of the next page of rows; null: the last page")


def _not_found(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=404)


def _parse_start(text: str, interval_s: int) -> int:
    """A start given as Unix seconds or ``YYYY-MM-DDTHH:MM:SSZ``; 422 naming ``interval`` if bad."""
    if text.isdigit():
        start = int(text)
    else:
        try:
            start = int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
        except ValueError:
            raise validation_error(("query", "interval"), "not a valid UTC time") from None
    if start % interval_s:
        raise validation_error(("query", "interval"),
                               f"not an interval start: a multiple of matrix.interval_s ({interval_s})")
    return start


def build_router(ctx: ApiContext, matrix: TrafficMatrix) -> APIRouter:
    router = APIRouter(tags=["read"], dependencies=[Depends(require_role(*VIEWER_ROLES))])

    @router.get("/v1/matrix", response_model=MatrixOut, responses={**_MATRIX_404, **_CSV_DOC})
    async def get_matrix(
        switch: Annotated[str | None, Query(max_length=64, description="one switch; all if omitted")] = None,
        interval: Annotated[str, Query(max_length=32, pattern=_INTERVAL_PATTERN, description=(
            "`last` (the last closed interval), `current` (the running one so far), or a kept "
            "interval's start as Unix seconds or YYYY-MM-DDTHH:MM:SSZ"))] = "last",
        output: Annotated[Literal["json", "csv"], Query(alias="format", description="json or csv")] = "json",
        limit: Annotated[int, Query(ge=1, le=MATRIX_PAGE_MAX, description="rows per page")] = MATRIX_PAGE_MAX,
        offset: Annotated[int, Query(ge=0, le=2**31, description="rows to skip (the last next_offset)")] = 0,
    ) -> MatrixOut | Response:
        """Bytes and packets of one interval by switch, input interface, BGP next-hop and peer ASN."""
        if switch is not None and ctx.config.switch_named(switch) is None:
            return _not_found(f"unknown switch {switch!r}")
        found: MatrixInterval | None
        if interval == "current":
            found = matrix.current(ctx.clock())
        elif interval == "last":
            found = matrix.last_closed()
            if found is None:
                return _not_found("no traffic matrix interval closed yet")
        else:
            start = _parse_start(interval, matrix.interval_s)
            found = matrix.closed_at(start)
            if found is None:
                return _not_found(f"no closed interval kept that starts at {utc_stamp(start)}")
        every_row = found.rows if switch is None else found.switch_rows(switch)
        rows = every_row[offset:offset + limit]
        next_offset = offset + limit if offset + limit < len(every_row) else None
        if output == "csv":
            headers = {} if next_offset is None else {"X-Next-Offset": str(next_offset)}
            return Response(format_csv(interval_records(found, rows), header=True), media_type="text/csv",
                            headers=headers)
        return MatrixOut(
            interval_start=found.start,
            interval_end=found.end,
            interval_start_utc=utc_stamp(found.start),
            complete=found.complete,
            switch=switch,
            rows=[MatrixRowOut(switch=r.switch, input_if=r.input_if, next_hop=r.next_hop, peer_asn=r.peer_asn,
                               bytes=r.bytes, packets=r.packets, samples=r.samples, other=r.other)
                  for r in rows],
            kept_intervals=[closed.start for closed in matrix.closed()],
            next_offset=next_offset,
        )

    return router
