// What a KoboldAI Lite user brings: Lite saves, Tavern character cards (PNG and JSON), Lite's
// world-info export; the imported story reaches a scripted worker's prompt. Also Enter sends,
// Shift+Enter is a new line, and the instruct templates. Every fixture is written here, in the
// format the other program writes.
const zlib = require('zlib');
const { test, expect, open } = require('../fixtures');
const { ScriptedWorker, PNG_1X1 } = require('../worker');

// A Lite save as Lite's "Download JSON" writes it (story mode, settings included).
const LITE_SAVE = {
  gamestarted: true,
  prompt: 'The ship drifted past the moon.',
  memory: 'Captain Vey commands the Lark.',
  authorsnote: 'Tense, short sentences.',
  anotetemplate: '[Style: <|>]',
  actions: [' Alarms rang on every deck.', ' Vey ran to the bridge.'],
  actions_metadata: { 0: { 'Selected Text': '', 'Alternative Text': [] }, 1: { 'Selected Text': '', 'Alternative Text': [] } },
  worldinfo: [
    { key: 'Lark,ship', keysecondary: '', keyanti: '', content: 'The Lark is an old freighter.', comment: '', folder: null,
      selective: false, constant: false, probability: 100, wigroup: '', widisabled: false },
    { key: 'bridge', keysecondary: 'alarms', keyanti: '', content: 'The bridge glows red.', comment: '', folder: null,
      selective: true, constant: false, probability: 100, wigroup: '', widisabled: false },
  ],
  wifolders_d: {}, wifolders_l: [], anotestr: 160, wisearchdepth: 0, wiinsertlocation: 0,
  personal_notes: 'remember the cat',
  savedsettings: { opmode: 1, temperature: 0.9, top_k: 40, max_length: 100, max_context_length: 4096, my_api_key: '0000000000' },
};

const CARD = {
  spec: 'chara_card_v2', spec_version: '2.0',
  data: {
    name: 'Seraphina', description: '{{char}} guards the forest and heals {{user}}.', personality: 'gentle',
    scenario: '{{user}} wakes in a glade.', first_mes: '*Seraphina smiles.* You are awake, {{user}}.',
    mes_example: '', creator_notes: 'Have fun!', system_prompt: '', post_history_instructions: '',
    alternate_greetings: ['*The glade is silent.*'], tags: [], creator: '', character_version: '', extensions: {},
    character_book: { entries: [
      { keys: ['glade'], secondary_keys: [], content: 'The glade heals every wound.', enabled: true, insertion_order: 0, selective: false, constant: false },
      { keys: ['wolf'], content: 'Wolves fear the glade.', enabled: false, insertion_order: 1 },
    ] },
  },
};

// A PNG with the card in a `chara` tEXt chunk (base64 JSON), as Tavern writes it.
function cardPng(card) {
  const png = Buffer.from(PNG_1X1, 'base64');
  const data = Buffer.concat([Buffer.from('chara\0'), Buffer.from(Buffer.from(JSON.stringify(card)).toString('base64'))]);
  const type = Buffer.from('tEXt');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([type, data])));
  // After the signature (8) and IHDR (25).
  return Buffer.concat([png.subarray(0, 33), len, type, data, crc, png.subarray(33)]);
}

async function importFile(page, name, mimeType, buffer) {
  const details = page.locator('details', { has: page.locator('summary', { hasText: 'Export / import' }) });
  if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
  await page.locator('input[name=import_file]').setInputFiles({ name, mimeType, buffer });
}

