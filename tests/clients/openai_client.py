"""Drive a running Switchyard server with the official OpenAI Python client.

Usage: python openai_client.py BASE_URL   (e.g. http://127.0.0.1:8080/v1)
Exits non-zero with a message on the first failed expectation.
"""
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test-unused", max_retries=0)
ask = [{"role": "user", "content": "What is the capital of Veloria?"}]

# A routing policy, non-streaming: the answer and the trace extension field.
r = client.chat.completions.create(model="switchyard/largest", messages=ask)
assert r.choices[0].message.content == "Karsk.", r
assert r.usage.total_tokens > 0, r.usage
trace = r.model_extra["switchyard"]
assert trace["trajectory"]["calls"][0]["model"] == "claude-geo", trace

# A routing policy, streaming.
text, usage = "", None
for chunk in client.chat.completions.create(model="switchyard/largest", messages=ask, stream=True):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == "Karsk.", text
assert usage is not None and usage.total_tokens > 0, usage

# A pool model passed through, streaming with usage.
text, usage = "", None
stream = client.chat.completions.create(
    model="echo",
    messages=[{"role": "user", "content": "hello there"}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == "echo: hello there", text
assert usage is not None and usage.completion_tokens > 0, usage

# Models are listed; unknown models are a NotFoundError.
ids = [m.id for m in client.models.list()]
assert "switchyard/cascade" in ids and "geo" in ids, ids
try:
    client.chat.completions.create(model="gpt-nonexistent", messages=ask)
    raise AssertionError("an unknown model must fail")
except openai.NotFoundError as e:
    assert "gpt-nonexistent" in str(e), e

print("ok")
