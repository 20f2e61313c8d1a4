"""``compute_score`` against ``compute_score_async`` under verl's reward loop, with a slow judge.

Run in the verl environment:

    ~/.cache/sgpo/verl-venv/bin/python benchmarks/verl_reward_concurrency.py --responses 96 --delay 0.3

N wrong responses of the arithmetic task go through one verl ``RewardLoopWorker`` (verl's naive
reward manager), all at once as verl's agent loop streams them; the step judge is ``llm_http`` at a
loopback OpenAI-compatible server (started here) that answers every request after ``--delay``
seconds. Prints, per function, the wall time and the most requests the server had in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from verl_judge_calls import verl_batch


class SlowJudgeServer:
    """Chat completions answering ``\\boxed{1}`` after ``delay`` s; counts requests in flight."""

    def __init__(self, delay: float):
        self.in_flight = self.max_in_flight = self.requests = 0
        lock, server = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(delay)
                body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "\\boxed{1}"}}]})
                with lock:
                    server.in_flight -= 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def run(name: str, n: int, delay: float, tmp: Path) -> dict:
    import verl
    from hydra import compose, initialize_config_dir
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker, migrate_legacy_reward_impl

    from sgpo.models.policies import arith_tokenizer
    from sgpo.rollouts.file import RolloutRecord
    from sgpo.tasks.arith import ArithTask

    server = SlowJudgeServer(delay)
    judge = tmp / f"{name}.yaml"
    judge.write_text(f"judge:\n  kind: llm_http\n  cache: false\n  http: {{base_url: '{server.url}', model: m, "
                     "concurrency: 1024}\n")
    overrides = [f"actor_rollout_ref.model.path={tmp}", "reward.custom_reward_function.path=pkg://sgpo.integrations.verl.reward",
                 f"reward.custom_reward_function.name={name}",
                 f"+reward.custom_reward_function.reward_kwargs.judge_config={judge}"]
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        cfg = migrate_legacy_reward_impl(compose(config_name="ppo_trainer", overrides=overrides))
    problems = ArithTask().problems("train", n)
    records = []
    for i, p in enumerate(problems):  # the reference with its last line's result off by one: wrong
        lines = p.reference.split("\n")
        records.append(RolloutRecord(i, 0, p.id, p.question, p.reference, p.answer, p.question,
                                     "\n".join(lines[:-1] + ["Answer: " + str(int(p.answer) + 1)]), [], [], [], 0.0, None))
    data = verl_batch(records, 1, arith_tokenizer())

    async def main():
        worker = RewardLoopWorker(cfg)
        start = time.perf_counter()
        out = await asyncio.gather(*(worker.compute_score(data[i:i + 1]) for i in range(len(data))))
        return out, time.perf_counter() - start

    out, seconds = asyncio.run(main())
    server.httpd.shutdown()
    return {"function": name, "responses": n, "judged": sum(o["reward_extra_info"]["judged"] for o in out),
            "requests": server.requests, "max_in_flight": server.max_in_flight, "seconds": round(seconds, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=96)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds the judge server takes per request")
    args = parser.parse_args(argv)
    from sgpo.models.policies import arith_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        arith_tokenizer().save_pretrained(tmp)
        for name in ("compute_score", "compute_score_async"):
            print(json.dumps(run(name, args.responses, args.delay, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
