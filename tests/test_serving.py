"""The HTTP search service: answers equal to the retriever's own search, micro-batching, limits,
errors, metrics; the search page in a real headless browser; `ddro serve` stopping on SIGTERM."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'ddro[serve]')")
pytest.importorskip("httpx", reason="the serve extra is not installed (pip install 'ddro[serve]')")

from fastapi.testclient import TestClient  # noqa: E402

from ddro.collections.base import Query  # noqa: E402
from ddro.retrieval import GenerativeRetriever  # noqa: E402
from ddro.serving.app import Batching, Limits, create_app  # noqa: E402
from ddro.serving.batching import MicroBatcher, QueueFull  # noqa: E402

from conftest import write_beir  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny):
    collection, model = tiny
    retriever = GenerativeRetriever(model)
    return retriever, {d.doc_id: d for d in collection.docs}, collection


def client_of(served, **options):
    retriever, documents, _ = served
    return TestClient(create_app(retriever, documents, **options))


def same_ranking(found, wanted) -> bool:
    """The same documents in the same order, scores equal up to float noise (the batch differs)."""
    return [d for d, _ in found] == [d for d, _ in wanted] and \
        [s for _, s in found] == pytest.approx([s for _, s in wanted], abs=1e-4)


def expected(retriever, text, hits, beams):
    return [(doc, score) for doc, score in retriever.search([Query("x", text)], k=hits, num_beams=max(beams, hits),
                                                           progress=False)["x"]]


def test_search_answers_in_pyserini_shape_as_the_retriever_ranks(served):
    retriever, documents, _ = served
    with client_of(served) as client:
        answer = client.get("/v1/search", params={"query": "wing lift", "hits": 5, "beams": 10})
        assert answer.status_code == 200
        body = answer.json()
        assert body["query"] == {"text": "wing lift"}
        ranked = [(c["docid"], c["score"]) for c in body["candidates"]]
        assert same_ranking(ranked, expected(retriever, "wing lift", 5, 10))
        assert [c["rank"] for c in body["candidates"]] == [1, 2, 3, 4, 5]
        first = body["candidates"][0]
        assert first["doc"]["title"] == documents[first["docid"]].title
        batch = client.post("/v1/search", json={"queries": [{"qid": "a", "text": "wing lift"},
                                                            {"qid": "b", "text": "heat flow"}],
                                                "hits": 5, "num_beams": 10}).json()["results"]
        assert [r["query"]["qid"] for r in batch] == ["a", "b"]
        assert same_ranking([(c["docid"], c["score"]) for c in batch[0]["candidates"]], ranked)
        assert same_ranking([(c["docid"], c["score"]) for c in batch[1]["candidates"]],
                            expected(retriever, "heat flow", 5, 10))
        doc_id = first["docid"]
        assert client.get(f"/v1/doc/{doc_id}").json()["text"] == documents[doc_id].text
        assert client.get("/healthz").json()["status"] == "ok"
        page = client.get("/")
        assert page.status_code == 200 and "<form" in page.text


@pytest.mark.parametrize("request_args", [
    ("get", "/v1/search", {"params": {}}),  # no query
    ("get", "/v1/search", {"params": {"query": "x", "hits": 0}}),
    ("get", "/v1/search", {"params": {"query": "x", "hits": 101}}),
    ("get", "/v1/search", {"params": {"query": "x", "hits": "ten"}}),
    ("get", "/v1/search", {"params": {"query": "x", "beams": 1000}}),
    ("get", "/v1/search", {"params": {"query": "x" * 1001}}),
    ("get", "/v1/search", {"params": {"query": "   "}}),
    ("post", "/v1/search", {"content": b"not json", "headers": {"content-type": "application/json"}}),
    ("post", "/v1/search", {"json": {"queries": []}}),
    ("post", "/v1/search", {"json": {"queries": [{"qid": "a"}]}}),
    ("post", "/v1/search", {"json": {"queries": [{"qid": "a", "text": "x"}, {"qid": "a", "text": "y"}]}}),
    ("post", "/v1/search", {"json": {"queries": [{"qid": "a", "text": "x"}], "hits": "5"}}),
    ("post", "/v1/search", {"json": {"queries": [{"qid": str(i), "text": "x"} for i in range(65)]}}),
])
def test_malformed_or_oversized_requests_answer_422_with_a_message(served, request_args):
    method, path, kwargs = request_args
    with client_of(served) as client:
        answer = getattr(client, method)(path, **kwargs)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_unknown_document_is_404_and_metrics_count_requests_errors_and_batches(served):
    with client_of(served) as client:
        assert client.get("/v1/doc/nope").status_code == 404
        client.get("/v1/search", params={"query": "heat flow"})
        client.get("/v1/search", params={"hits": 0, "query": "x"})
        text = client.get("/metrics").text
    assert 'ddro_requests_total{endpoint="/v1/search",status="200"} 1' in text
    assert 'ddro_requests_total{endpoint="/v1/search",status="422"} 1' in text
    assert 'ddro_requests_total{endpoint="/v1/doc/{doc_id}",status="404"} 1' in text
    assert "ddro_errors_total 2" in text
    assert "ddro_batch_queries_count 1" in text and 'ddro_request_seconds_bucket{endpoint="/v1/search",le="+Inf"} 2' in text


def test_a_full_queue_answers_429_with_retry_after(served):
    with client_of(served, batching=Batching(max_waiting=0)) as client:
        answer = client.get("/v1/search", params={"query": "wing"})
    assert answer.status_code == 429 and answer.headers["retry-after"] == "1"


def run_concurrently(batcher, requests):
    async def main():
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.search(queries, hits, beams) for queries, hits, beams in requests),
                                        return_exceptions=True)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def fake_search(calls):
    def search(queries, k, beams):
        calls.append((len(queries), k, beams))
        time.sleep(0.01)
        return {q.query_id: [(f"{q.text}-{i}", -float(i)) for i in range(k)] for q in queries}

    return search


def test_micro_batching_gathers_concurrent_requests_and_keeps_each_answer_its_own():
    calls = []
    requests = [([Query("same-id", f"t{i}")], 1 + i % 3, 20) for i in range(12)] + [([Query("z", "w")], 2, 50)]
    answers = run_concurrently(MicroBatcher(fake_search(calls), window_ms=50, max_queries=8), requests)
    for (queries, hits, _), answer in zip(requests, answers):
        assert answer == {queries[0].query_id: [(f"{queries[0].text}-{i}", -float(i)) for i in range(hits)]}
    assert sum(size for size, _, _ in calls) == 13 and len(calls) < 13
    assert max(size for size, _, _ in calls) <= 8
    assert {beams for _, _, beams in calls} == {20, 50}  # other beam widths are not batched together
    one_at_a_time = []
    run_concurrently(MicroBatcher(fake_search(one_at_a_time), window_ms=0, max_queries=1), requests)
    assert len(one_at_a_time) == 13


def test_a_failed_search_fails_its_batch_and_a_full_queue_refuses():
    def broken(queries, k, beams):
        raise RuntimeError("model fell over")

    answers = run_concurrently(MicroBatcher(broken, window_ms=20), [([Query("a", "x")], 1, 1)] * 3)
    assert all(isinstance(a, RuntimeError) for a in answers)
    answers = run_concurrently(MicroBatcher(fake_search([]), max_waiting=0), [([Query("a", "x")], 1, 1)])
    assert isinstance(answers[0], QueueFull)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str | None:
    return next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture
def running_service(tiny, tmp_path):
    """`ddro serve` over the tiny model, started on a free loopback port; stopped by the test."""
    collection_dir = write_beir(tmp_path / "collection", n_docs=30)
    _, model = tiny
    model_dir = tmp_path / "model"
    from ddro.collections import load_collection

    collection = load_collection(collection_dir)
    assert [d.doc_id for d in collection.docs] == model.table.doc_ids
    model.save(model_dir)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ddro.cli", "serve", "--model", str(model_dir), "--collection",
                                str(collection_dir), "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise AssertionError(process.stderr.read())
    yield f"http://127.0.0.1:{port}", process
    if process.poll() is None:
        process.kill()


def test_serve_finishes_the_request_in_flight_on_sigterm(running_service):
    import threading

    import httpx

    url, process = running_service
    assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    # 64 queries at beam 100: well over a second of beam search, even for the tiny model.
    slow = {"queries": [{"qid": str(i), "text": f"wing lift heat flow {i}"} for i in range(64)], "hits": 100,
            "num_beams": 100}
    answers = []

    def ask():
        answers.append(httpx.post(f"{url}/v1/search", json=slow, timeout=120))
        answers.append(time.perf_counter())

    worker = threading.Thread(target=ask)
    worker.start()
    time.sleep(0.3)  # the request is in flight
    signalled = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    worker.join(timeout=120)
    assert answers and answers[0].status_code == 200 and len(answers[0].json()["results"]) == 64
    assert answers[1] > signalled  # answered after the signal: it was in flight
    assert process.wait(timeout=60) == 0  # a graceful stop
    assert process.stdout.read().startswith("serve: ")
    assert "Traceback" not in process.stderr.read()


def test_search_page_in_a_headless_browser(running_service, tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("DDRO_REQUIRE_BROWSER"):
            pytest.fail("DDRO_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium on this machine (CI installs Debian's)")
    url, process = running_service
    shots = Path(os.environ.get("DDRO_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
              f"--user-data-dir={tmp_path / 'profile'}"]
    page = f"{url}/?q=wing%20lift"
    dom = subprocess.run(common + ["--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    subprocess.run(common + [f"--screenshot={shots / 'search-page.png'}", "--window-size=1000,900", page],
                   capture_output=True, timeout=120)
    assert dom.count('class="hit"') == 10, dom[-2000:]
    assert "documents in" in dom and "doc d" in dom
    assert (shots / "search-page.png").read_bytes()[:4] == b"\x89PNG"
