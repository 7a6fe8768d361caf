// The writing studio end to end: a real horde, a scripted worker streaming through the progress
// protocol, the page in Chromium.
const { test, expect, open } = require('../fixtures');
const { ScriptedWorker } = require('../worker');

// Where the studio keeps its settings (app/src/browser.rs).
const SETTINGS_KEY = 'horde.settings';

async function setMode(page, mode) {
  await page.locator('select[name=mode]').selectOption(mode);
}

test('a story turn streams in and the footer names worker, model and kudos', async ({ page, start }) => {
  const reply = 'The dragon woke slowly and stretched its wings over the sleeping valley.';
  const worker = await start(ScriptedWorker, { name: 'story-worker', reply, stepMs: 150 });
  await open(page);
  await page.locator('textarea[name=prompt]').fill('Once upon a time,');
  await page.getByRole('button', { name: 'Send' }).click();
  // Part of the reply shows while the worker is still writing.
  const streaming = page.locator('.pending .streaming');
  await expect(streaming).toContainText('The dragon woke');
  await expect(streaming).not.toHaveText(reply);
  await expect(page.getByRole('button', { name: 'Cancel' })).toBeVisible();
  // Then it becomes the model's turn.
  await expect(page.locator('.turn.model .text')).toHaveText(reply);
  await expect(page.locator('.pending')).toHaveCount(0);
  await expect(page.locator('.turn.writer .text')).toHaveText('Once upon a time,');
  await expect(page.locator('.served')).toContainText('e2e/scripted-7b on story-worker for');
  expect(worker.lastPrompt()).toBe('Once upon a time,');

  // Undo takes the model's turn back; redo restores it.
  await page.getByRole('button', { name: 'Undo' }).click();
  await expect(page.locator('.turn.model')).toHaveCount(0);
  await page.getByRole('button', { name: 'Redo' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText(reply);

  // The story survives a reload.
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('.turn.model .text')).toHaveText(reply);
  await expect(page.locator('.served')).toContainText('story-worker');
});

test('a chat turn names the speakers and cues the bot', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'chat-worker', reply: ' Hi Ann, nice to meet you.', stepMs: 30 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await setMode(page, 'chat');
  await page.locator('input[name=user_name]').fill('Ann');
  await page.locator('input[name=bot_name]').fill('Max');
  await page.locator('textarea[name=prompt]').fill('Hello there!');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Hi Ann, nice to meet you.');
  await expect(page.locator('.turn.model .speaker')).toHaveText('Max');
  await expect(page.locator('.turn.writer .speaker')).toHaveText('Ann');
  expect(worker.lastPrompt()).toBe('\nAnn: Hello there!\nMax:');
});

test('an instruct turn carries the system prompt, memory and triggered world info', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'instruct-worker', reply: 'Dragons here breathe ice.', stepMs: 30 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await setMode(page, 'instruct');
  await page.locator('textarea[name=system_prompt]').fill('Answer in one sentence.');
  await page.locator('textarea[name=memory]').fill('The land is called Vell.');
  await page.getByRole('button', { name: 'Add world info' }).click();
  await page.locator('input[name=wi_keys]').fill('dragon, wyrm');
  await page.locator('textarea[name=wi_content]').fill('Dragons in Vell breathe ice.');
  await page.getByRole('button', { name: 'Add world info' }).click();
  await page.locator('input[name=wi_keys]').nth(1).fill('castle');
  await page.locator('textarea[name=wi_content]').nth(1).fill('The castle is ruined.');
  await page.locator('textarea[name=prompt]').fill('What do dragons breathe?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Dragons here breathe ice.');
  const prompt = worker.lastPrompt();
  expect(prompt).toBe(
    '<|im_start|>system\nAnswer in one sentence.<|im_end|>\n'
    + 'The land is called Vell.\nDragons in Vell breathe ice.\n'
    + '<|im_start|>user\nWhat do dragons breathe?<|im_end|>\n<|im_start|>assistant\n',
  );
  expect(prompt).not.toContain('castle');
  await expect(page.locator('.context-use')).toContainText('1 world info');
});

