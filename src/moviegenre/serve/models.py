"""The request and answer models that ``/openapi.json`` is generated from.

The routes read and write plain dicts: a request is read by ``reading`` (which takes its field
names from these models) so that every refusal keeps its own one-line ``{"error": ...}``, and
an answer is the same dict ``moviegenre predict --json`` prints. These models describe them:
FastAPI turns them into the OpenAPI schemas, so the description and the code share one source
instead of a hand-written copy of each.

``POST /predict`` takes two request bodies (a multipart form and JSON), which FastAPI cannot
declare from one signature; ``predict_request_body`` puts both models' schemas there.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from moviegenre.predict.inputs import MAX_PLOT_CHARS
from moviegenre.serve.limits import MAX_JSON_DEPTH


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional(description: str) -> Any:
    """A field a request or answer may leave out (not one that may be null)."""
    return Field(None, description=description, json_schema_extra=_no_default)


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer, the server's own and uvicorn's alike."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="What was wrong, in one line; a 500 says only that the server failed.")


class MovieForm(BaseModel):
    """``POST /predict`` as a multipart form: a poster, a plot, or both (nothing else)."""

    poster: bytes | SkipJsonSchema[None] = _optional("A poster image (JPEG, PNG).")
    plot: str | SkipJsonSchema[None] = _optional("The plot synopsis.")


class PlotBody(BaseModel):
    """``POST /predict`` as JSON: the plot alone (a poster goes in a multipart form)."""

    model_config = ConfigDict(extra="forbid")

    plot: str = Field(description="The plot synopsis.")


class Prediction(BaseModel):
    """One movie's genres, as ``moviegenre predict --json`` prints them."""

    model_config = ConfigDict(extra="forbid")

    seen: Literal["poster and plot", "poster only", "plot only"] = Field(description="What the movie came with.")
    branches: list[str] = Field(description="The branches that scored it: poster branches, plot branches, both.")
    genres: list[str] = Field(
        description="Its genre set: the genres whose ensemble probability reaches the threshold fitted on val "
        "for these branches, by probability."
    )
    probabilities: dict[str, float] = Field(
        description="Each genre's ensemble probability, most probable first (the top N with ?top=N)."
    )
    by_branch: dict[str, dict[str, float]] | SkipJsonSchema[None] = _optional(
        "With ?branches=true: each branch's probabilities of the same genres."
    )


class EnsembleInfo(BaseModel):
    """How the ensemble combines the branches."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="How the branches are combined (ensemble.method).")
    average: Literal["probabilities", "logits"] = Field(description="What the weights average (ensemble.average).")
    branches: list[str] = Field(description="The branches the ensemble combines.")


class Health(BaseModel):
    """What the server loaded, and how much it has done."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]
    genres: int = Field(description="How many genres a prediction scores.")
    branches: list[str] = Field(description="The branches loaded.")
    ensemble: EnsembleInfo
    models: dict[str, str] = Field(description="Each model directory's fingerprint: sha256 of its files, 16 digits.")
    git_commit: str | None = Field(description="The checkout's commit; null outside git.")
    max_upload_mb: float = Field(description="The largest request body, in MB (--max-upload-mb).")
    uptime_s: float = Field(description="Seconds since the server started.")
    predictions: int = Field(description="Movies predicted since then.")


def predict_request_body() -> dict[str, Any]:
    """``POST /predict``'s two request bodies, from ``MovieForm`` and ``PlotBody``."""
    return {
        "required": True,
        "description": "A poster (file) and/or a plot (text): as a multipart form, or a JSON body with the plot alone.",
        "content": {
            "multipart/form-data": {"schema": MovieForm.model_json_schema()},
            "application/json": {"schema": PlotBody.model_json_schema()},
        },
    }


def errors(descriptions: dict[int | str, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses whose body is ``ErrorBody``, one per status."""
    return {status: {"model": ErrorBody, "description": text} for status, text in descriptions.items()}


# What any route may answer: uvicorn's and the middleware's refusals come before the route runs.
ANY_ROUTE = errors({
    400: "The Host header names no host this server answers to (--allowed-host), or a request HTTP/1.1 "
         "cannot parse (then the connection closes).",
    408: "The request's headers did not arrive in time (then the connection closes).",
    500: "The server failed; its log says why.",
    503: "--max-connections are open, or --max-inflight-mb of bodies are arriving (see Retry-After), "
         "or the server is stopping.",
    "default": "Any other error, as the same JSON: a method the route does not take (405), for one.",
})  # fmt: skip

PREDICT = {
    200: {"model": Prediction, "description": "The genre set, then the genres by ensemble probability."},
    **ANY_ROUTE,
    **errors({
        400: "A bad poster or plot, or neither given, a second poster or plot, an unknown form field, a "
             f"JSON body nested deeper than {MAX_JSON_DEPTH} levels, top below 0; or as for any route.",
        408: "The headers or the body did not arrive in time.",
        413: f"A body over --max-upload-mb, or a plot over {MAX_PLOT_CHARS:,} characters.",
        415: "Neither a multipart form nor JSON.",
        500: "The prediction failed; the server's log says why.",
        503: "The queue of movies waiting for the predictor is full, --max-inflight-mb of bodies are "
             "arriving or --max-connections are open (see Retry-After), or the server is stopping.",
    }),
}  # fmt: skip

HEALTH = {200: {"model": Health, "description": "The genres, branches and models loaded."}, **ANY_ROUTE}

# The page's route answers HTML, and FastAPI files a response model under its route's media type:
# its errors, JSON like every other, name ErrorBody's schema (which the other routes register).
PAGE = {
    200: {"description": "The page."},
    **{
        status: {"description": response["description"],
                 "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        for status, response in ANY_ROUTE.items()
    },
}  # fmt: skip
