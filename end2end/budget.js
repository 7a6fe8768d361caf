// First-load budget of the web UI: bytes transferred on a cold load (compressed, as served) and
// time until the page is interactive (hydrated), in headless Debian Chromium. Median of 5 cold
// loads, each in a fresh browser context (empty cache).
//
//   node end2end/budget.js http://127.0.0.1:7001/
const { chromium } = require('@playwright/test');

async function coldLoad(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const files = new Map();
  cdp.on('Network.responseReceived', (e) => files.set(e.requestId, { url: e.response.url, encoding: e.response.headers['content-encoding'] || 'none', bytes: 0 }));
  cdp.on('Network.loadingFinished', (e) => { const f = files.get(e.requestId); if (f) f.bytes = e.encodedDataLength; });
  await page.goto(url);
  await page.waitForSelector('main[data-ready=true]');
  const interactiveMs = await page.evaluate(() => performance.now());
  await page.waitForLoadState('networkidle');
  await context.close();
  return { interactiveMs, files: [...files.values()] };
}

(async () => {
  const url = process.argv[2] || 'http://127.0.0.1:7001/';
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const runs = [];
  for (let i = 0; i < 5; i++) runs.push(await coldLoad(browser, url));
  await browser.close();
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const first = runs[0];
  for (const f of first.files) console.log(`${String(f.bytes).padStart(9)} B  ${f.encoding.padEnd(5)} ${new URL(f.url).pathname}`);
  const totals = runs.map((r) => r.files.reduce((n, f) => n + f.bytes, 0));
  console.log(`first load: ${median(totals)} B transferred (median of ${runs.length} cold loads)`);
  console.log(`interactive (hydrated) after: ${Math.round(median(runs.map((r) => r.interactiveMs)))} ms (median)`);
})().catch((e) => { console.error(e); process.exit(1); });