test('cancel stops the worker and keeps what was written', async ({ page, start }) => {
  const reply = 'one two three four five six seven eight nine ten eleven twelve';
  const worker = await start(ScriptedWorker, { name: 'slow-worker', reply, stepMs: 600 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('textarea[name=prompt]').fill('Count:');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.pending .streaming')).toContainText('one two');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.locator('.pending')).toHaveCount(0);
  const kept = await page.locator('.turn.model .text').textContent();
  expect(reply.startsWith(kept)).toBe(true);
  expect(kept.length).toBeLessThan(reply.length);
  await expect.poll(() => worker.cancelled).toBe(1);
});

test('editing and deleting turns, retry asks again', async ({ page, start }) => {
  let n = 0;
  await start(ScriptedWorker, { name: 'retry-worker', reply: () => `Answer number ${++n}.`, stepMs: 20 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('textarea[name=prompt]').fill('Begin.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Answer number 1.');
  await page.getByRole('button', { name: 'Retry' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Answer number 2.');
  await expect(page.locator('.turn')).toHaveCount(2);
  await page.locator('.turn.writer').getByRole('button', { name: 'Edit' }).click();
  await page.locator('.turn.writer textarea.edit').fill('Begin again.');
  await page.locator('.turn.writer').getByRole('button', { name: 'Save' }).click();
  await expect(page.locator('.turn.writer .text')).toHaveText('Begin again.');
  await page.locator('.turn.model').getByRole('button', { name: 'Delete' }).click();
  await expect(page.locator('.turn')).toHaveCount(1);
  await page.getByRole('button', { name: 'Undo' }).click();
  await expect(page.locator('.turn')).toHaveCount(2);
  await page.getByRole('button', { name: 'Redo' }).click();
  await expect(page.locator('.turn')).toHaveCount(1);
});

test('a story exported as a file imports back', async ({ page, start }) => {
  await start(ScriptedWorker, { name: 'export-worker', reply: 'The end.', stepMs: 10 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('textarea[name=memory]').fill('Remember the lighthouse.');
  await page.locator('textarea[name=prompt]').fill('It was a dark night.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('The end.');
  await page.locator('summary', { hasText: 'Export / import' }).click();
  await page.locator('input[name=title]').fill('Night');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByText('Export JSON').click()]);
  expect(download.suggestedFilename()).toBe('Night.json');
  const exported = require('fs').readFileSync(await download.path(), 'utf8');
  expect(JSON.parse(exported).memory).toBe('Remember the lighthouse.');

  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('textarea[name=memory]').fill('');
  await expect(page.locator('.turn')).toHaveCount(0);
  await page.locator('input[name=import_file]').setInputFiles({ name: 'Night.json', mimeType: 'application/json', buffer: Buffer.from(exported) });
  await expect(page.locator('.turn')).toHaveCount(2);
  await expect(page.locator('.turn.model .text')).toHaveText('The end.');
  await expect(page.locator('textarea[name=memory]')).toHaveValue('Remember the lighthouse.');
  // A file that is not a story is refused with a message, and the story stays.
  await page.locator('input[name=import_file]').setInputFiles({ name: 'bad.json', mimeType: 'application/json', buffer: Buffer.from('{"turns": 5}') });
  await expect(page.getByText(/That is not a story/)).toBeVisible();
  await expect(page.locator('.turn')).toHaveCount(2);
});

test('several stories: new keeps the old one, which opens again after a reload', async ({ page, start }) => {
  let n = 0;
  const worker = await start(ScriptedWorker, { name: 'shelf-worker', reply: () => `Reply ${++n}.`, stepMs: 10 });
  await open(page);
  await page.locator('summary', { hasText: 'Export / import' }).click();
  await page.locator('input[name=title]').fill('Alpha');
  await page.locator('textarea[name=prompt]').fill('Alpha begins.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Reply 1.');

  await page.getByRole('button', { name: 'New' }).click();
  await expect(page.locator('.turn')).toHaveCount(0);
  await page.locator('input[name=title]').fill('Beta');
  await page.locator('textarea[name=prompt]').fill('Beta begins.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Reply 2.');
  expect(worker.lastPrompt()).toBe('Beta begins.');

  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  const stories = page.locator('select[name=story]');
  await expect(stories.locator('option')).toHaveText(['Beta', 'Alpha']);
  await stories.selectOption({ label: 'Alpha' });
  await expect(page.locator('.turn.writer .text')).toHaveText('Alpha begins.');
  await expect(stories.locator('option')).toHaveText(['Alpha', 'Beta']);

  // Deleting the current story brings back the most recent other one.
  await page.locator('summary', { hasText: 'Export / import' }).click();
  await page.getByRole('button', { name: 'Delete this story' }).click();
  await expect(page.locator('.turn.writer .text')).toHaveText('Beta begins.');
  await expect(stories.locator('option')).toHaveText(['Beta']);
});

test('the model and worker pickers and the settings reach the request the worker pops', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'settings-worker', model: 'e2e/settings-3b', reply: 'Noted.', stepMs: 10 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  // The pickers list what is online (labelled by the horde), after a refresh.
  await page.getByTitle('Refresh models and workers').click();
  await page.locator('.models summary').click();
  await expect(page.locator('.model-list label', { hasText: 'e2e/settings-3b · 1 worker ·' })).toHaveCount(1);
  await page.locator('input[name=model][value="e2e/settings-3b"]').check();
  await expect(page.locator('.models summary')).toHaveText('e2e/settings-3b');
  await page.locator('select[name=worker]').selectOption({ label: 'settings-worker' });
  await page.locator('.panel summary', { hasText: 'Settings' }).click();
  for (const [name, typed] of [['max_length', '48'], ['temperature', '0.35'], ['top_p', '.5']]) {
    await page.locator(`input[name=${name}]`).fill(typed);
    await page.locator(`input[name=${name}]`).press('Tab');
  }
  await expect(page.locator('input[name=top_p]')).toHaveValue('0.5');
  // World-info keys match whatever the case of the text.
  await page.getByRole('button', { name: 'Add world info' }).click();
  await page.locator('input[name=wi_keys]').fill('Éclair');
  await page.locator('textarea[name=wi_content]').fill('Éclairs are the town pastry.');
  await page.locator('textarea[name=prompt]').fill('ÉCLAIRS for breakfast.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Noted.');
  const payload = worker.payloads[worker.payloads.length - 1];
  expect([payload.max_length, payload.temperature, payload.top_p]).toEqual([48, 0.35, 0.5]);
  expect(payload.prompt).toContain('Éclairs are the town pastry.');
  await expect(page.locator('.studio-footer .served')).toContainText('e2e/settings-3b on settings-worker');
});

test('several models at once: the request carries the ticked list, each model shown with its workers and wait', async ({ page, start }) => {
  const a = await start(ScriptedWorker, { name: 'multi-a', model: 'e2e/multi-a', reply: 'From a chosen model.', stepMs: 10 });
  const b = await start(ScriptedWorker, { name: 'multi-b', model: 'e2e/multi-b', reply: 'From a chosen model.', stepMs: 10 });
  const c = await start(ScriptedWorker, { name: 'multi-c', model: 'e2e/multi-c', reply: 'From the wrong model.', stepMs: 10 });
  const sent = [];
  page.on('request', (r) => { if (r.url().includes('/ui/api/submit_text')) sent.push(JSON.parse(r.postData())); });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.getByTitle('Refresh models and workers').click();
  await expect(page.locator('.models summary')).toHaveText('Any model');
  await page.locator('.models summary').click();
  // Each model on offer with its workers, queue and wait.
  for (const name of ['e2e/multi-a', 'e2e/multi-b', 'e2e/multi-c']) {
    await expect(page.locator('.model-list label', { hasText: `${name} · 1 worker · 0 queued · ~` })).toHaveCount(1);
  }
  await page.locator('input[name=model][value="e2e/multi-a"]').check();
  await page.locator('input[name=model][value="e2e/multi-b"]').check();
  await expect(page.locator('.models summary')).toHaveText('2 models');
  await page.locator('textarea[name=prompt]').fill('Whoever is free.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('From a chosen model.');
  // The studio sends one model a line; the horde's request carries the list (checked by the
  // workers below, and in app/src/context.rs's tests).
  expect(sent.map((r) => r.request.settings.models)).toEqual(['e2e/multi-a\ne2e/multi-b']);
  expect(a.payloads.length + b.payloads.length).toBe(1);
  expect(c.payloads).toEqual([]);
  await expect(page.locator('.studio-footer .served')).toContainText(/e2e\/multi-[ab] on multi-[ab]/);

  // The choice is kept; unticking one sends the other alone, and a model gone offline stays listed.
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('.models summary')).toHaveText('2 models');
  await page.locator('.models summary').click();
  await expect(page.locator('input[name=model][value="e2e/multi-a"]')).toBeChecked();
  await page.locator('input[name=model][value="e2e/multi-a"]').uncheck();
  await expect(page.locator('.models summary')).toHaveText('e2e/multi-b');
  await page.locator('textarea[name=prompt]').fill('Again.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').nth(1)).toHaveText('From a chosen model.');
  expect(sent.at(-1).request.settings.models).toBe('e2e/multi-b');
  expect(b.payloads.length).toBeGreaterThanOrEqual(1);
  expect(c.payloads).toEqual([]);
  // A stored choice no model on offer matches is listed as offline, so it can be unticked.
  await page.evaluate((key) => {
    const s = JSON.parse(localStorage.getItem(key));
    localStorage.setItem(key, JSON.stringify({ ...s, models: 'e2e/multi-b\ne2e/gone' }));
  }, SETTINGS_KEY);
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await page.locator('.models summary').click();
  await expect(page.locator('.model-list label', { hasText: 'e2e/gone · offline' })).toHaveCount(1);
  await page.locator('input[name=model][value="e2e/gone"]').uncheck();
  await expect(page.locator('.models summary')).toHaveText('e2e/multi-b');
});

test("continue: the model goes on with its last turn, the prompt ending inside it", async ({ page, start }) => {
  const replies = [' Hello', ' there, Ann.'];
  const worker = await start(ScriptedWorker, { name: 'continue-worker', reply: () => replies.shift() || 'x', stepMs: 5 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await setMode(page, 'chat');
  await page.locator('input[name=user_name]').fill('Ann');
  await page.locator('input[name=bot_name]').fill('Max');
  await page.locator('textarea[name=prompt]').fill('Hi!');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Hello');
  await page.getByRole('button', { name: 'Continue' }).click();
  // While the continuation streams, its pending turn is a second `.turn.model .text` (a strict
  // locator fails at once on two matches): the finished turns are the ones not pending.
  await expect(page.locator('.turn.model:not(.pending) .text')).toHaveText('Hello there, Ann.');
  await expect(page.locator('.turn.model.pending')).toHaveCount(0);
  await expect(page.locator('.turn.model')).toHaveCount(1);
  expect(worker.lastPrompt()).toBe('\nAnn: Hi!\nMax: Hello');
});

test('themes and text size: chosen in the settings, kept after a reload', async ({ page }) => {
  await open(page);
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const textSize = () => page.locator('.transcript').evaluate((e) => getComputedStyle(e).fontSize);
  await page.locator('summary', { hasText: 'Theme and text size' }).click();
  const theme = page.locator('select[name=theme]');
  await theme.selectOption('dark');
  expect(await background()).toBe('rgb(21, 20, 27)');
  await theme.selectOption('classic');
  expect(await background()).toBe('rgb(48, 48, 48)');
  await theme.selectOption('light');
  expect(await background()).toBe('rgb(251, 250, 255)');
  // Light stays light on a device that prefers dark.
  await page.emulateMedia({ colorScheme: 'dark' });
  expect(await background()).toBe('rgb(251, 250, 255)');
  await theme.selectOption('classic');
  expect(await textSize()).toBe('16px');
  await page.locator('select[name=font_size]').selectOption('24');
  expect(await textSize()).toBe('24px');
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'classic');
  expect(await background()).toBe('rgb(48, 48, 48)');
  expect(await textSize()).toBe('24px');
  // The controls show the stored choice; "Default" gives the browser's size back and "as the
  // device" follows the device.
  await page.locator('summary', { hasText: 'Theme and text size' }).click();
  await expect(page.locator('select[name=theme]')).toHaveValue('classic');
  await expect(page.locator('select[name=font_size]')).toHaveValue('24');
  await page.locator('select[name=font_size]').selectOption('0');
  expect(await textSize()).toBe('16px');
  await page.locator('select[name=theme]').selectOption('');
  expect(await background()).toBe('rgb(21, 20, 27)');
});

test('the stored theme and text size apply before the first paint, on every page', async ({ page }) => {
  await page.addInitScript((key) => localStorage.setItem(key, JSON.stringify({ theme: 'classic', font_size: 20 })), SETTINGS_KEY);
  // The page never hydrates here (its WASM is held back): what shows is the server's page and
  // the head's script alone, which is what the first paint is made of.
  await page.route('**/*.wasm', () => {});
  for (const path of ['/', '/images', '/account']) {
    await page.goto(path, { waitUntil: 'domcontentloaded' });
    expect(await page.evaluate(() => [document.documentElement.dataset.theme, document.documentElement.dataset.textSize])).toEqual(['classic', '20']);
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(48, 48, 48)');
    await expect(page.locator('main')).not.toHaveAttribute('data-ready', 'true');
  }
  await page.goto('/', { waitUntil: 'domcontentloaded' });
  expect(await page.locator('.transcript').evaluate((e) => getComputedStyle(e).fontSize)).toBe('20px');
  // A broken stored value changes nothing and breaks nothing.
  await page.evaluate((key) => localStorage.setItem(key, '{not json'), SETTINGS_KEY);
  await page.unrouteAll();
  await page.addInitScript((key) => localStorage.setItem(key, '{not json'), SETTINGS_KEY);
  await open(page);
  expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBeUndefined();
});

test('world info exports as JSON and imports into another story', async ({ page }) => {
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.getByRole('button', { name: 'Add world info' }).click();
  await page.locator('input[name=wi_keys]').fill('harbor, port');
  await page.locator('textarea[name=wi_content]').fill('The harbor freezes in winter.');
  await page.locator('.world-entry input[type=checkbox]').check();
  await page.locator('summary', { hasText: 'World info files' }).click();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByText('Export world info').click()]);
  expect(download.suggestedFilename()).toBe('world-info.json');
  const exported = require('fs').readFileSync(await download.path(), 'utf8');
  expect(JSON.parse(exported)).toEqual([{ keys: 'harbor, port', content: 'The harbor freezes in winter.', constant: true }]);

  // Into a new story that already has an entry: the imported ones are added.
  await page.getByRole('button', { name: 'New' }).click();
  await page.getByRole('button', { name: 'Add world info' }).click();
  await page.locator('input[name=wi_keys]').fill('lighthouse');
  await page.locator('textarea[name=wi_content]').fill('The lighthouse is dark.');
  const file = { name: 'world-info.json', mimeType: 'application/json', buffer: Buffer.from(exported) };
  // The files panel is still open from the export.
  await page.locator('input[name=import_world_info]').setInputFiles(file);
  await expect(page.locator('.wi-report')).toHaveText('Imported: 1 world info entry.');
  await expect(page.locator('.world-entry')).toHaveCount(2);
  await expect(page.locator('input[name=wi_keys]').nth(1)).toHaveValue('harbor, port');
  await expect(page.locator('.world-entry input[type=checkbox]').nth(1)).toBeChecked();
  // Not world info: refused, nothing added.
  await page.locator('input[name=import_world_info]').setInputFiles({ ...file, name: 'story.json', buffer: Buffer.from('{"title": "x"}') });
  await expect(page.getByText(/That is not world info/)).toBeVisible();
  await expect(page.locator('.world-entry')).toHaveCount(2);
});

test('a full browser storage is said, not silently lost', async ({ page }) => {
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  // Fill this origin's storage with something else, then write more than is left.
  await page.evaluate(() => {
    const chunk = 'x'.repeat(256 * 1024);
    for (let i = 0; ; i++) {
      try { localStorage.setItem(`filler-${i}`, chunk); } catch { break; }
    }
  });
  await page.locator('textarea[name=memory]').fill('A long memory. '.repeat(20000));
  await expect(page.getByRole('alert')).toContainText("This browser's storage is full");
  await page.evaluate(() => { for (const k of Object.keys(localStorage)) if (k.startsWith('filler-')) localStorage.removeItem(k); });
});

test('Markdown in chat and instruct turns: a hostile generation is rendered inert, thinking folded', async ({ page, start }) => {
  const hostile = '**Bold** and `code`\n<script>window.__pwned = 1</script>\n<img src=x onerror="window.__pwned = 2">\n'
    + '![cat](http://127.0.0.1:9/cat.png) [site](https://example.com/) [bad](javascript:window.__pwned=3)';
  let n = 0;
  await start(ScriptedWorker, { name: 'md-worker', reply: () => (++n === 1 ? hostile : '<think>Count the sides.</think>A **square** has 4.'), stepMs: 5 });
  const fetched = [];
  page.on('request', (r) => { if (/cat\.png|studio-markdown/.test(r.url())) fetched.push(new URL(r.url()).pathname); });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  // Not loaded for a story in story mode.
  expect(fetched).toEqual([]);
  await setMode(page, 'chat');
  await page.locator('textarea[name=prompt]').fill('Show me.');
  await page.getByRole('button', { name: 'Send' }).click();
  const view = page.locator('.turn.model .md-view');
  await expect(view.locator('strong')).toHaveText('Bold');
  await expect(view.locator('code')).toHaveText('code');
  await expect(view).toContainText('<script>window.__pwned = 1</script>');
  await expect(view).toContainText('<img src=x onerror="window.__pwned = 2">');
  await expect(view.locator('script, img, iframe, [onerror]')).toHaveCount(0);
  // Only http(s) links; the image is a link to it, never fetched.
  expect(await view.locator('a').evaluateAll((as) => as.map((a) => [a.textContent, a.href, a.rel]))).toEqual([
    ['cat', 'http://127.0.0.1:9/cat.png', 'noopener noreferrer nofollow'],
    ['site', 'https://example.com/', 'noopener noreferrer nofollow'],
  ]);
  await expect(page.locator('.turn.model > .text')).toBeHidden();
  expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
  expect(fetched).toEqual([expect.stringMatching(/^\/pkg\/studio-markdown\.[0-9a-f]{12}\.js$/)]);

  await setMode(page, 'instruct');
  await page.locator('textarea[name=prompt]').fill('How many sides?');
  await page.getByRole('button', { name: 'Send' }).click();
  const last = page.locator('.turn.model .md-view').last();
  await expect(last.locator('strong')).toHaveText('square');
  await expect(last.locator('details.thinking')).toContainText('Count the sides.');
  expect(await last.locator('details.thinking').evaluate((d) => d.open)).toBe(false);
  // Editing shows the raw text again; story mode shows it as written.
  await setMode(page, 'story');
  await expect(page.locator('.md-view')).toHaveCount(0);
  await expect(page.locator('.turn.model > .text').first()).toBeVisible();
  expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
});

test('every sampler the horde passes on, and a preset, reach the worker', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'sampler-worker', reply: 'Ok.', stepMs: 5 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('summary', { hasText: 'Settings' }).click();
  await page.getByRole('button', { name: 'DynaTemp' }).click();
  await expect(page.locator('input[name=dynatemp_range]')).toHaveValue('0.5');
  await expect(page.locator('input[name=temperature]')).toHaveValue('1');
  for (const [name, typed] of [['top_a', '0.1'], ['typical', '0.9'], ['tfs', '0.95'], ['rep_pen_slope', '0.5'],
    ['smoothing_factor', '0.2'], ['seed', '1234'], ['dynatemp_exponent', '1.5']]) {
    await page.locator(`input[name=${name}]`).fill(typed);
    await page.locator(`input[name=${name}]`).press('Tab');
  }
  await page.locator('input[name=sampler_order]').fill('5, 6, 0, 1, 2, 3, 4');
  await page.locator('input[name=sampler_order]').press('Tab');
  await page.locator('input[name=ban_eos]').check();
  await page.locator('textarea[name=prompt]').fill('Go.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Ok.');
  expect(worker.lastPayload()).toMatchObject({
    temperature: 1, dynatemp_range: 0.5, dynatemp_exponent: 1.5, top_a: 0.1, typical: 0.9, tfs: 0.95, rep_pen_slope: 0.5,
    smoothing_factor: 0.2, sampler_seed: 1234, sampler_order: [5, 6, 0, 1, 2, 3, 4], use_default_badwordsids: true,
  });
  // An order the horde refuses is said, not dropped.
  await page.locator('input[name=sampler_order]').fill('1, 2');
  await page.locator('input[name=sampler_order]').press('Tab');
  await page.locator('textarea[name=prompt]').fill('Again.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByRole('alert')).toContainText('sampler_order must contain at least 7 distinct samplers');
});

test('on a phone the new panels fit the screen', async ({ page, start }) => {
  await start(ScriptedWorker, { name: 'phone-worker', reply: 'A **bold** reply with a [link](https://example.com/a/very/long/address/that/goes/on/and/on).', stepMs: 5 });
  await page.setViewportSize({ width: 390, height: 844 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await setMode(page, 'chat');
  await page.locator('textarea[name=prompt]').fill('Hi.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.md-view strong')).toHaveText('bold');
  for (const panel of ['Settings', 'Theme and text size', 'Export / import', 'World info files']) {
    await page.locator('summary', { hasText: panel }).click();
  }
  await page.locator('.models summary').click();
  await expect(page.locator('input[name=model][value="e2e/scripted-7b"]')).toBeVisible();
  await expect(page.locator('input[name=import_file]')).toHaveCount(1);
  await expect(page.locator('input[name=ban_eos]')).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await expect(page.locator('select[name=theme]')).toBeVisible();
  for (const name of ['sampler_order', 'top_a', 'import_file', 'import_world_info', 'model']) {
    const box = await page.locator(`input[name=${name}]`).first().boundingBox();
    expect(box.x + box.width, name).toBeLessThanOrEqual(390);
  }
});
