#!/usr/bin/env python3
"""The official `openai` Python client against a running `lserve serve`.

Usage: openai_client_check.py BASE_URL MODEL_ID [API_KEY]
Checks completions, streaming completions, chat and streaming chat (greedy:
streamed text equals the non-streamed text), the model list, and that an
invalid request raises BadRequestError naming the field. Exits 0 when all
hold, 1 with a message otherwise.
"""
import sys

import openai


def check(condition, message):
    if not condition:
        print("FAILED: " + message, file=sys.stderr)
        sys.exit(1)


def main():
    base_url, model = sys.argv[1], sys.argv[2]
    api_key = sys.argv[3] if len(sys.argv) > 3 else "unused"
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)

    models = client.models.list()
    check([m.id for m in models.data] == [model], "models.list: %r" % models)

    completion = client.completions.create(model=model, prompt="The quick brown fox", max_tokens=12,
                                           temperature=0, extra_body={"ignore_eos": True})
    check(len(completion.choices) == 1, "completions: one choice")
    check(completion.choices[0].finish_reason == "length", "completions: finish_reason %r"
          % completion.choices[0].finish_reason)
    check(completion.usage.completion_tokens == 12, "completions: usage %r" % completion.usage)
    text = completion.choices[0].text

    streamed = ""
    finish = None
    for chunk in client.completions.create(model=model, prompt="The quick brown fox", max_tokens=12, temperature=0,
                                           stream=True, extra_body={"ignore_eos": True}):
        for choice in chunk.choices:
            streamed += choice.text or ""
            finish = choice.finish_reason or finish
    check(streamed == text, "completions stream %r != %r" % (streamed, text))
    check(finish == "length", "completions stream: finish_reason %r" % finish)

    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=10, temperature=0, seed=3)
    check(chat.choices[0].message.role == "assistant", "chat: role")
    check(chat.choices[0].finish_reason in ("stop", "length"), "chat: finish_reason")
    chat_text = chat.choices[0].message.content

    streamed = ""
    roles = []
    usage = None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=10, temperature=0,
                                                seed=3, stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            streamed += choice.delta.content or ""
    check(roles == ["assistant"], "chat stream roles %r" % roles)
    check(streamed == chat_text, "chat stream %r != %r" % (streamed, chat_text))
    check(usage is not None and usage.completion_tokens >= 1, "chat stream usage %r" % usage)

    try:
        client.completions.create(model=model, prompt="x", max_tokens=4, temperature=-1)
        check(False, "temperature -1 accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "temperature" in str(e.body), "bad request body %r" % e.body)

    try:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=4)
        check(False, "unknown model accepted")
    except openai.NotFoundError as e:
        check(e.status_code == 404, "unknown model status %r" % e.status_code)

    print("ok")


if __name__ == "__main__":
    main()
