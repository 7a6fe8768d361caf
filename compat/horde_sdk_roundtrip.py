"""Text round trip driven by the unmodified horde-sdk, with strict response models.

Run with AI_HORDE_URL=http://127.0.0.1:PORT/api/ and TESTS_ONGOING=1 (extra fields fail), and
HORDE_KEY_REQUESTER / HORDE_KEY_WORKER set to two 22-character keys of the server under test.
Exits non-zero on the first mismatch.
"""

import json
import os
import threading
import time
import urllib.request

from horde_sdk_common import REQ, WRK, call  # first: it checks TESTS_ONGOING before horde_sdk loads
from horde_sdk.ai_horde_api.ai_horde_clients import AIHordeAPISimpleClient  # noqa: E402
from horde_sdk.ai_horde_api.apimodels import (  # noqa: E402
    AIHordeHeartbeatRequest,
    AIHordeHeartbeatResponse,
    AllWorkersDetailsRequest,
    AllWorkersDetailsResponse,
    DeleteTextGenerateRequest,
    FindUserRequest,
    HordePerformanceRequest,
    HordePerformanceResponse,
    ImageStatsModelsRequest,
    ImageStatsModelsResponse,
    ImageStatsModelsTotalRequest,
    ImageStatsModelsTotalResponse,
    HordeStatusModelsAllRequest,
    HordeStatusModelsAllResponse,
    JobSubmitResponse,
    ModelGenerationInputKobold,
    ModifyWorkerRequest,
    ModifyWorkerResponse,
    NewsRequest,
    NewsResponse,
    SingleWorkerNameDetailsRequest,
    SingleWorkerDetailsResponse,
    TextGenerateAsyncDryRunResponse,
    TextGenerateAsyncRequest,
    TextGenerateAsyncResponse,
    TextGenerateJobPopRequest,
    TextGenerateJobPopResponse,
    TextGenerateStatusRequest,
    TextGenerateStatusResponse,
    TextGenerationJobSubmitRequest,
    TextStatsModelResponse,
    TextStatsModelsRequest,
    TextStatsModelsTotalRequest,
    TextStatsModelsTotalResponse,
    UserDetailsResponse,
)
from horde_sdk.ai_horde_api.consts import GENERATION_STATE  # noqa: E402

MODEL = "koboldcpp/LLaMA2-13B-Psyfighter2"


def pop():
    return call(
        TextGenerateJobPopRequest(apikey=WRK, name="sdk-worker", models=[MODEL], max_length=512, max_context_length=4096, bridge_agent="sdk-test:1:none"),
        TextGenerateJobPopResponse,
    )


# Idle pop, heartbeat, user.
idle = pop()
assert idle.id_ is None and idle.ids == [], idle
call(AIHordeHeartbeatRequest(), AIHordeHeartbeatResponse)
me = call(FindUserRequest(apikey=REQ), UserDetailsResponse)
assert me.username and me.kudos is not None, me

# Dry run, then a real request.
params = ModelGenerationInputKobold(max_length=40, max_context_length=1024, temperature=0.7)
dry = call(TextGenerateAsyncRequest(apikey=REQ, prompt="Hello", models=[MODEL], params=params, dry_run=True), TextGenerateAsyncDryRunResponse)
assert dry.kudos > 0, dry
accepted = call(TextGenerateAsyncRequest(apikey=REQ, prompt="Hello, horde", models=[MODEL], params=params), TextGenerateAsyncResponse)
status = call(TextGenerateStatusRequest(id=accepted.id_), TextGenerateStatusResponse)
assert status.waiting == 1 and not status.done, status

