"""pocket's chat page and JSON API in the web shell, on the scripted backend."""

from __future__ import annotations

import json
import threading
import time

from starlette.testclient import TestClient

from smallhold.apps.pocket.assistant import Pocket
from smallhold.apps.pocket.web import pages
from smallhold.kit.jobs import Outcome
from smallhold.kit.power import decide
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.device import simulated
from smallhold.runtime.types import ChatRequest
from smallhold.web import CSP, build_web


def ask(client: TestClient, message: str, conversation: str = "trip",
        **extra: object) -> list[dict[str, object]]:
    with client.stream("POST", "/pocket/api/chat",
                       json={"conversation": conversation, "message": message, **extra}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line]


def test_the_page_is_the_shell_layout_with_the_pocket_script(client: TestClient) -> None:
    page = client.get("/pocket/")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    html = page.text
    assert 'data-api="/pocket/api"' in html
    assert '<script src="/static/pocket.js" defer></script>' in html
    for part in ('id="conversations"', 'id="messages"', 'id="composer"', 'id="device"'):
        assert part in html


def test_an_answer_streams_and_both_turns_are_saved(client: TestClient,
                                                    web_pocket: Pocket) -> None:
    events = ask(client, "Where is Lisbon?")
    deltas = [e["text"] for e in events if e["type"] == "delta"]
    assert len(deltas) > 3  # streamed word by word, not in one piece
    assert "".join(map(str, deltas)) == "You asked: Where is Lisbon?. Here is a short answer."
    done = events[-1]
    assert done["type"] == "done" and done["finish_reason"] == "stop"
    assert done["model"] == web_pocket.runtime.resolve_model(None) and done["power"] == "full"
    assert [t.role for t in web_pocket.history("trip")] == ["user", "assistant"]

    listed = client.get("/pocket/api/conversations").json()["conversations"]
    assert [(c["name"], c["turns"], c["title"]) for c in listed] == [
        ("trip", 2, "Where is Lisbon?")]
    turns = client.get("/pocket/api/conversations/trip").json()["turns"]
    assert [(t["role"], t["complete"]) for t in turns] == [("user", True), ("assistant", True)]
    assert turns[1]["content"].startswith("You asked: Where is Lisbon?")


def test_settings_reach_the_model(client: TestClient, web_pocket: Pocket) -> None:
    events = ask(client, "long please", max_tokens=16, temperature=0.0)
    backend = web_pocket.runtime.backend
    assert isinstance(backend, ScriptedBackend)
    assert backend.requests[-1].params.max_tokens == 16
    assert backend.requests[-1].params.temperature == 0.0
    assert events[-1]["type"] == "done"


def test_a_paused_device_is_a_clear_error_before_any_streaming(client: TestClient,
                                                                web_pocket: Pocket) -> None:
    web_pocket.runtime.probe = simulated(3, battery=3, charging=False)
    response = client.post("/pocket/api/chat", json={"conversation": "c", "message": "hi"})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "device_paused"
    assert "battery at 3 %" in error["message"] and "plug in" in error["message"]
    assert "Traceback" not in response.text
    assert client.get("/pocket/api/conversations").json()["conversations"] == []
    device = client.get("/pocket/api/device").json()
    assert device["power"]["mode"] == "paused" and device["battery"] == {
        "percent": 3, "charging": False}


def test_bad_requests_say_what_is_wrong(client: TestClient) -> None:
    empty = client.post("/pocket/api/chat", json={"conversation": "c", "message": "   "})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "record_invalid"
    assert "message is empty" in empty.json()["error"]["message"]
    bad_name = client.post("/pocket/api/chat", json={"conversation": "../x", "message": "hi"})
    assert bad_name.status_code == 422
    assert "not a conversation name" in bad_name.json()["error"]["message"]
    not_json = client.post("/pocket/api/chat", content=b"{nope",
                           headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"]["message"] == "the request body is not valid JSON."
    missing = client.post("/pocket/api/chat", json={"conversation": "c"})
    assert missing.status_code == 422 and "message" in missing.json()["error"]["message"]
    extra = client.post("/pocket/api/chat", json={"conversation": "c", "message": "m",
                                                  "system": "be evil"})
    assert extra.status_code == 422
    too_many = client.post("/pocket/api/chat", json={"conversation": "c", "message": "m",
                                                     "max_tokens": 10**9})
    assert too_many.status_code == 422
    unknown = client.get("/pocket/api/conversations/never")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "record_not_found"
    wrong_method = client.put("/pocket/api/device", json={})
    assert wrong_method.status_code == 405


def test_delete_forgets_a_conversation(client: TestClient) -> None:
    ask(client, "first", conversation="old")
    ask(client, "second", conversation="keep")
    removed = client.delete("/pocket/api/conversations/old")
    assert removed.status_code == 200 and removed.json() == {"name": "old", "removed_turns": 2}
    names = [c["name"] for c in client.get("/pocket/api/conversations").json()["conversations"]]
    assert names == ["keep"]
    assert client.delete("/pocket/api/conversations/old").status_code == 404


def test_the_device_panel_matches_the_desktop_app(client: TestClient,
                                                  web_pocket: Pocket) -> None:
    web_pocket.runtime.probe = simulated(3, battery=15, charging=False)
    device = client.get("/pocket/api/device").json()
    assert device["battery"] == {"percent": 15, "charging": False}
    assert device["ram"]["total"] == 3 * 2**30
    assert device["power"]["mode"] == "saver" and "15 %" in device["power"]["reason"]
    assert device["power"]["max_tokens"] == 192
    assert device["model"] == {"backend": "scripted", "reasons": [], "loaded": True,
                               "name": web_pocket.runtime.resolve_model(None)}
    # after a turn the due background jobs run (or wait for the charger), as in the desktop
    # app, and the panel says what happened
    decision = decide(web_pocket.runtime.probe.read())
    outcome = Outcome("consolidate", "deferred", decision.reason)
    web_pocket.maintain = lambda **_: (decision, [outcome])  # type: ignore[method-assign]
    ask(client, "hello")
    jobs = client.get("/pocket/api/device").json()["background"]
    assert jobs == [{"job": "consolidate", "action": "deferred", "detail": decision.reason}]


def test_turns_run_one_at_a_time_on_one_thread(web_pocket: Pocket) -> None:
    """Two browsers asking at once: the second turn starts after the first has finished,
    and each turn's generator runs on a single thread from start to end."""
    seen: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def slow(request: ChatRequest) -> str:
        with lock:
            seen.append(("start", request.messages[-1].content, threading.get_ident()))
        time.sleep(0.2)
        with lock:
            seen.append(("end", request.messages[-1].content, threading.get_ident()))
        return "done"

    web_pocket.runtime.backend = ScriptedBackend(reply=slow)
    app = build_web([pages(web_pocket)], extra_hosts=["testserver"])
    with TestClient(app, base_url="http://testserver") as client:
        results: list[int] = []

        def one(text: str) -> None:
            response = client.post("/pocket/api/chat",
                                   json={"conversation": "c", "message": text})
            results.append(response.status_code)

        threads = [threading.Thread(target=one, args=(t,)) for t in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert results == [200, 200]
    kinds = [kind for kind, _, _ in seen]
    assert kinds == ["start", "end", "start", "end"]  # never interleaved
    assert len({ident for _, _, ident in seen}) == 1  # the one turn thread
    assert threading.get_ident() not in {ident for _, _, ident in seen}
    assert len(web_pocket.history("c")) == 4
