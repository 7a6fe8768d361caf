// The image studio: live price, generation through a scripted image worker, the gallery with
// download and rating, and img2img from an uploaded file.
const { test, expect, open, follow } = require('../fixtures');
const { ScriptedImageWorker, testUser, PNG_1X1 } = require('../worker');

async function signedIn(page, baseURL, name) {
  const user = await testUser(baseURL, name, 5000);
  await page.addInitScript((key) => localStorage.setItem('horde.api_key', JSON.stringify(key)), user.api_key);
  return user;
}

test('an image: live price, generation, gallery with download and rating', async ({ page, baseURL, start }) => {
  const worker = await start(ScriptedImageWorker, { name: 'image-worker' });
  await signedIn(page, baseURL, 'e2e-painter');
  await page.goto('/images');
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  // The model picker lists the image models online.
  const model = page.locator('select[name=image_model]');
  await expect(model.locator('option', { hasText: /^stable_diffusion · \d+ workers?$/ })).toHaveCount(1);
  await model.selectOption('stable_diffusion');
  await page.locator('textarea[name=image_prompt]').fill('a red fox in the snow');
  await page.locator('input[name=negative]').fill('blurry');
  const price = page.locator('.price');
  await expect(price).toContainText(/Costs about \d+/);
  const before = await price.textContent();
  await page.locator('input[name=steps]').fill('60');
  await page.locator('input[name=steps]').press('Tab');
  await expect(price).not.toHaveText(before);
  await page.locator('input[name=shared]').check();
  await page.getByRole('button', { name: 'Generate' }).click();
  const shot = page.locator('.shot');
  await expect(shot).toHaveCount(1);
  await expect(shot.locator('img')).toHaveJSProperty('naturalWidth', 1);
  const src = await shot.locator('img').getAttribute('src');
  expect(src).toMatch(/^\/api\/v2\/images\//);
  await expect(shot.getByRole('link', { name: 'Download' })).toHaveAttribute('href', src);
  await expect(shot.locator('figcaption')).toContainText('stable_diffusion · image-worker · seed 1234');
  const job = worker.jobs[0];
  expect(job.payload.prompt).toBe('a red fox in the snow ### blurry');
  expect(job.payload.ddim_steps).toBe(60);
  // Shared images can be rated once finished.
  await shot.locator('select.rating').selectOption('9');
  await shot.getByRole('button', { name: 'Rate' }).click();
  await expect(shot.locator('.reward')).toContainText('Rated: +');
});

test('img2img sends the uploaded image', async ({ page, baseURL, start }) => {
  const worker = await start(ScriptedImageWorker, { name: 'img2img-worker' });
  await signedIn(page, baseURL, 'e2e-img2img');
  await page.goto('/images');
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await page.locator('textarea[name=image_prompt]').fill('the same, in watercolour');
  await page.locator('details.img2img summary').click();
  await page.locator('input[name=source_image]').setInputFiles({ name: 'source.png', mimeType: 'image/png', buffer: Buffer.from(PNG_1X1, 'base64') });
  await expect(page.locator('.source-set')).toBeVisible();
  await page.getByRole('button', { name: 'Generate' }).click();
  await expect(page.locator('.shot')).toHaveCount(1);
  const job = worker.jobs[0];
  expect(job.source_processing).toBe('img2img');
  expect(job.source_image).toBeTruthy();
});

test('an image goes into the story and survives a reload', async ({ page, baseURL, start }) => {
  await start(ScriptedImageWorker, { name: 'story-image-worker' });
  await signedIn(page, baseURL, 'e2e-illustrator');
  await page.goto('/images');
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await page.locator('textarea[name=image_prompt]').fill('a lighthouse at dawn');
  await page.getByRole('button', { name: 'Generate' }).click();
  const shot = page.locator('.shot');
  await expect(shot).toHaveCount(1);
  await shot.getByRole('button', { name: 'Insert into story' }).click();
  await expect(shot.locator('.reward')).toHaveText('Added to your story.');
  await follow(page, 'Write');
  const image = page.locator('.turn img.inline-image');
  await expect(image).toHaveAttribute('src', /^data:image\/[a-z]+;base64,/);
  await expect(image).toHaveAttribute('alt', 'a lighthouse at dawn');
  // It survives a reload (it is a data URL, not the horde's short-lived link).
  await page.reload();
  await expect(page.locator('.turn img.inline-image')).toHaveJSProperty('naturalWidth', 1);
});