job = pop()
assert job.id_ is not None and job.model == MODEL and job.payload.prompt == "Hello, horde", job
assert job.payload.max_length == 40, job.payload
models = call(HordeStatusModelsAllRequest(type="text"), HordeStatusModelsAllResponse)
assert any(m.name == MODEL for m in models.root), models
call(HordePerformanceRequest(), HordePerformanceResponse)
workers = call(AllWorkersDetailsRequest(), AllWorkersDetailsResponse)
assert any(w.name == "sdk-worker" for w in workers.root), workers
call(SingleWorkerNameDetailsRequest(worker_name="sdk-worker"), SingleWorkerDetailsResponse)

# News (none configured), and the worker joining then leaving a team, each answer read through the
# strict models. horde-sdk cannot create teams: the team is made over plain HTTP by the worker's
# (trusted) owner.
news = call(NewsRequest(), NewsResponse)
assert list(news) == [], news
made = urllib.request.Request(
    os.environ["AI_HORDE_URL"] + "v2/teams",
    data=json.dumps({"name": "SDK team"}).encode(),
    headers={"apikey": WRK, "Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(made) as r:
    team_id = json.load(r)["id"]
worker = call(SingleWorkerNameDetailsRequest(worker_name="sdk-worker"), SingleWorkerDetailsResponse)
joined = call(ModifyWorkerRequest(apikey=WRK, worker_id=worker.id_, team=team_id), ModifyWorkerResponse)
assert joined.team == "SDK team", joined
worker = call(SingleWorkerNameDetailsRequest(worker_name="sdk-worker"), SingleWorkerDetailsResponse)
assert worker.team is not None and worker.team.name == "SDK team", worker
left = call(ModifyWorkerRequest(apikey=WRK, worker_id=worker.id_, team=""), ModifyWorkerResponse)
assert left.team == "None", left

reward = call(TextGenerationJobSubmitRequest(apikey=WRK, id=job.id_, generation=" from the SDK worker", state=GENERATION_STATE.ok), JobSubmitResponse)
assert reward.reward > 0, reward
status = call(TextGenerateStatusRequest(id=accepted.id_), TextGenerateStatusResponse)
assert status.done and status.generations and status.generations[0].text == " from the SDK worker", status
assert status.generations[0].worker_name == "sdk-worker", status

# The generation figures, in the SDK's strict models (the finished job is counted once stored).
for _ in range(50):
    text_models = call(TextStatsModelsRequest(), TextStatsModelResponse)
    if text_models.total.get(MODEL):
        break
    time.sleep(0.1)
assert text_models.total.get(MODEL) == 1, text_models
text_totals = call(TextStatsModelsTotalRequest(), TextStatsModelsTotalResponse)
assert text_totals.total["requests"] == 1 and text_totals.total["tokens"] > 0, text_totals
call(ImageStatsModelsTotalRequest(), ImageStatsModelsTotalResponse)
call(ImageStatsModelsRequest(), ImageStatsModelsResponse)

# Cancelling a waiting request.
cancel_me = call(TextGenerateAsyncRequest(apikey=REQ, prompt="never served", models=["nobody-serves-this"], params=params), TextGenerateAsyncResponse)
deleted = call(DeleteTextGenerateRequest(id=cancel_me.id_), TextGenerateStatusResponse)
assert deleted.waiting == 1, deleted


# The SDK's simple client end to end, with a worker thread popping and submitting.
def worker_loop(stop):
    while not stop.is_set():
        p = pop()
        if p.id_ is None:
            time.sleep(0.2)
            continue
        call(TextGenerationJobSubmitRequest(apikey=WRK, id=p.id_, generation="echo: " + (p.payload.prompt or ""), state=GENERATION_STATE.ok), JobSubmitResponse)


stop = threading.Event()
t = threading.Thread(target=worker_loop, args=(stop,), daemon=True)
t.start()
final, job_id = AIHordeAPISimpleClient().text_generate_request(
    TextGenerateAsyncRequest(apikey=REQ, prompt="Simple client", models=[MODEL], params=params), timeout=60
)
stop.set()
t.join(5)
assert final.generations[0].text == "echo: Simple client", final
print("horde-sdk round trip: OK")
