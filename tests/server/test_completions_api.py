"""/v1/completions, /v1/models/{id} and model aliases, through the official openai client."""

from __future__ import annotations

import httpx
import openai
import pytest
from server_harness import Served, ServeFactory, scripted_settings

from smallhold.config import ServerSettings
from smallhold.runtime.backends.scripted import ScriptedBackend

pytestmark = pytest.mark.timeout(60)


def test_a_text_completion_continues_the_prompt_as_it_is(api: Served) -> None:
    resp = api.client.completions.create(model="scripted", prompt="Once upon a time",
                                         max_tokens=8, temperature=0, stop=["\n"])
    assert resp.object == "text_completion" and resp.id.startswith("cmpl-")
    assert resp.choices[0].text == "Hello there, friend." and resp.choices[0].finish_reason
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    sent = api.scripted.requests[-1]
    assert [m.content for m in sent.messages] == ["Once upon a time"]  # no template, no system
    assert sent.params.max_tokens == 8 and sent.params.stop == ["\n"]


def test_a_streamed_text_completion(api: Served) -> None:
    chunks = list(api.client.completions.create(
        model="scripted", prompt=["Once"], max_tokens=8, stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello there, friend."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert all(c.object == "text_completion" for c in chunks)


def test_unsupported_completion_fields_are_refused_not_ignored(api: Served) -> None:
    with pytest.raises(openai.BadRequestError, match="echo, suffix and logprobs"):
        api.client.completions.create(model="scripted", prompt="x", echo=True)
    with pytest.raises(openai.BadRequestError, match="one prompt per request"):
        api.client.completions.create(model="scripted", prompt=["a", "b"])


def test_models_are_listed_and_retrieved_one_by_one(api: Served) -> None:
    ids = [m.id for m in api.client.models.list()]
    assert ids == ["scripted", "all-minilm-l6-v2"]  # the embedding model is served too
    one = api.client.models.retrieve("scripted")
    assert (one.id, one.object, one.owned_by) == ("scripted", "model", "smallhold")
    with pytest.raises(openai.NotFoundError, match="no model named 'gpt-9'"):
        api.client.models.retrieve("gpt-9")


def test_aliases_let_clients_keep_their_hard_coded_names(serve: ServeFactory) -> None:
    settings = scripted_settings().model_copy(update={"server": ServerSettings(aliases={
        "gpt-4o-mini": "scripted", "text-embedding-3-small": "all-minilm-l6-v2"})})
    api = serve(ScriptedBackend(["fine"]), settings)
    resp = api.client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "fine"
    assert api.scripted.requests[-1].model == "scripted"
    ids = [m.id for m in api.client.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert api.client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    vectors = api.client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert len(vectors.data[0].embedding) == 384 and vectors.model == "all-minilm-l6-v2"


def test_aliases_come_from_the_environment_as_pairs() -> None:
    parsed = ServerSettings.model_validate({"aliases": "gpt-4o-mini=scripted, b = c"})
    assert parsed.aliases == {"gpt-4o-mini": "scripted", "b": "c"}
    with pytest.raises(ValueError, match="NAME=MODEL"):
        ServerSettings.model_validate({"aliases": "just-a-name"})


def test_a_completion_body_is_checked_like_a_chat_body(api: Served) -> None:
    bad = httpx.post(f"{api.url}/v1/completions", json={"prompt": "x", "max_tokens": 0})
    assert bad.status_code == 400 and "max_tokens" in bad.text
