// Browser tests of the web UI against the real horde binary (debug build, bundle from
// scripts/build-site.sh), in Debian's Chromium. Never downloads a browser.
const { defineConfig } = require('@playwright/test');
const fs = require('fs');
const os = require('os');
const path = require('path');

const PORT = process.env.HORDE_E2E_PORT || '7391';
const BASE_URL = `http://127.0.0.1:${PORT}`;
const targetDir = process.env.CARGO_TARGET_DIR || path.join(__dirname, 'target');
const horde = process.env.HORDE_BIN || path.join(targetDir, 'debug', 'horde');
// The config is read by the runner and again by each test process: the runner makes the hordes'
// data directories, the test processes find them in the environment, and the runner removes
// them when it exits (after the hordes are stopped).
function dataDirectory(variable, prefix) {
  if (process.env[variable]) return process.env[variable];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.env[variable] = dir;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const dataDir = dataDirectory('HORDE_E2E_DATA_DIR', 'horde-e2e-');
const localDataDir = dataDirectory('HORDE_E2E_LOCAL_DATA_DIR', 'horde-e2e-local-');
const { LOCAL_PORT, LOCAL_URL, LOCAL_MODEL } = require('./end2end/local_horde');

module.exports = defineConfig({
  testDir: './end2end/tests',
  outputDir: './end2end/test-results',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: BASE_URL,
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--no-first-run'],
    },
  },
  webServer: [{
    command: `"${horde}" serve --port ${PORT} --data-dir "${dataDir}" --dev-test-users --no-rate-limits`,
    url: `${BASE_URL}/api/v2/status/heartbeat`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
  }, {
    // A second horde with its own local worker on SmolLM2 (end2end/local_horde.js), apart from
    // the first so it never takes the scripted workers' jobs.
    command: `"${horde}" serve --port ${LOCAL_PORT} --data-dir "${localDataDir}" --no-rate-limits `
      + `--local-worker "${LOCAL_MODEL || 'off'}"`,
    url: `${LOCAL_URL}/api/v2/status/heartbeat`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
  }],
});