test('a Lite save imports with its memory, note, world info and settings, and the old story stays', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'lite-worker', reply: ' Red lights flashed.', stepMs: 10 });
  // A theme chosen before: the save's settings (its samplers) do not take it away.
  await page.addInitScript(() => { if (!localStorage.getItem('horde.settings')) localStorage.setItem('horde.settings', JSON.stringify({ theme: 'dark' })); });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('textarea[name=memory]').fill('My own story.');
  await importFile(page, 'lark.json', 'application/json', Buffer.from(JSON.stringify(LITE_SAVE)));
  const report = page.locator('.import-report');
  await expect(report).toContainText('the story text (3 pieces)');
  await expect(report).toContainText('2 world info entries');
  await expect(report).toContainText('the settings (temperature, top_k, max_length, max_context_length)');
  await expect(report).toContainText('Not imported: personal notes');
  await expect(page.locator('.turn')).toHaveCount(3);
  await expect(page.locator('textarea[name=memory]')).toHaveValue('Captain Vey commands the Lark.');
  await expect(page.locator('input[name=authors_note_template]')).toHaveValue('[Style: <|>]');
  await expect(page.locator('input[name=wi_secondary]').nth(1)).toHaveValue('alarms');
  await page.locator('summary', { hasText: 'Settings' }).click();
  await expect(page.locator('input[name=temperature]')).toHaveValue('0.9');
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  expect(await page.evaluate(() => JSON.parse(localStorage.getItem('horde.settings')).theme)).toBe('dark');
  // The story that was open is in the stories list.
  await expect(page.locator('select[name=story] option')).toHaveText(['lark', 'Untitled']);

  // Story mode continues without a new line of the writer's.
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').last()).toHaveText(' Red lights flashed.');
  const prompt = worker.lastPrompt();
  expect(prompt.startsWith('Captain Vey commands the Lark.\nThe Lark is an old freighter.\nThe bridge glows red.\n')).toBe(true);
  expect(prompt).toContain('The ship drifted past the moon. Alarms rang on every deck.\n[Style: Tense, short sentences.]\n Vey ran to the bridge.');
  expect(worker.lastPayload().temperature).toBe(0.9);
});

test("a Tavern PNG card with a lorebook starts a chat; its image becomes the bot's avatar", async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'card-worker', reply: ' Rest now.', stepMs: 10 });
  await open(page);
  await importFile(page, 'seraphina.png', 'image/png', cardPng(CARD));
  const report = page.locator('.import-report');
  await expect(report).toContainText('character card V2 "Seraphina"');
  await expect(report).toContainText('1 world info entry from the character book');
  await expect(report).toContainText('1 disabled entry');
  await expect(report).toContainText("the card's image (the bot's avatar)");
  expect((await report.textContent()).split('Not imported')[1]).not.toContain('image');
  await expect(page.locator('select[name=mode]')).toHaveValue('chat');
  await expect(page.locator('.turn.model .speaker')).toHaveText('Seraphina');
  // The chat view: the bot's turns carry the card's picture (96 px square), the writer's their
  // initial.
  const picture = (speaker) => speaker.evaluate((e) => getComputedStyle(e, '::before').backgroundImage);
  await expect(page.locator('.turn.model .speaker')).toHaveAttribute('style', /--avatar: url\("data:image\/(webp|png);base64,/);
  expect(await picture(page.locator('.turn.model .speaker'))).toMatch(/^url\("data:image\//);
  const size = await page.evaluate(async () => {
    const img = new Image();
    img.src = document.querySelector('.transcript').dataset.avatar;
    await img.decode();
    return [img.naturalWidth, img.naturalHeight];
  });
  expect(size).toEqual([96, 96]);
  await expect(page.locator('.turn.model .text')).toContainText('*Seraphina smiles.*');
  await page.locator('textarea[name=prompt]').fill('I look around the glade.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').last()).toHaveText('Rest now.');
  const prompt = worker.lastPrompt();
  expect(prompt).toContain('Seraphina guards the forest and heals User.');
  expect(prompt).toContain("Seraphina's personality: gentle\nScenario: User wakes in a glade.");
  expect(prompt).toContain('The glade heals every wound.');
  expect(prompt).not.toContain('Wolves');
  expect(prompt.endsWith('\nSeraphina: *Seraphina smiles.* You are awake, User.\nUser: I look around the glade.\nSeraphina:')).toBe(true);
  expect(prompt).not.toContain('data:image');
  await expect(page.locator('.turn.model .speaker[style*="--avatar"]')).toHaveCount(2);
  await expect(page.locator('.turn.writer .speaker')).toHaveAttribute('data-initial', 'U');
  expect(await picture(page.locator('.turn.writer .speaker'))).toBe('none');
  // The avatar is kept with the story.
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('.turn.model .speaker[style*="--avatar"]')).toHaveCount(2);
});

