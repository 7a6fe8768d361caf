// Pictures and alchemy in the studios: an illustration of the scene made from the writing
// studio through a scripted image worker, captions of the story's pictures by a scripted
// alchemist written into the story, and the image studio's captions and upscales. Also the
// panels on a phone.
const { test, expect, open } = require('../fixtures');
const { ScriptedWorker, ScriptedImageWorker, ScriptedAlchemist, testUser, png, PNG_1X1 } = require('../worker');

async function signedIn(page, baseURL, name) {
  const user = await testUser(baseURL, name, 5000);
  await page.addInitScript((key) => localStorage.setItem('horde.api_key', JSON.stringify(key)), user.api_key);
  return user;
}

// A story stored in this browser before the page loads (the studio's own format).
async function withStory(page, story) {
  await page.addInitScript((s) => {
    if (!localStorage.getItem('horde.story')) localStorage.setItem('horde.story', JSON.stringify(s));
  }, story);
}

const OPENING = 'The storm had raged all night. At dawn, Elin climbed to the lamp room and saw a red sail on the horizon, torn and drifting toward the rocks below the lighthouse.';

async function openPictures(page) {
  await page.locator('summary', { hasText: 'Pictures' }).click();
  await expect(page.locator('textarea[name=scene_prompt]')).toBeVisible();
}

test('an illustration of the scene: the prompt comes from the story, is edited, and the picture shows inline', async ({ page, baseURL, start }) => {
  const worker = await start(ScriptedImageWorker, { name: 'scene-painter' });
  await signedIn(page, baseURL, 'e2e-scene');
  await withStory(page, {
    title: 'Lamp', mode: 'story',
    turns: [{ role: 'writer', text: `Long ago, ${'the village fished and slept and fished again, '.repeat(8)}and nobody kept a light.` }, { role: 'model', text: OPENING }],
  });
  const modules = [];
  page.on('request', (r) => { if (/studio-pictures/.test(r.url())) modules.push(r.url()); });
  await open(page);
  expect(modules).toEqual([]);
  await openPictures(page);
  // Filled in from the end of the story (from a sentence's start), not its beginning.
  const prompt = page.locator('textarea[name=scene_prompt]');
  await expect(prompt).toHaveValue(OPENING);
  await expect(page.locator('.pictures')).toContainText("kept with the story in this browser's storage");
  // Cancel shows only while a picture is on its way.
  await expect(page.locator('.pictures button.danger')).toBeHidden();
  await prompt.fill('a red sail near a lighthouse at dawn, oil painting');
  await page.getByRole('button', { name: 'Make the picture' }).click();
  await expect(page.locator('.picture-status')).toHaveText('Added to the end of the story.');
  expect(worker.jobs).toHaveLength(1);
  expect(worker.jobs[0].payload.prompt).toBe('a red sail near a lighthouse at dawn, oil painting');
  const image = page.locator('.turn img.inline-image');
  await expect(image).toHaveAttribute('src', /^data:image\/[a-z]+;base64,/);
  await expect(image).toHaveAttribute('alt', 'a red sail near a lighthouse at dawn, oil painting');
  await expect(image).toHaveJSProperty('naturalWidth', 1);
  // Listed among the story's pictures, and undoable like any change.
  await expect(page.locator('.story-picture')).toHaveCount(1);
  await page.getByRole('button', { name: 'Undo' }).click();
  await expect(page.locator('.turn img.inline-image')).toHaveCount(0);
  await page.getByRole('button', { name: 'Redo' }).click();
  await expect(page.locator('.turn img.inline-image')).toHaveCount(1);
  // Kept with the story after a reload.
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('.turn img.inline-image')).toHaveJSProperty('naturalWidth', 1);
  // The module came once, when the panel was first opened: it is not part of the first load.
  expect(modules).toHaveLength(1);
});

test('a picture from a file is captioned by an alchemist; the caption goes into the prompt', async ({ page, baseURL, start }) => {
  const alchemist = await start(ScriptedAlchemist, { name: 'story-reader', caption: 'a lighthouse on a cliff' });
  const writer = await start(ScriptedWorker, { name: 'caption-writer', reply: ' The sea roared.', stepMs: 5 });
  await signedIn(page, baseURL, 'e2e-caption-story');
  await withStory(page, { title: 'Cliff', mode: 'story', turns: [{ role: 'writer', text: 'She walked to the edge.' }] });
  await open(page);
  await openPictures(page);
  const picture = png(2, 2);
  await page.locator('input[name=story_picture]').setInputFiles({ name: 'cliff.png', mimeType: 'image/png', buffer: picture });
  await expect(page.locator('.turn img.inline-image')).toHaveAttribute('alt', 'cliff');
  await page.locator('.story-picture').getByRole('button', { name: 'Caption' }).click();
  await expect(page.locator('.story-picture')).toContainText('Caption added after the picture: “a lighthouse on a cliff”');
  // The alchemist got the picture itself.
  expect(alchemist.forms.map((f) => f.form)).toEqual(['caption']);
  expect(alchemist.forms[0].source.equals(picture)).toBe(true);
  await expect(page.locator('.turn.writer .text').last()).toHaveText('[Image: a lighthouse on a cliff]');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text').last()).toHaveText('The sea roared.');
  const sent = writer.lastPrompt();
  expect(sent).toContain('She walked to the edge.');
  expect(sent).toContain('[Image: a lighthouse on a cliff]');
  expect(sent).not.toContain('data:image');
});

