"""novicezk/midjourney-proxy (docs/providers.md, midjourney_proxy): imagine, task fetch, account list, and the image host.

Routes (under ``/midjourney_proxy``): ``POST /mj/submit/imagine``, ``GET /mj/task/{id}/fetch``,
``GET /mj/account/list``, and ``GET /attachments/{task}/{file}.png`` standing in for Discord's
CDN.  Every ``/mj`` call needs a non-empty ``mj-api-secret`` (the emulated proxy has one set;
missing = 401 with an empty body, as the proxy's interceptor answers).  Submissions always get
HTTP 200 with a ``code``; tasks go NOT_START -> SUBMITTED -> IN_PROGRESS (``progress``, a preview
``imageUrl`` from half way) -> SUCCESS over ``TASK_S`` seconds.  The result is one picture at
2x2-grid size (tiles scaled down to ~512 px) for the prompt's ``--ar``; Midjourney has no
seed, so ``--seed N`` in the prompt picks the picture and it is random otherwise.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from probes.emulator.faults import FAULTS, IMAGE_FAULTS, REQUEST_FAULTS, FaultBoard, delay, service_of, timeline
from probes.emulator.images import image_for
from probes.emulator.responses import json_response

PROVIDER = "midjourney_proxy"
TASK_S = {"NOT_START": 0.05, "SUBMITTED": 0.15, "IN_PROGRESS": 0.25}  # seconds spent in each state
TILE = 512
INSTANCE_ID = "1118138338562560102"
MAX_TASKS = 256


@dataclass
class Task:
    id: str
    prompt: str
    submitted: float  # time.time()
    fault: str | None
    seed: int
    width: int
    height: int
    #: seconds spent in each state (``TASK_S``, or the ``timeline`` fault's script)
    states: dict[str, float] = field(default_factory=lambda: dict(TASK_S))

    def status(self, now: float) -> tuple[str, float]:
        """The state at ``now`` and the progress (0..1) through IN_PROGRESS."""
        elapsed = now - self.submitted
        for state, seconds in self.states.items():
            if elapsed < seconds or (state == "IN_PROGRESS" and self.fault == "stuck_job"):
                return state, min(elapsed / seconds, 0.99) if state == "IN_PROGRESS" and seconds else 0.0
            elapsed -= seconds
        return ("FAILURE" if self.fault in ("job_failure", "output_safety", "quota_exhausted") else "SUCCESS"), 1.0


FAIL_REASONS = {
    "job_failure": "Internal Error: Sorry! Something went wrong. Please try again later.",
    "output_safety": "Request cancelled due to image filters",
    "quota_exhausted": "You have run out of fast hours. Upgrade your subscription or use /relax.",
}


class MidjourneyProxyEmulator:
    BASE_PATH = "/mj"

    def __init__(self, faults: FaultBoard, stop: threading.Event) -> None:
        self.faults = faults
        self.stop = stop
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}

    def handle(self, request: Request, path: str) -> Response:
        match = re.fullmatch(r"/attachments/(\d+)/(grid|preview)\.png", path)
        if match and request.method == "GET":
            return self._attachment(*match.groups())
        if not path.startswith("/mj/"):
            return _spring_error(404, "Not Found", request.path)
        if not request.headers.get("mj-api-secret"):
            return Response(status=401)
        if request.method == "POST" and path == "/mj/submit/imagine":
            return self._imagine(request)
        match = re.fullmatch(r"/mj/task/([^/]+)/fetch", path)
        if match and request.method == "GET":
            return self._fetch(request, match.group(1))
        if request.method == "GET" and path == "/mj/account/list":
            return self._accounts(request)
        return _spring_error(404, "Not Found", request.path)

    def _imagine(self, request: Request) -> Response:
        fault = self.faults.take(PROVIDER, set(FAULTS), service=service_of(request.environ))
        delay(fault, self.stop)
        name = fault.name if fault is not None else None
        if name == "invalid_key":
            return Response(status=401)
        body = request.get_json(force=True, silent=True)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip() or name == "bad_request":
            return _answer(4, "prompt不能为空")
        refusal = {
            "server_error": (9, "提交失败，系统异常", {}),
            "rate_limited": (23, "队列已满，请稍后尝试", {"discordInstanceId": INSTANCE_ID}),
            "content_policy": (24, "可能包含敏感词", {"promptEn": prompt, "bannedWord": "apple"}),
        }.get(name or "")
        if refusal:
            return _answer(refusal[0], refusal[1], properties=refusal[2])
        width, height = _grid_size(prompt)
        task = Task(
            id=str(random.randint(10**15, 10**16 - 1)), prompt=prompt, submitted=time.time(), fault=name,
            seed=_seed(prompt), width=width, height=height,
        )
        if name == "timeline":
            queue_s, run_s = timeline(fault, 0.0, 0.0)
            task.states = {"NOT_START": 0.0, "SUBMITTED": queue_s, "IN_PROGRESS": run_s}
        with self._lock:
            waiting = sum(1 for t in self._tasks.values() if t.status(time.time())[0] in ("NOT_START", "SUBMITTED"))
            if name != "unknown_job":
                self._tasks[task.id] = task
                while len(self._tasks) > MAX_TASKS:
                    self._tasks.pop(next(iter(self._tasks)))
        if waiting:
            return _answer(22, f"排队中，前面还有{waiting}个任务", task.id,
                           {"numberOfQueues": waiting, "discordInstanceId": INSTANCE_ID}, malformed=name == "malformed_json")
        return _answer(1, "提交成功", task.id, {"discordInstanceId": INSTANCE_ID}, malformed=name == "malformed_json")

    def _fetch(self, request: Request, task_id: str) -> Response:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            return Response(status=200)  # Spring writes nothing for a null return value
        now = time.time()
        status, progress = task.status(now)
        base = f"{request.host_url}{PROVIDER}/attachments/{task.id}"
        image_url = f"{base}/grid.png" if status == "SUCCESS" else f"{base}/preview.png" if progress >= 0.5 else None
        final_prompt = f"{task.prompt} --v 7"
        started = task.submitted + TASK_S["NOT_START"]
        payload = {
            "id": task.id, "action": "IMAGINE", "status": status, "prompt": task.prompt, "promptEn": task.prompt,
            "description": f"/imagine {task.prompt}", "state": None, "submitTime": int(task.submitted * 1000),
            "startTime": int(started * 1000) if status != "NOT_START" else None,
            "finishTime": int(now * 1000) if status in ("SUCCESS", "FAILURE") else None,
            "imageUrl": image_url, "progress": f"{int(progress * 100)}%",
            "failReason": FAIL_REASONS.get(task.fault or "") if status == "FAILURE" else None,
            "properties": {"finalPrompt": final_prompt, "discordInstanceId": INSTANCE_ID, "notifyHook": None},
        }
        return json_response(payload, ensure_ascii=False)

    def _attachment(self, task_id: str, kind: str) -> Response:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or (kind == "grid" and task.fault == "expired_url"):
            return Response("This content is no longer available.", 404, mimetype="text/plain")
        fault = "blurred_image" if kind == "preview" else task.fault if task.fault in IMAGE_FAULTS else None
        width, height = task.width, task.height
        if fault == "wrong_size":
            height *= 2  # halved by image_for: a wrong aspect ratio, which is what a ratio-only check can see
        return Response(image_for(fault, task.prompt, task.seed, "midjourney-v7", width, height), mimetype="image/png")

    def _accounts(self, request: Request) -> Response:
        fault = self.faults.take(PROVIDER, REQUEST_FAULTS, service=service_of(request.environ))
        delay(fault, self.stop)
        name = fault.name if fault is not None else None
        if name == "invalid_key":
            return Response(status=401)
        if name == "server_error":
            return _spring_error(500, "Internal Server Error", request.path)
        if name == "bad_request":
            return _spring_error(400, "Bad Request", request.path)
        accounts = [{"id": INSTANCE_ID, "guildId": "1118138338562560100", "channelId": INSTANCE_ID, "enable": True,
                     "coreSize": 3, "queueSize": 10, "timeoutMinutes": 5, "properties": {}}]
        return json_response(accounts, malformed=name == "malformed_json")


def _seed(prompt: str) -> int:
    match = re.search(r"--seed\s+(\d+)", prompt)
    return int(match.group(1)) if match else random.randint(1, 2**31 - 1)


def _grid_size(prompt: str) -> tuple[int, int]:
    """2x2 tiles of ~TILE² pixels at the prompt's ``--ar`` (1:1 without one), multiples of 8."""
    match = re.search(r"--(?:ar|aspect)\s+(\d+):(\d+)", prompt)
    ratio = int(match.group(1)) / int(match.group(2)) if match and int(match.group(2)) else 1.0
    width = round(TILE * math.sqrt(ratio) / 8) * 8
    height = round(TILE / math.sqrt(ratio) / 8) * 8
    return 2 * width, 2 * height


def _answer(code: int, description: str, result: str | None = None, properties: dict[str, Any] | None = None,
            *, malformed: bool = False) -> Response:
    answer = {"code": code, "description": description, "result": result, "properties": properties or {}}
    return json_response(answer, malformed=malformed, ensure_ascii=False)


def _spring_error(status: int, error: str, path: str) -> Response:
    body = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime()), "status": status, "error": error,
            "path": path}
    return json_response(body, status)


SERVICE_DEFAULTS: dict[str, Any] = {}
FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
    "rate_limited": "rate_limited",
    "quota_exhausted": "auth_error",
    "hang": "timeout",
    "slow": "ok",
    "content_policy": "content_filtered",
    "output_safety": "content_filtered",
    "invalid_key": "auth_error",
    "malformed_json": "bad_output",
    "bad_request": "client_error",
    "job_failure": "server_error",
    "stuck_job": "timeout",
    "unknown_job": "timeout",
    "expired_url": "bad_output",
    "truncated_image": "bad_output",
    "undecodable_image": "bad_output",
    "blank_image": "degraded_quality",
    "black_image": "degraded_quality",
    "wrong_size": "bad_output",
}
