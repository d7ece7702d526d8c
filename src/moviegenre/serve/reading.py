"""The movie a ``POST /predict`` request carries: its plot and its poster upload, each refused
with one line saying what was wrong before anything is predicted.

A JSON body's nesting is counted before it is parsed (``json_depth``): Python's parser
recurses, so a few kilobytes of brackets would otherwise cost a ``RecursionError`` deep in it.
The field names come from ``models``, the schemas ``/openapi.json`` shows.
"""

from __future__ import annotations

import json

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile

from moviegenre.core.errors import MovieGenreError
from moviegenre.predict.inputs import PlotTooLong, check_plot
from moviegenre.serve.limits import MAX_JSON_DEPTH
from moviegenre.serve.models import MovieForm, PlotBody

FORM_FIELDS = tuple(MovieForm.model_fields)  # poster, plot
JSON_FIELDS = frozenset(PlotBody.model_fields)


def json_depth(raw: bytes) -> int:
    """How deeply ``raw``'s arrays and objects nest, counted without parsing (brackets inside
    strings skipped), so that a deep body is refused before the recursive parser sees it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def read_movie(request: Request, max_bytes: int) -> tuple[str | None, UploadFile | None]:
    """The plot (None if not given) and the poster upload (None if not given) of a request."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        raw = await request.body()
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise HTTPException(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise HTTPException(400, f"the body is not valid JSON ({exc})") from exc
        if not isinstance(body, dict) or set(body) - JSON_FIELDS:
            raise HTTPException(400, 'a JSON body is {"plot": "..."} (send a poster as a multipart form)')
        plot, upload = body.get("plot"), None
    elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        # a part may be as large as the whole body may; more than two parts cannot be a movie
        form = await request.form(max_files=2, max_fields=2, max_part_size=max_bytes)
        unknown = set(form) - set(FORM_FIELDS)
        if unknown:
            expected = ", ".join(FORM_FIELDS)
            raise HTTPException(400, f"unknown form field(s): {', '.join(sorted(unknown))} (expected {expected})")
        for name in ("plot", "poster"):
            if len(form.getlist(name)) > 1:
                raise HTTPException(400, f"one {name} per request, not {len(form.getlist(name))}")
        plot, field = form.get("plot"), form.get("poster")
        if field is not None and not isinstance(field, UploadFile):
            raise HTTPException(400, "poster must be a file upload")
        upload = field
        if upload is not None and not upload.filename and not upload.size:
            upload = None  # a form's file input left empty
    elif not content_type and not await request.body():
        plot, upload = None, None  # an empty POST: say what to send, as for an empty form
    else:
        raise HTTPException(415, 'send a multipart form (poster, plot) or a JSON body {"plot": "..."}')
    if plot is not None:
        if not isinstance(plot, str):
            raise HTTPException(400, "plot must be text")
        try:
            check_plot(plot)
        except PlotTooLong as exc:
            raise HTTPException(413, str(exc)) from None
        except MovieGenreError as exc:
            raise HTTPException(400, str(exc)) from None
    return plot, upload
