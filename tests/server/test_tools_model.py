"""Tool calls from a real model (Qwen2.5-Coder 0.5B, whose chat template has tools) through
the real server and the official openai client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from server_harness import Served, served_runtime

from smallhold.config import RuntimeSettings, Settings
from smallhold.paths import resolve_paths
from smallhold.runtime import assets
from smallhold.runtime.registry import get_model
from smallhold.runtime.runtime import Runtime

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]
QWEN = "qwen2.5-coder-0.5b-instruct"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if assets.missing_packages(get_model(QWEN)):
        pytest.skip(f"{QWEN} is not installed")
    paths = resolve_paths({"SMALLHOLD_HOME": str(tmp_path_factory.mktemp("home"))})
    settings = Settings(runtime=RuntimeSettings(
        default_model=QWEN, n_ctx=2048, n_threads=2, keep_alive=-1, idle_preload_seconds=-1))
    with served_runtime(Runtime(settings, paths, trace=None)) as api:
        yield api


def test_the_model_calls_the_tool_with_arguments_that_parse(api: Served) -> None:
    resp = api.client.chat.completions.create(model=QWEN, messages=ASK, tools=[WEATHER],
                                              temperature=0, max_tokens=64)
    [call] = resp.choices[0].message.tool_calls or []
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert "paris" in json.loads(call.function.arguments)["city"].lower()


def test_a_required_call_is_held_to_the_schema_and_the_answer_follows(api: Served) -> None:
    resp = api.client.chat.completions.create(
        model=QWEN, messages=ASK, tools=[WEATHER], tool_choice="required",
        temperature=0, max_tokens=64)
    [call] = resp.choices[0].message.tool_calls or []
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str)
    history = [*ASK, resp.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id,
                "content": json.dumps({"celsius": 21, "sky": "clear"})}]
    final = api.client.chat.completions.create(model=QWEN, messages=history, tools=[WEATHER],
                                               temperature=0, max_tokens=48)
    assert "21" in (final.choices[0].message.content or "")