test('a V2 JSON card: each alternate greeting is a chat in the stories list', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'greeting-worker', reply: ' Hello.', stepMs: 10 });
  await open(page);
  await importFile(page, 'seraphina.json', 'application/json', Buffer.from(JSON.stringify(CARD)));
  await expect(page.locator('.import-report')).toContainText('1 alternate greeting');
  await expect(page.locator('select[name=story] option')).toHaveText(['Seraphina', 'Seraphina (greeting 2)']);
  await page.locator('select[name=story]').selectOption({ label: 'Seraphina (greeting 2)' });
  await expect(page.locator('.turn.model .text')).toHaveText('*The glade is silent.*');
  await page.locator('textarea[name=prompt]').fill('Hello?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').last()).toHaveText('Hello.');
  expect(worker.lastPrompt()).toContain('*The glade is silent.*\nUser: Hello?\nSeraphina:');
});

test("Lite's world-info export adds its entries, secondary keys included", async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'wi-worker', reply: ' Done.', stepMs: 10 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  const file = { name: 'world_info.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(LITE_SAVE.worldinfo)) };
  await page.locator('summary', { hasText: 'World info files' }).click();
  await page.locator('input[name=import_world_info]').setInputFiles(file);
  await expect(page.locator('.wi-report')).toHaveText('Imported: 2 world info entries, secondary keys of 1 entry.');
  await expect(page.locator('.world-entry')).toHaveCount(2);
  await expect(page.locator('input[name=wi_keys]').nth(0)).toHaveValue('Lark, ship');
  await page.locator('textarea[name=prompt]').fill('The Lark reached the bridge of stars.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText(' Done.');
  // The second entry needs "alarms" as well as "bridge".
  expect(worker.lastPrompt()).toBe('The Lark is an old freighter.\nThe Lark reached the bridge of stars.');
});

test('Enter sends, Shift+Enter is a new line, and the shortcut is shown', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'enter-worker', reply: ' Yes.', stepMs: 10 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await expect(page.locator('.shortcut')).toHaveText('Enter to send · Shift+Enter for a new line');
  const box = page.locator('textarea[name=prompt]');
  await box.click();
  await page.keyboard.type('First line.');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('Second line.');
  await expect(box).toHaveValue('First line.\nSecond line.');
  await expect(page.locator('.turn')).toHaveCount(0);
  await page.keyboard.press('Enter');
  await expect(page.locator('.turn.model .text')).toHaveText(' Yes.');
  await expect(box).toHaveValue('');
  expect(worker.lastPrompt()).toBe('First line.\nSecond line.');
});

test('instruct templates and custom tags shape the prompt; placeholders take the names', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'template-worker', reply: 'Blue.', stepMs: 10 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('select[name=mode]').selectOption('instruct');
  await expect(page.locator('select[name=template] option')).toHaveCount(13);
  await page.locator('select[name=template]').selectOption('Gemma');
  await page.locator('textarea[name=system_prompt]').fill('');
  await page.locator('textarea[name=prompt]').fill('Name a colour.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('Blue.');
  expect(worker.lastPrompt()).toBe('<start_of_turn>user\nName a colour.<end_of_turn>\n<start_of_turn>model\n');

  await page.locator('select[name=template]').selectOption('Custom tags');
  await page.locator('input[name=tag_user]').fill('\\n### {{user}}:\\n');
  await page.locator('input[name=tag_assistant]').fill('\\n### Reply:\\n');
  await page.locator('textarea[name=prompt]').fill('Another?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.pending')).toHaveCount(0);
  await expect(page.locator('.turn.model .text')).toHaveText(['Blue.', 'Blue.']);
  expect(worker.lastPrompt()).toBe('\n### User:\nName a colour.\n### Reply:\nBlue.\n### User:\nAnother?\n### Reply:\n');
  expect(worker.lastPayload().stop_sequence).toEqual(['### User:']);
});

test('a story exports as a Lite save', async ({ page }) => {
  await open(page);
  await importFile(page, 'lark.json', 'application/json', Buffer.from(JSON.stringify(LITE_SAVE)));
  await expect(page.locator('.turn')).toHaveCount(3);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export for KoboldAI Lite' }).click()]);
  expect(download.suggestedFilename()).toBe('lark (Lite).json');
  const save = JSON.parse(require('fs').readFileSync(await download.path(), 'utf8'));
  expect(save.prompt).toBe(LITE_SAVE.prompt);
  expect(save.actions).toEqual(LITE_SAVE.actions);
  expect([save.memory, save.authorsnote, save.anotetemplate, save.anotestr]).toEqual([LITE_SAVE.memory, LITE_SAVE.authorsnote, '[Style: <|>]', 160]);
  expect(save.worldinfo[1]).toMatchObject({ key: 'bridge', keysecondary: 'alarms', selective: true });
  expect(save.savedsettings).toMatchObject({ opmode: 1, temperature: 0.9 });
});

