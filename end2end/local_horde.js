// The second horde of the browser tests: `horde serve --local-worker` on SmolLM2 from the model
// cache (scripts/fetch-models.sh), so a prompt in the studio is answered by a real model. Without
// the file it runs with `--local-worker off` and its test skips (fails under HORDE_REQUIRE_MODELS).
const fs = require('fs');
const os = require('os');
const path = require('path');

const PORT = Number(process.env.HORDE_E2E_PORT || '7391') + 1;
const cache = process.env.HORDE_MODEL_CACHE || path.join(os.homedir(), '.cache', 'horde', 'models');
const smollm2 = path.join(cache, 'SmolLM2-135M-Instruct.Q4_1.gguf');

module.exports = {
  LOCAL_PORT: PORT,
  LOCAL_URL: `http://127.0.0.1:${PORT}`,
  LOCAL_MODEL: fs.existsSync(smollm2) ? smollm2 : null,
  SMOLLM2: smollm2,
};
