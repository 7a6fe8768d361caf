// What every browser test shares: a page whose script errors fail the test, scripted workers
// stopped when the test ends, and opening a page (or following a link to one) once it has
// hydrated.
const base = require('@playwright/test');

const { expect } = base;

const test = base.test.extend({
  page: async ({ page }, use) => {
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await use(page);
    expect(errors, 'script errors on the page').toEqual([]);
  },
  // start(Kind, options): a scripted worker (end2end/worker.js) on this horde.
  start: async ({ baseURL }, use) => {
    const started = [];
    await use(async (Kind, options) => {
      const worker = await new Kind(baseURL, options).start();
      started.push(worker);
      return worker;
    });
    for (const worker of started) await worker.stop();
  },
});

async function open(page, path = '/') {
  await page.goto(path);
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
}

// Follows a navigation link: each page is its own document (and bundle), so wait for the new
// one to load and hydrate.
async function follow(page, name) {
  const link = page.getByRole('navigation').getByRole('link', { name });
  const path = await link.getAttribute('href');
  await link.click();
  await page.waitForURL((url) => url.pathname === path);
  await expect(page.locator('main')).toHaveAttribute('data-ready', 'true');
}

module.exports = { test, expect, open, follow };