test('the file controls are loaded only when a files panel is opened', async ({ page }) => {
  const modules = [];
  page.on('request', (r) => { if (/studio-files/.test(r.url())) modules.push(r.url()); });
  await open(page);
  await expect(page.locator('input[name=import_file]')).toHaveCount(0);
  await expect(page.locator('input[name=import_world_info]')).toHaveCount(0);
  expect(modules).toEqual([]);
  await page.locator('summary', { hasText: 'Export / import' }).click();
  await expect(page.locator('input[name=import_file]')).toHaveCount(1);
  // One module fills every files panel, once.
  await expect(page.locator('input[name=import_world_info]')).toHaveCount(1);
  await page.locator('summary', { hasText: 'World info files' }).click();
  await expect(page.locator('input[name=import_world_info]')).toHaveCount(1);
  expect(modules).toHaveLength(1);
  expect(modules[0]).toMatch(/\/pkg\/studio-files\.[0-9a-f]{12}\.js$/);
});

// A WEBP card as TavernAI wrote them: the card's JSON in the EXIF UserComment (Exif IFD, with
// EXIF's "UNICODE" character code, UTF-16 little-endian). The picture is a real WEBP drawn by
// the browser (an extended file: VP8X, ICCP, VP8); its VP8X header is marked as having EXIF, as
// the WEBP container asks.
async function cardWebp(page, card) {
  const drawn = await page.evaluate(() => {
    const canvas = Object.assign(document.createElement('canvas'), { width: 8, height: 8 });
    const g = canvas.getContext('2d');
    g.fillStyle = '#3a7';
    g.fillRect(0, 0, 8, 8);
    return canvas.toDataURL('image/webp').split(',')[1];
  });
  const image = Buffer.from(Buffer.from(drawn, 'base64').subarray(12)); // its chunks, after RIFF/size/WEBP
  expect(image.toString('ascii', 0, 4)).toBe('VP8X');
  image[8] |= 0x08; // VP8X flags: EXIF present
  const json = Buffer.from(JSON.stringify(card), 'utf16le');
  const comment = Buffer.concat([Buffer.from('UNICODE\0'), json]);
  const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
  const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  const exifIfd = 8 + 2 + 12 + 4;
  const valueAt = exifIfd + 2 + 12 + 4;
  const tiff = Buffer.concat([
    Buffer.from('II*\0'), u32(8),
    u16(1), u16(0x8769), u16(4), u32(1), u32(exifIfd), u32(0),
    u16(1), u16(0x9286), u16(7), u32(comment.length), u32(valueAt), u32(0),
    comment,
  ]);
  const chunk = (type, data) => Buffer.concat([Buffer.from(type), u32(data.length), data, Buffer.alloc(data.length % 2)]);
  const body = Buffer.concat([Buffer.from('WEBP'), image, chunk('EXIF', tiff)]);
  return Buffer.concat([Buffer.from('RIFF'), u32(body.length), body]);
}

test("a WEBP character card starts a chat with its lorebook; its picture becomes the bot's avatar", async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'webp-card-worker', reply: ' Rest.', stepMs: 10 });
  await open(page);
  await importFile(page, 'seraphina.webp', 'image/webp', await cardWebp(page, CARD));
  const report = page.locator('.import-report');
  await expect(report).toContainText('character card V2 "Seraphina"');
  await expect(report).toContainText('1 world info entry from the character book');
  await expect(report).toContainText("the card's image (the bot's avatar)");
  await expect(page.locator('select[name=mode]')).toHaveValue('chat');
  await expect(page.locator('.turn.model .speaker')).toHaveAttribute('style', /--avatar: url\("data:image\//);
  await page.locator('textarea[name=prompt]').fill('Where am I? The glade?');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').last()).toHaveText('Rest.');
  expect(worker.lastPrompt()).toContain('The glade heals every wound.');
  // A WEBP with no card is refused with why.
  await importFile(page, 'plain.webp', 'image/webp', Buffer.from(await page.evaluate(() => {
    const canvas = Object.assign(document.createElement('canvas'), { width: 4, height: 4 });
    return canvas.toDataURL('image/webp').split(',')[1];
  }), 'base64'));
  await expect(report).toHaveText(/This WEBP has no character card in it/);
});

