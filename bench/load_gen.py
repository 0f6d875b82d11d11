#!/usr/bin/env python3
"""Load generator for an OpenAI-compatible server (lserve serve, or any peer).

Sends streaming /v1/completions requests with mixed prompt lengths at fixed
concurrency levels and reports, per level: requests/s, generated tokens/s,
and TTFT / TPOT / end-to-end latency percentiles. Standard library only, so it
runs unchanged wherever Python 3 does (the CPU machine, the GPU machine).

  python3 bench/load_gen.py --url http://127.0.0.1:8000 --concurrency 1 4 16 64 \
      --requests 64 --prompt-tokens 32 256 1024 --max-tokens 64 [--json out.json]

Prompts are token-id arrays (random ids in [100, 10000), seeded), so their
lengths are exact whatever the tokenizer; every request sets ignore_eos so it
generates exactly --max-tokens tokens.
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse


def percentile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def one_request(url, model, prompt, max_tokens, timeout):
    """Streams one completion; returns (ttft_s, e2e_s, n_tokens, error)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    if model:
        body["model"] = model
    t0 = time.perf_counter()
    ttft = None
    n_tokens = 0
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return None, time.perf_counter() - t0, 0, f"HTTP {resp.status}: {resp.read()[:200]!r}"
        for raw in resp:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                return ttft, time.perf_counter() - t0, n_tokens, str(event["error"])
            if event.get("usage"):
                n_tokens = event["usage"].get("completion_tokens", n_tokens)
            if event.get("choices") and event["choices"][0].get("text"):
                if ttft is None:
                    ttft = time.perf_counter() - t0
        return ttft, time.perf_counter() - t0, n_tokens, None
    except Exception as e:  # a failed request is reported, not fatal to the run
        return ttft, time.perf_counter() - t0, n_tokens, repr(e)
    finally:
        conn.close()


def run_level(args, concurrency, prompts):
    results = []
    lock = threading.Lock()
    next_index = [0]

    def worker():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(prompts):
                return
            r = one_request(args.url, args.model, prompts[i], args.max_tokens, args.timeout)
            with lock:
                results.append((len(prompts[i]),) + r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r[4] is None]
    errors = [r[4] for r in results if r[4] is not None]
    ttft = [r[1] for r in ok if r[1] is not None]
    tpot = [(r[2] - r[1]) / (r[3] - 1) for r in ok if r[1] is not None and r[3] > 1]
    e2e = [r[2] for r in ok]
    gen = sum(r[3] for r in ok)
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "ok": len(ok),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": wall,
        "requests_per_s": len(ok) / wall,
        "generated_tokens_per_s": gen / wall,
        "prompt_tokens_per_s": sum(r[0] for r in ok) / wall,
        "ttft_ms": {q: 1000 * percentile(ttft, q) for q in (50, 90, 99)},
        "tpot_ms": {q: 1000 * percentile(tpot, q) for q in (50, 90, 99)},
        "e2e_ms": {q: 1000 * percentile(e2e, q) for q in (50, 90, 99)},
        "mean_tpot_ms": 1000 * statistics.fmean(tpot) if tpot else float("nan"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--model", default="")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    p.add_argument("--prompt-tokens", type=int, nargs="+", default=[32, 256, 1024],
                   help="prompt lengths, used in turn")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args()

    rng = random.Random(args.seed)
    levels = []
    print(f"# {args.url}  requests/level={args.requests}  prompt tokens={args.prompt_tokens}  "
          f"max_tokens={args.max_tokens}")
    print(f"{'conc':>5} {'ok':>4} {'req/s':>7} {'gen tok/s':>10} {'TTFT p50/p90/p99 ms':>24} "
          f"{'TPOT p50/p90/p99 ms':>22}")
    for c in args.concurrency:
        prompts = [[rng.randrange(100, 10000) for _ in range(args.prompt_tokens[i % len(args.prompt_tokens)])]
                   for i in range(args.requests)]
        r = run_level(args, c, prompts)
        levels.append(r)
        t, o = r["ttft_ms"], r["tpot_ms"]
        print(f"{c:>5} {r['ok']:>4} {r['requests_per_s']:>7.2f} {r['generated_tokens_per_s']:>10.1f} "
              f"{t[50]:>8.0f}/{t[90]:>6.0f}/{t[99]:>6.0f} {o[50]:>8.1f}/{o[90]:>6.1f}/{o[99]:>6.1f}"
              + (f"  errors: {r['errors']} ({r['first_error']})" if r["errors"] else ""))
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"url": args.url, "max_tokens": args.max_tokens, "prompt_tokens": args.prompt_tokens,
                       "levels": levels}, f, indent=1)


if __name__ == "__main__":
    main()
