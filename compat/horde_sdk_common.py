"""What both horde-sdk round trips share: strict models, the two keys, and one checked call."""

import os
import sys

assert os.environ.get("TESTS_ONGOING"), "run with TESTS_ONGOING=1 for strict models"

from horde_sdk import RequestErrorResponse  # noqa: E402
from horde_sdk.ai_horde_api.ai_horde_clients import AIHordeAPIManualClient  # noqa: E402

REQ = os.environ["HORDE_KEY_REQUESTER"]
WRK = os.environ["HORDE_KEY_WORKER"]
client = AIHordeAPIManualClient()


def call(request, response_type):
    """Sends `request`; exits with the server's message unless it answers `response_type`."""
    resp = client.submit_request(request, response_type)
    if isinstance(resp, RequestErrorResponse):
        sys.exit(f"FAIL {type(request).__name__}: {resp.message} {resp.object_data}")
    assert isinstance(resp, response_type), (type(resp), response_type)
    return resp
