#!/usr/bin/python3
"""planb_producer.py -- ask planb from Python: push a job, wait on its reply list.

The whole contract is JSON in, JSON out over Redis (README "Producer contract"):
LPUSH the job onto planb:q:<queue> with "reply": true, then BLPOP
planb:reply:<id> for the one result. Needs only Debian's python3-redis.

    from planb_producer import ask
    result = ask(redis.Redis(), [{"role": "user", "content": "Where is my order?"}])
    print(result["content"], result["source"])

As a command:  /usr/bin/python3 planb_producer.py [--redis URL] [--timeout S] QUESTION
prints the result JSON and exits 0 ok, 1 degraded, 3 invalid, 4 no result in time
(the same codes as `planb submit --wait`).
"""
import argparse
import json
import sys
import time
import uuid

import redis


def ask(r, messages, *, queue="default", prefix="planb", timeout_s=60.0, **fields):
    """Pushes one job and returns its result (a dict); raises TimeoutError when none arrives.

    fields are other job fields (route, tenant, params, deadline_ms, critical, meta, id).
    Give an id of your own to make a retried push idempotent: planb stores one result per id.
    """
    job_id = fields.pop("id", None) or "py-" + uuid.uuid4().hex
    job = dict(fields, id=job_id, messages=messages, reply=True,
               submitted_at_ms=int(time.time() * 1000))
    r.lpush(f"{prefix}:q:{queue}", json.dumps(job))
    got = r.blpop([f"{prefix}:reply:{job_id}"], timeout=timeout_s)
    if got is None:
        # The job may still finish later: its result stays readable at planb:result:<id>.
        raise TimeoutError(f"no result for {job_id} within {timeout_s} s")
    return json.loads(got[1])


EXIT_FOR_STATUS = {"ok": 0, "degraded": 1, "invalid": 3}


def main():
    p = argparse.ArgumentParser(description="Ask planb one question and print the result JSON.")
    p.add_argument("question")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    p.add_argument("--queue", default="default")
    p.add_argument("--route", default=None)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    a = p.parse_args()
    r = redis.Redis.from_url(a.redis)
    fields = {"route": a.route} if a.route else {}
    try:
        res = ask(r, [{"role": "user", "content": a.question}], queue=a.queue,
                  timeout_s=a.timeout, **fields)
    except TimeoutError as e:
        print(e, file=sys.stderr)
        return 4
    print(json.dumps(res))
    return EXIT_FOR_STATUS.get(res.get("status"), 3)


if __name__ == "__main__":
    sys.exit(main())
