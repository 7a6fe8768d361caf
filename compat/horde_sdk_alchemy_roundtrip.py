"""Alchemy round trip driven by the unmodified horde-sdk, with strict response models.

The requester asks for a caption and an upscale with the SDK's AlchemyAsyncRequest; the worker pops
with AlchemyPopRequest, downloads the source image from the pop's link, PUTs the upscaled WebP to
the form's `r2_upload` and submits "R2", submits the caption as text; the status parses as the
SDK's AlchemyStatusResponse. Run with AI_HORDE_URL=http://127.0.0.1:PORT/api/, TESTS_ONGOING=1
(extra fields fail), HORDE_KEY_REQUESTER and HORDE_KEY_WORKER.
"""

import base64
import io

from horde_sdk_common import REQ, WRK, call  # first: it checks TESTS_ONGOING before horde_sdk loads
import PIL.Image  # noqa: E402  (a horde-sdk dependency)
import requests  # noqa: E402  (a horde-sdk dependency)
from horde_sdk.ai_horde_api.apimodels import (  # noqa: E402
    AlchemyAsyncRequest,
    AlchemyAsyncRequestFormItem,
    AlchemyAsyncResponse,
    AlchemyCaptionResult,
    AlchemyDeleteRequest,
    AlchemyJobSubmitRequest,
    AlchemyJobSubmitResponse,
    AlchemyPopRequest,
    AlchemyPopResponse,
    AlchemyStatusRequest,
    AlchemyStatusResponse,
    AlchemyUpscaleResult,
)
from horde_sdk.ai_horde_api.consts import GENERATION_STATE  # noqa: E402


def webp(color, size=64):
    buf = io.BytesIO()
    PIL.Image.new("RGB", (size, size), color).save(buf, format="WEBP")
    return buf.getvalue()


def pop():
    return call(
        AlchemyPopRequest(apikey=WRK, name="sdk-alchemist", priority_usernames=[], forms=["caption", "RealESRGAN_x2plus"]),
        AlchemyPopResponse,
    )


idle = pop()
assert not idle.forms, idle

source = webp("red")
accepted = call(
    AlchemyAsyncRequest(
        apikey=REQ,
        forms=[AlchemyAsyncRequestFormItem(name="caption"), AlchemyAsyncRequestFormItem(name="RealESRGAN_x2plus")],
        source_image=base64.b64encode(source).decode(),
    ),
    AlchemyAsyncResponse,
)
waiting = call(AlchemyStatusRequest(id=accepted.id_), AlchemyStatusResponse)
assert waiting.state == "waiting" and len(waiting.forms) == 2, waiting

# The SDK's pop asks for one form at a time (amount 1).
popped = pop().forms + pop().forms
assert sorted(f.form for f in popped) == ["RealESRGAN_x2plus", "caption"], popped
for form in popped:
    got = requests.get(form.source_image, timeout=10)
    assert got.status_code == 200 and got.content == source, form.source_image
    if form.form == "caption":
        assert form.r2_upload is None, form
        r = call(AlchemyJobSubmitRequest(apikey=WRK, id=form.id_, result="a red square", state=GENERATION_STATE.ok), AlchemyJobSubmitResponse)
        assert abs(r.reward - 1.0) < 1e-9, r
    else:
        put = requests.put(form.r2_upload, data=webp("red", 128), headers={"Content-Type": "image/webp"}, timeout=10)
        assert put.status_code == 200, put.text
        r = call(AlchemyJobSubmitRequest(apikey=WRK, id=form.id_, result="R2", state=GENERATION_STATE.ok), AlchemyJobSubmitResponse)
        assert abs(r.reward - 3.0) < 1e-9, r

status = call(AlchemyStatusRequest(id=accepted.id_), AlchemyStatusResponse)
assert status.state == "done", status
captions = status.all_caption_results
assert len(captions) == 1 and isinstance(captions[0], AlchemyCaptionResult) and captions[0].caption == "a red square", status
upscales = status.all_upscale_results
assert len(upscales) == 1 and isinstance(upscales[0], AlchemyUpscaleResult), status
img = PIL.Image.open(io.BytesIO(requests.get(upscales[0].url, timeout=10).content))
assert img.size == (128, 128), img.size

# Cancelling a waiting request.
cancel_me = call(
    AlchemyAsyncRequest(apikey=REQ, forms=[AlchemyAsyncRequestFormItem(name="nsfw")], source_image=base64.b64encode(source).decode()),
    AlchemyAsyncResponse,
)
deleted = call(AlchemyDeleteRequest(id=cancel_me.id_), AlchemyStatusResponse)
assert deleted.forms[0].state == "waiting", deleted
after = call(AlchemyStatusRequest(id=cancel_me.id_), AlchemyStatusResponse)
assert after.forms[0].state == "cancelled", after
print("horde-sdk alchemy round trip: OK")
