"""The HTTP search service (`ddro serve`), on FastAPI.

Endpoints (answers in pyserini's REST shape where it has one):

- `GET /v1/search?query=...&hits=10[&beams=B]`: `{"query": {"text"}, "candidates": [{"docid", "score",
  "rank", "doc"}]}` (`doc`: title, text, url of the document);
- `POST /v1/search` with `{"queries": [{"qid", "text"}], "hits", "num_beams"}`:
  `{"results": [{"query": {"qid", "text"}, "candidates": [...]}]}`;
- `GET /v1/doc/{doc_id}`: the document; `GET /healthz`; `GET /metrics` (Prometheus text);
- `GET /`: the search page.

Every search goes through one `MicroBatcher`, so concurrent requests share beam searches. Limits
(`Limits`) cap hits, beams, query length and queries per request: beyond them, or for a malformed
request, the answer is 422 with a message; a full queue answers 429 with `Retry-After`.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from ddro.collections.base import Query
from ddro.serving.batching import MicroBatcher, QueueFull
from ddro.serving.metrics import ServiceMetrics
from ddro.serving.page import SEARCH_PAGE

SNIPPET_WORDS = 40


@dataclass(frozen=True)
class Limits:
    max_hits: int = 100
    max_beams: int = 100
    max_query_chars: int = 1000
    max_queries: int = 64  # per POST request
    default_hits: int = 10


@dataclass(frozen=True)
class Batching:
    window_ms: float = 5.0
    max_queries: int = 32
    max_waiting: int = 256


class RequestError(Exception):
    """A request the service will not run: answered 422 with this message."""


def create_app(retriever, documents: dict, limits: Limits = Limits(), batching: Batching = Batching(),
               default_beams: int = 20):
    """The FastAPI app over a `GenerativeRetriever` and `{doc_id: Document}`; a request without a beam
    width searches with `default_beams`, widened to its hits."""
    metrics = ServiceMetrics()
    batcher = MicroBatcher(lambda queries, k, beams: retriever.search(queries, k=k, num_beams=beams, progress=False,
                                                                        batch_size=max(1, len(queries))),
                           batching.window_ms, batching.max_queries, batching.max_waiting, metrics.batch)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()  # the requests already waiting are answered first

    app = FastAPI(title="ddro search", lifespan=lifespan)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.request(getattr(route, "path", "other"), response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(RequestError)
    async def refused(request, exc: RequestError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def malformed(request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": problems or "malformed request"}, status_code=422)

    def checked(hits, beams) -> tuple[int, int]:
        hits = limits.default_hits if hits is None else hits
        if not 1 <= hits <= limits.max_hits:
            raise RequestError(f"hits must be between 1 and {limits.max_hits} (got {hits})")
        beams = default_beams if beams is None else beams
        if not 1 <= beams <= limits.max_beams:
            raise RequestError(f"beams must be between 1 and {limits.max_beams} (got {beams})")
        return hits, max(beams, hits)

    def text_of(text) -> str:
        if not isinstance(text, str) or not text.strip():
            raise RequestError("a query's text must be a non-empty string")
        if len(text) > limits.max_query_chars:
            raise RequestError(f"a query is at most {limits.max_query_chars} characters (got {len(text)})")
        return text

    def candidates(ranked) -> list[dict]:
        out = []
        for rank, (doc_id, score) in enumerate(ranked, start=1):
            doc = documents.get(doc_id)
            out.append({"docid": doc_id, "score": score, "rank": rank,
                        "doc": {"title": doc.title, "snippet": " ".join(doc.text.split()[:SNIPPET_WORDS]),
                                "url": doc.url} if doc else None})
        return out

    async def searched(queries: list[Query], hits: int, beams: int) -> dict:
        try:
            return await batcher.search(queries, hits, beams)
        except QueueFull:
            raise _Busy from None

    @app.exception_handler(_Busy)
    async def busy(request, exc):
        return JSONResponse({"detail": "the search queue is full; retry shortly"}, status_code=429,
                            headers={"Retry-After": "1"})

    @app.get("/v1/search")
    async def search_one(query: str, hits: int | None = None, beams: int | None = None):
        text = text_of(query)
        hits, beams = checked(hits, beams)
        run = await searched([Query("q", text)], hits, beams)
        return {"query": {"text": text}, "candidates": candidates(run["q"])}

    @app.post("/v1/search")
    async def search_many(request: Request):
        try:
            body = await request.json()
        except ValueError:
            raise RequestError("the body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("queries"), list) or not body["queries"]:
            raise RequestError('expected {"queries": [{"qid": ..., "text": ...}, ...], "hits": N, "num_beams": B}')
        if len(body["queries"]) > limits.max_queries:
            raise RequestError(f"at most {limits.max_queries} queries a request (got {len(body['queries'])})")
        queries = []
        for i, item in enumerate(body["queries"]):
            if not isinstance(item, dict) or "qid" not in item:
                raise RequestError(f"queries[{i}]: expected an object with qid and text")
            queries.append(Query(str(item["qid"]), text_of(item.get("text"))))
        if len({q.query_id for q in queries}) != len(queries):
            raise RequestError("query ids must be unique within a request")
        hits, beams = body.get("hits"), body.get("num_beams")
        if any(v is not None and (not isinstance(v, int) or isinstance(v, bool)) for v in (hits, beams)):
            raise RequestError("hits and num_beams must be integers")
        hits, beams = checked(hits, beams)
        run = await searched(queries, hits, beams)
        return {"results": [{"query": {"qid": q.query_id, "text": q.text}, "candidates": candidates(run[q.query_id])}
                            for q in queries]}

    @app.get("/v1/doc/{doc_id}")
    async def document(doc_id: str):
        doc = documents.get(doc_id)
        if doc is None:
            return JSONResponse({"detail": f"no document {doc_id!r}"}, status_code=404)
        return {"docid": doc.doc_id, "title": doc.title, "text": doc.text, "url": doc.url}

    @app.get("/healthz")
    async def health():
        return {"status": "ok", "documents": len(documents), "waiting": batcher.waiting}

    @app.get("/metrics")
    async def exposition():
        return PlainTextResponse(metrics.text(batcher.waiting), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def page():
        return HTMLResponse(SEARCH_PAGE)

    app.state.metrics, app.state.batcher = metrics, batcher
    return app


class _Busy(Exception):
    """The batcher's queue is full: answered 429."""