test('the image studio captions a chosen file, and captions and upscales a generated image', async ({ page, baseURL, start }) => {
  await start(ScriptedImageWorker, { name: 'gallery-painter' });
  const alchemist = await start(ScriptedAlchemist, { name: 'gallery-alchemist', caption: 'a grey square' });
  await signedIn(page, baseURL, 'e2e-alchemy');
  await open(page, '/images');
  // A file the user picks.
  await page.locator('summary', { hasText: 'Caption an image' }).click();
  await page.locator('input[name=caption_image]').setInputFiles({ name: 'mine.png', mimeType: 'image/png', buffer: png(3, 3) });
  await page.locator('.caption-file').getByRole('button', { name: 'Caption' }).click();
  await expect(page.locator('.caption-file .caption')).toHaveText('a grey square');
  expect(alchemist.forms[0].source.equals(png(3, 3))).toBe(true);
  // A generated one.
  await page.locator('textarea[name=image_prompt]').fill('a grey square');
  await page.getByRole('button', { name: 'Generate' }).click();
  const shot = page.locator('.shot');
  await expect(shot).toHaveCount(1);
  await shot.getByRole('button', { name: 'Caption' }).click();
  await expect(shot.locator('.caption')).toHaveText('a grey square');
  expect(alchemist.forms[1].source.equals(Buffer.from(PNG_1X1, 'base64'))).toBe(true);
  await shot.getByRole('button', { name: 'Upscale ×4' }).click();
  const upscaled = shot.locator('.upscaled img');
  await expect(upscaled).toHaveJSProperty('naturalWidth', 4);
  await expect(upscaled).toHaveAttribute('src', /^\/api\/v2\/images\//);
  await expect(shot.getByRole('link', { name: 'Download the upscale' })).toHaveAttribute('href', await upscaled.getAttribute('src'));
  expect(alchemist.forms.map((f) => f.form)).toEqual(['caption', 'caption', 'RealESRGAN_x4plus']);
});

test('while no alchemist takes it, the caption waits and says so', async ({ page, baseURL }) => {
  await signedIn(page, baseURL, 'e2e-no-alchemist');
  await withStory(page, { title: 'Alone', mode: 'chat', turns: [{ role: 'writer', text: 'Look.', image: `data:image/png;base64,${PNG_1X1}` }] });
  await open(page);
  await openPictures(page);
  await page.locator('.story-picture').getByRole('button', { name: 'Caption' }).click();
  // Alchemists of earlier tests may still count as online for a while: either is said.
  await expect(page.locator('.story-picture')).toContainText(/Waiting for an alchemist…|No alchemist online can caption it now/);
  await expect(page.locator('.story-picture').getByRole('button', { name: 'Caption' })).toBeDisabled();
  await expect(page.locator('.turn')).toHaveCount(1);
});

test('on a phone the pictures panel and the image studio fit the screen', async ({ page, baseURL, start }) => {
  await start(ScriptedImageWorker, { name: 'phone-painter' });
  await page.setViewportSize({ width: 390, height: 844 });
  await signedIn(page, baseURL, 'e2e-phone-pictures');
  await withStory(page, { title: 'Phone', mode: 'story', turns: [{ role: 'writer', text: OPENING }, { role: 'writer', text: 'x', image: `data:image/png;base64,${PNG_1X1}` }] });
  await open(page);
  await openPictures(page);
  await page.locator('summary', { hasText: 'Quick start' }).click();
  await expect(page.locator('button[name=scenario]')).toHaveCount(4);
  const fits = async (selectors) => {
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    for (const selector of selectors) {
      const box = await page.locator(selector).first().boundingBox();
      expect(box.x + box.width, selector).toBeLessThanOrEqual(390);
    }
  };
  await fits(['textarea[name=scene_prompt]', 'button[name=make_picture]', 'input[name=story_picture]', '.story-picture button', 'button[name=scenario]', 'input[name=start_card]']);
  await open(page, '/images');
  await page.locator('summary', { hasText: 'Caption an image' }).click();
  await page.locator('textarea[name=image_prompt]').fill('a tiny square');
  await page.getByRole('button', { name: 'Generate' }).click();
  await expect(page.locator('.shot')).toHaveCount(1);
  await fits(['input[name=caption_image]', '.shot button:has-text("Upscale")']);
});
