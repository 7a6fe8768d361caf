"""Image round trip driven by the unmodified horde-sdk, with strict response models.

The requester uses the SDK's request models; the worker pops like horde-worker-reGen (the SDK's
ImageGenerateJobPopRequest), PUTs its WebP to the upload URL from the pop (`r2_upload`) and submits
`generation: "R2"`, or submits base64. Run with AI_HORDE_URL=http://127.0.0.1:PORT/api/,
TESTS_ONGOING=1 (extra fields fail), HORDE_KEY_REQUESTER and HORDE_KEY_WORKER.
"""

import base64
import io
import threading
import time

from horde_sdk_common import REQ, WRK, call  # first: it checks TESTS_ONGOING before horde_sdk loads
import PIL.Image  # noqa: E402  (a horde-sdk dependency)
import requests  # noqa: E402  (a horde-sdk dependency)
from horde_sdk.ai_horde_api.ai_horde_clients import AIHordeAPISimpleClient, download_image_from_generation  # noqa: E402
from horde_sdk.ai_horde_api.apimodels import (  # noqa: E402
    DeleteImageGenerateRequest,
    HordeStatusModelsAllRequest,
    HordeStatusModelsAllResponse,
    ImageGenerateAsyncDryRunResponse,
    ImageGenerateAsyncRequest,
    ImageGenerateAsyncResponse,
    ImageGenerateCheckRequest,
    ImageGenerateCheckResponse,
    ImageGenerateJobPopRequest,
    ImageGenerateJobPopResponse,
    ImageGenerateStatusRequest,
    ImageGenerateStatusResponse,
    ImageGenerationInputPayload,
    ImageGenerationJobSubmitRequest,
    JobSubmitResponse,
)
from horde_sdk.ai_horde_api.consts import GENERATION_STATE  # noqa: E402

MODEL = "stable_diffusion"


def pop():
    return call(
        ImageGenerateJobPopRequest(
            apikey=WRK,
            name="sdk-image-worker",
            models=[MODEL],
            max_pixels=1024 * 1024,
            amount=2,
            bridge_agent="AI Horde Worker reGen:10.0.0:https://example.invalid",
            allow_img2img=True,
            allow_painting=True,
        ),
        ImageGenerateJobPopResponse,
    )


def webp(color):
    buf = io.BytesIO()
    PIL.Image.new("RGB", (64, 64), color).save(buf, format="WEBP")
    return buf.getvalue()


idle = pop()
assert idle.id_ is None and idle.ids == [], idle

# The baseline payload: 10 kudos, plus 1 job tax and 1 request tax.
baseline = ImageGenerationInputPayload(sampler_name="k_euler", cfg_scale=7.5, steps=50, width=512, height=512)
dry = call(ImageGenerateAsyncRequest(apikey=REQ, prompt="a lighthouse", models=[MODEL], params=baseline, dry_run=True), ImageGenerateAsyncDryRunResponse)
assert abs(dry.kudos - 12.0) < 1e-9, dry

params = ImageGenerationInputPayload(sampler_name="k_euler", cfg_scale=7.5, steps=20, width=512, height=512, n=2, seed="42")
accepted = call(ImageGenerateAsyncRequest(apikey=REQ, prompt="a lighthouse ### fog", models=[MODEL], params=params), ImageGenerateAsyncResponse)
check = call(ImageGenerateCheckRequest(id=accepted.id_), ImageGenerateCheckResponse)
assert check.waiting == 2 and not check.done, check

job = pop()
assert job.model == MODEL and len(job.ids) == 2, job
assert job.payload.prompt == "a lighthouse ### fog" and job.payload.ddim_steps == 20 and job.payload.n_iter == 2, job.payload
assert job.r2_uploads and len(job.r2_uploads) == 2, job
models = call(HordeStatusModelsAllRequest(), HordeStatusModelsAllResponse)
assert any(m.name == MODEL for m in models.root), models

# First image through the upload URL (as reGen does), second inline as base64.
put = requests.put(job.r2_uploads[0], data=webp("red"), headers={"Content-Type": "image/webp"}, timeout=10)
assert put.status_code == 200, put.text
# reGen sorts ids and uploads together; keep the pairing the pop gave.
first, second = job.ids[0], job.ids[1]
r = call(ImageGenerationJobSubmitRequest(apikey=WRK, id=first, generation="R2", state=GENERATION_STATE.ok, seed=42), JobSubmitResponse)
assert r.reward > 0, r
r = call(
    ImageGenerationJobSubmitRequest(apikey=WRK, id=second, generation=base64.b64encode(webp("blue")).decode(), state=GENERATION_STATE.ok, seed=43),
    JobSubmitResponse,
)
status = call(ImageGenerateStatusRequest(id=accepted.id_), ImageGenerateStatusResponse)
assert status.done and len(status.generations) == 2, status
for g in status.generations:
    img = download_image_from_generation(g)
    assert img.size == (64, 64), img.size
    assert g.worker_name == "sdk-image-worker" and g.model == MODEL, g

# Cancelling a waiting request.
cancel_me = call(ImageGenerateAsyncRequest(apikey=REQ, prompt="never served", models=["nobody-serves-this"], params=baseline), ImageGenerateAsyncResponse)
deleted = call(DeleteImageGenerateRequest(id=cancel_me.id_), ImageGenerateStatusResponse)
assert deleted.waiting == 1, deleted


# The SDK's simple client end to end (polls check, then status), base64 results (r2: false).
def worker_loop(stop):
    while not stop.is_set():
        p = pop()
        if p.id_ is None:
            time.sleep(0.2)
            continue
        for i in p.ids:
            call(ImageGenerationJobSubmitRequest(apikey=WRK, id=i, generation=base64.b64encode(webp("green")).decode(), state=GENERATION_STATE.ok, seed=1), JobSubmitResponse)


stop = threading.Event()
t = threading.Thread(target=worker_loop, args=(stop,), daemon=True)
t.start()
final, _ = AIHordeAPISimpleClient().image_generate_request(
    ImageGenerateAsyncRequest(apikey=REQ, prompt="Simple client", models=[MODEL], params=ImageGenerationInputPayload(steps=10), r2=False),
    timeout=60,
)
stop.set()
t.join(5)
assert len(final.generations) == 1 and download_image_from_generation(final.generations[0]).size == (64, 64), final
print("horde-sdk image round trip: OK")
