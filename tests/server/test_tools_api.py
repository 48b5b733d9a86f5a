"""Tool calling through the official openai client (scripted backend; the real model is in
test_tools_model.py): tools reach the model, calls come back as tool_calls, streamed too."""

from __future__ import annotations

import json

import openai
import pytest
from server_harness import Served, ServeFactory

from smallhold.runtime.backends.scripted import ScriptedBackend

pytestmark = pytest.mark.timeout(60)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_a_call_in_the_reply_comes_back_as_tool_calls(serve: ServeFactory) -> None:
    api: Served = serve(ScriptedBackend([CALL]))
    resp = api.client.chat.completions.create(model="scripted", messages=ASK,
                                              tools=[WEATHER, CLOCK])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"} and call.id.startswith("call_")
    sent = api.scripted.requests[-1].params
    assert [t["function"]["name"] for t in sent.tools or []] == ["get_weather", "get_time"]
    assert sent.json_schema is None  # auto: the model may answer in text


def test_text_stays_text_and_unknown_functions_are_not_calls(serve: ServeFactory) -> None:
    api: Served = serve(ScriptedBackend([
        "It is sunny.", '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>']))
    first = api.client.chat.completions.create(model="scripted", messages=ASK, tools=[WEATHER])
    assert first.choices[0].message.content == "It is sunny."
    assert first.choices[0].finish_reason == "stop" and not first.choices[0].message.tool_calls
    second = api.client.chat.completions.create(model="scripted", messages=ASK, tools=[WEATHER])
    assert not second.choices[0].message.tool_calls  # not a tool it was given


def test_required_and_named_choices_constrain_decoding(serve: ServeFactory) -> None:
    api: Served = serve(ScriptedBackend(['{"name": "get_weather", "arguments": {"city": "Oslo"}}']))
    resp = api.client.chat.completions.create(
        model="scripted", messages=ASK, tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    [call] = resp.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    schema = api.scripted.requests[-1].params.json_schema or {}
    assert schema["properties"]["name"] == {"const": "get_weather"}
    assert schema["properties"]["arguments"]["required"] == ["city"]
    api.client.chat.completions.create(model="scripted", messages=ASK, tools=[WEATHER, CLOCK],
                                       tool_choice="required")
    either = api.scripted.requests[-1].params.json_schema or {}
    assert [o["properties"]["name"]["const"] for o in either["anyOf"]] == ["get_weather",
                                                                          "get_time"]
    api.client.chat.completions.create(model="scripted", messages=ASK, tools=[WEATHER],
                                       tool_choice="none")
    assert api.scripted.requests[-1].params.tools is None  # none: tools not shown


def test_a_streamed_call(serve: ServeFactory) -> None:
    api: Served = serve(ScriptedBackend([CALL]))
    chunks = list(api.client.chat.completions.create(
        model="scripted", messages=ASK, tools=[WEATHER], stream=True,
        stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert calls[0].function.name == "get_weather" and calls[0].index == 0
    assert json.loads(calls[0].function.arguments or "") == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None


def test_the_conversation_goes_on_with_the_tools_answer(serve: ServeFactory) -> None:
    api: Served = serve(ScriptedBackend(["It is 21 °C in Paris."]))
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 21}'}]
    resp = api.client.chat.completions.create(model="scripted", messages=history,
                                              tools=[WEATHER])
    assert resp.choices[0].message.content == "It is 21 °C in Paris."
    sent = api.scripted.requests[-1].messages
    assert sent[1].tool_calls[0].name == "get_weather" and sent[2].tool_call_id == "call_1"


def test_bad_tool_requests_are_400s(api: Served) -> None:
    with pytest.raises(openai.BadRequestError, match="not one of the tools"):
        api.client.chat.completions.create(
            model="scripted", messages=ASK, tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(openai.BadRequestError, match="tool_call_id"):
        api.client.chat.completions.create(model="scripted", messages=[
            {"role": "tool", "content": "x"}])


def test_a_template_without_tools_gets_them_in_the_system_turn() -> None:
    from smallhold.runtime.engine import tools_in_system

    turns = tools_in_system([{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "hi"}], [WEATHER])
    assert turns[0]["content"].startswith("Be brief.") and "get_weather" in turns[0]["content"]
    assert "<tool_call>" in turns[0]["content"] and turns[1] == {"role": "user", "content": "hi"}
    alone = tools_in_system([{"role": "user", "content": "hi"}], [WEATHER])
    assert alone[0]["role"] == "system" and len(alone) == 2
