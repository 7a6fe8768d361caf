// A newcomer's first prompt: the horde's own local worker (SmolLM2 on the CPU) answers it in the
// writing studio, with no other worker running.
const { test, expect, open } = require('../fixtures');
const { LOCAL_URL, LOCAL_MODEL, SMOLLM2 } = require('../local_horde');

test('the local worker answers a first prompt in the studio', async ({ page }) => {
  if (!LOCAL_MODEL) {
    if (process.env.HORDE_REQUIRE_MODELS) throw new Error(`HORDE_REQUIRE_MODELS is set but ${SMOLLM2} is missing`);
    test.skip(true, `${SMOLLM2} is missing (run scripts/fetch-models.sh)`);
  }
  // The worker is online once it has loaded its model and popped.
  let workers = [];
  for (let i = 0; i < 120 && workers.length === 0; i++) {
    workers = await (await fetch(`${LOCAL_URL}/api/v2/workers`)).json();
    if (workers.length === 0) await new Promise((r) => setTimeout(r, 500));
  }
  expect(workers.map((w) => w.models)).toEqual([['SmolLM2-135M-Instruct']]);
  const name = workers[0].name;

  await open(page, `${LOCAL_URL}/`);
  await page.locator('select[name=mode]').selectOption('instruct');
  await page.locator('textarea[name=prompt]').fill('What is the capital of France?');
  await page.getByRole('button', { name: 'Send' }).click();
  const answer = page.locator('.turn.model .text');
  await expect(answer).toHaveCount(1, { timeout: 30_000 });
  await expect(answer).not.toHaveText('');
  await expect(page.locator('.served')).toContainText(`SmolLM2-135M-Instruct on ${name} for`);
});
