// Account and workers pages: registration, balance, transfer, the maintenance switch, and every
// page on a phone.
const { test, expect, open, follow } = require('../fixtures');
const { ScriptedWorker, testUser, call } = require('../worker');

test('register shows the key once, and a request lowers the balance', async ({ page, baseURL, start }) => {
  await start(ScriptedWorker, { name: 'paid-worker', reply: 'A paid answer.', stepMs: 10 });
  await open(page, '/account');
  await expect(page.locator('.username')).toContainText('Anonymous');
  await page.locator('input[name=username]').fill('e2e-writer');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('.new-key')).toHaveText(/^\S{16,}$/);
  // The account is read again with the new key (the old answer shows until it arrives).
  await expect(page.locator('.username')).toHaveText(/^e2e-writer#\d+$/);
  const username = (await page.locator('.username').textContent()).trim();
  await expect(page.locator('.kudos')).toHaveText('0');
  // A new account starts with nothing: a friend sends some (a charge never takes a balance
  // below its floor, so at 0 there would be nothing to see).
  const friend = await testUser(baseURL, 'e2e-friend', 1000);
  await call(baseURL, '/kudos/transfer', friend.api_key, { username, amount: 200 });
  await page.reload();
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
  await expect(page.locator('.kudos')).toHaveText('200');
  const before = 200;

  // Going to another page keeps the key (it lives in this browser); the request is charged to
  // the new account.
  await follow(page, 'Write');
  await page.locator('textarea[name=prompt]').fill('Tell me something.');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('.turn.model .text')).toHaveText('A paid answer.');
  await follow(page, 'Account');
  await expect(page.locator('.username')).toContainText('e2e-writer');
  await expect.poll(async () => Number(await page.locator('.kudos').textContent())).toBeLessThan(before);
  // The key is shown once: not after navigating away.
  await expect(page.locator('.new-key')).toHaveCount(0);
});

test('kudos transfer moves kudos to another user', async ({ page, baseURL }) => {
  const sender = await testUser(baseURL, 'e2e-sender', 1000);
  const recipient = await testUser(baseURL, 'e2e-recipient', 0);
  await open(page, '/account');
  await page.locator('input[name=api_key]').fill(sender.api_key);
  await page.getByRole('button', { name: 'Use this key' }).click();
  await expect(page.locator('.username')).toContainText('e2e-sender');
  await expect(page.locator('.kudos')).toHaveText('1000');
  await page.locator('input[name=recipient]').fill(recipient.username);
  await page.locator('input[name=amount]').fill('25');
  await page.getByRole('button', { name: 'Send kudos' }).click();
  await expect(page.locator('.message')).toContainText(`Sent 25 kudos to ${recipient.username}`);
  await expect(page.locator('.kudos')).toHaveText('975');
  // A transfer beyond the balance is refused with the horde's message.
  await page.locator('input[name=amount]').fill('5000');
  await page.getByRole('button', { name: 'Send kudos' }).click();
  await expect(page.locator('.message')).toContainText(/kudos/i);
  await expect(page.locator('.message')).not.toContainText('server function');
  await expect(page.locator('.kudos')).toHaveText('975');
});

test('an owner switches maintenance, edits and deletes a worker from the workers page', async ({ page, baseURL, start }) => {
  const worker = await start(ScriptedWorker, { name: 'owned-worker' });
  await open(page, '/account');
  await page.locator('input[name=api_key]').fill(worker.key);
  await page.getByRole('button', { name: 'Use this key' }).click();
  await expect(page.locator('.username')).toContainText('owned-worker-owner');
  await follow(page, 'Workers');
  await expect(page.locator('.worker-list')).toContainText('owned-worker');
  const card = page.locator('.my-worker[data-worker=owned-worker]');
  await expect(card.locator('.state')).toHaveText('Serving');
  await card.getByRole('button', { name: 'Maintenance' }).click();
  await expect(card.locator('.state')).toHaveText('In maintenance');
  await card.getByRole('button', { name: 'Resume' }).click();
  await expect(card.locator('.state')).toHaveText('Serving');

  // Its description is edited here and shows on the API.
  await card.locator('input[name=worker_info]').fill('An RTX box in a cupboard');
  await card.getByRole('button', { name: 'Save info' }).click();
  await expect(page.locator('.message')).toHaveText('Worker info saved.');
  const listed = await (await fetch(`${baseURL}/api/v2/workers?type=text`)).json();
  expect(listed.find((w) => w.name === 'owned-worker').info).toBe('An RTX box in a cupboard');

  // Deleting asks for a second click; a stopped worker then leaves the list.
  await worker.stop();
  await card.getByRole('button', { name: 'Delete' }).click();
  await expect(card.getByRole('button', { name: 'Confirm delete' })).toBeVisible();
  await card.getByRole('button', { name: 'Confirm delete' }).click();
  await expect(page.locator('.message')).toHaveText('Worker owned-worker deleted.');
  await expect(page.locator('.my-worker')).toHaveCount(0);
});

test.describe('on a phone', () => {
  test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

  for (const [name, path] of [['write', '/'], ['images', '/images'], ['account', '/account'], ['workers', '/workers']]) {
    test(`the ${name} page fits the screen`, async ({ page }, info) => {
      await open(page, path);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      // Every page's link shows without scrolling the navigation.
      const hidden = await page.evaluate(() => { const nav = document.querySelector('header nav'); return nav.scrollWidth - nav.clientWidth; });
      expect(hidden).toBeLessThanOrEqual(0);
      await page.screenshot({ path: info.outputPath(`phone-${name}.png`), fullPage: true });
    });
  }
});