test('a KoboldAI United .kaistory imports its text, memory, note and world info', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'kaistory-worker', reply: ' The walls held.', stepMs: 10 });
  await open(page);
  const kaistory = {
    file_version: 2, story_name: 'Siege', prompt: 'The gate opened.', memory: 'A city under siege.',
    authornote: 'Grim.', authornotetemplate: '[Note: <|>]', andepth: 3,
    actions: { action_count: 1, actions: {
      0: { 'Selected Text': ' Soldiers ran in.', Options: [], 'Selected Text Length': 4 },
      1: { 'Selected Text': ' The bell rang.', Options: [], 'Selected Text Length': 4 },
    } },
    worldinfo_v2: { folders: { root: [0] }, entries: { 0: {
      uid: 0, title: 'Gate', key: ['gate'], keysecondary: [], folder: 'root', constant: false,
      content: 'The gate is iron.', manual_text: 'The gate is iron.', comment: '', type: 'wi', selective: false,
    } } },
  };
  await importFile(page, 'siege.kaistory', 'application/octet-stream', Buffer.from(JSON.stringify(kaistory)));
  const report = page.locator('.import-report');
  await expect(report).toContainText('the story text (3 pieces)');
  await expect(report).toContainText('the memory');
  await expect(report).toContainText('1 world info entry');
  await expect(page.locator('select[name=story] option').first()).toHaveText('Siege');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').last()).toHaveText(' The walls held.');
  const prompt = worker.lastPrompt();
  expect(prompt.startsWith('A city under siege.\nThe gate is iron.\n')).toBe(true);
  expect(prompt).toContain('The gate opened. Soldiers ran in. The bell rang.');
  expect(prompt).toContain('[Note: Grim.]');
});

test('quick starts: a built-in scenario per mode and a character card, the current story kept in the list', async ({ page, start }) => {
  const worker = await start(ScriptedWorker, { name: 'scenario-worker', reply: ' You wade inside.', stepMs: 10 });
  await open(page);
  await page.getByRole('button', { name: 'New' }).click();
  await page.locator('textarea[name=prompt]').fill('My own beginning.');
  await page.locator('summary', { hasText: 'Quick start' }).click();
  const scenarios = page.locator('button[name=scenario]');
  await expect(scenarios).toHaveText(['The lighthouse keeper (story)', 'The sunken temple (adventure)', 'Captain Mara (chat)', 'Writing helper (instruct)']);
  // A story with something in it first, so that there is something to keep.
  await page.locator('textarea[name=memory]').fill('Mine.');
  await scenarios.filter({ hasText: 'adventure' }).click();
  await expect(page.locator('.start-report')).toContainText('Started “The sunken temple” (adventure). Your previous story is in the stories list.');
  await expect(page.locator('select[name=mode]')).toHaveValue('adventure');
  await expect(page.locator('.turn.model .text')).toContainText('You stand at the mouth of the temple.');
  await expect(page.locator('select[name=story] option')).toHaveText(['The sunken temple', 'Untitled']);
  await page.locator('textarea[name=prompt]').fill('I step inside.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').last()).toHaveText('You wade inside.');
  expect(worker.lastPrompt()).toContain('text adventure');
  expect(worker.lastPrompt()).toContain('\n> I step inside.\n');
  // Each mode's scenario opens in its mode; the others stay in the list.
  for (const [label, mode] of [['story', 'story'], ['chat', 'chat'], ['instruct', 'instruct']]) {
    await scenarios.filter({ hasText: `(${label})` }).click();
    await expect(page.locator('select[name=mode]')).toHaveValue(mode);
  }
  await expect(page.locator('.turn.model .speaker')).toHaveText('Assistant');
  await expect(page.locator('select[name=story] option')).toHaveText(['Writing helper', 'Captain Mara', 'The lighthouse keeper', 'The sunken temple', 'Untitled']);
  // A character card starts a chat from its first message.
  await page.locator('input[name=start_card]').setInputFiles({ name: 'seraphina.png', mimeType: 'image/png', buffer: cardPng(CARD) });
  await expect(page.locator('.start-report')).toContainText('character card V2 "Seraphina"');
  await expect(page.locator('.turn.model .speaker')).toHaveText('Seraphina');
  await expect(page.locator('select[name=story] option').nth(2)).toHaveText('Writing helper');
});
