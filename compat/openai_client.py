"""The official `openai` Python client against the horde's OpenAI-compatible API.

Run by server/tests/openai_client.rs with a test worker that answers "You said: <text>. Bye.",
streaming it word by word. Env: HORDE_OPENAI_URL (.../v1), HORDE_KEY (a horde API key).
"""

import os

import openai

client = openai.OpenAI(base_url=os.environ["HORDE_OPENAI_URL"], api_key=os.environ["HORDE_KEY"], max_retries=0)

models = [m.id for m in client.models.list()]
assert "m" in models, models

chat = client.chat.completions.create(
    model="m",
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello horde"}],
    max_tokens=40,
    temperature=0.7,
    top_p=0.9,
    seed=42,
)
assert chat.choices[0].message.role == "assistant", chat
assert chat.choices[0].message.content == "You said: hello horde. Bye.", chat
assert chat.choices[0].finish_reason == "stop", chat
assert chat.usage is not None and chat.usage.completion_tokens > 0, chat

pieces = []
usage = None
for chunk in client.chat.completions.create(
    model="m",
    messages=[{"role": "user", "content": "stream to me"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
assert "".join(pieces) == "You said: stream to me. Bye.", pieces
assert len(pieces) > 1, f"not streamed: {pieces}"
assert usage is not None and usage.total_tokens > 0, usage

completion = client.completions.create(model="m", prompt="Knock knock", max_tokens=20, stop=["\n"])
assert completion.choices[0].text == "You said: Knock knock. Bye.", completion

streamed = "".join(
    c.choices[0].text for c in client.completions.create(model="m", prompt="Once", max_tokens=30, stream=True) if c.choices
)
assert streamed == "You said: Once. Bye.", streamed

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404

bad = openai.OpenAI(base_url=os.environ["HORDE_OPENAI_URL"], api_key="not-a-real-key", max_retries=0)
try:
    bad.models.list()  # listing is public
    bad.completions.create(model="m", prompt="x")
    raise AssertionError("bad key accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401

print("openai client: OK")
