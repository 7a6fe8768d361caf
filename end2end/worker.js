// A scripted text worker for the browser tests: pops jobs over the real API, remembers the
// payloads it saw, streams its reply word by word through the progress protocol and submits.
const API = '/api/v2';

async function call(baseURL, path, key, body) {
  const res = await fetch(`${baseURL}${API}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { apikey: key } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return json;
}

// A new account through the horde's test route (loopback, --dev-test-users).
async function testUser(baseURL, username, kudos = 1000) {
  return call(baseURL, '/dev/test-user', null, {
    username, oauth_id: `e2e:${username}:${Date.now()}:${Math.random()}`, kudos, moderator: false, trusted: true,
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A 1×1 PNG: what the scripted image worker "generates" (the horde accepts WebP, PNG or JPEG).
const PNG_1X1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

// What both scripted workers do: an owner account, then pop until stopped, serving each job.
// Subclasses say where they pop (`popPath`, `popBody()`) and how they serve a job (`serve(job)`).
class ScriptedLoop {
  constructor(baseURL, name, model, stepMs) {
    Object.assign(this, { baseURL, name, model, stepMs });
    this.stopped = false;
  }

  async start() {
    const user = await testUser(this.baseURL, `${this.name}-owner`);
    this.key = user.api_key;
    this.loop = this.run();
    // Online once the first pop has been made.
    while (this.pops === undefined) await sleep(20);
    return this;
  }

  async run() {
    this.pops = 0;
    while (!this.stopped) {
      let job;
      try {
        job = await call(this.baseURL, this.popPath, this.key, this.popBody());
      } catch (e) {
        await sleep(100);
        continue;
      }
      this.pops += 1;
      if (!this.hasJob(job)) { await sleep(50); continue; }
      await this.serve(job);
    }
  }

  // Whether a pop's answer holds work (text and image pops answer a job with an id).
  hasJob(job) {
    return !!(job && job.id);
  }

  // Stops after the job in hand; stopping twice is fine.
  async stop() {
    this.stopped = true;
    await this.loop;
  }
}

// A text worker: remembers the payloads, streams its reply word by word through the progress
// protocol (stopping when the requester cancels) and submits.
class ScriptedWorker extends ScriptedLoop {
  // reply: text or (payload) => text; stepMs: pause between streamed words.
  constructor(baseURL, { name = 'scripted-worker', model = 'e2e/scripted-7b', reply = 'Hello from the worker.', stepMs = 120 } = {}) {
    super(baseURL, name, model, stepMs);
    this.reply = reply;
    this.payloads = [];
    this.cancelled = 0;
    this.popPath = '/generate/text/pop';
  }

  popBody() {
    return {
      name: this.name, models: [this.model], max_length: 512, max_context_length: 8192,
      bridge_agent: 'e2e-scripted-worker:1:https://example.invalid',
    };
  }

  async serve(job) {
    this.payloads.push(job.payload);
    const text = typeof this.reply === 'function' ? this.reply(job.payload) : this.reply;
    let soFar = '';
    for (const [i, word] of text.split(' ').entries()) {
      soFar += (i > 0 ? ' ' : '') + word;
      const p = await call(this.baseURL, '/generate/text/progress', this.key, { id: job.id, text: soFar });
      if (p && p.cancelled) { this.cancelled += 1; break; }
      await sleep(this.stepMs);
    }
    await call(this.baseURL, '/generate/text/submit', this.key, { id: job.id, generation: soFar, state: 'ok' });
  }

  lastPrompt() {
    const p = this.lastPayload();
    return p ? p.prompt : undefined;
  }

  lastPayload() {
    return this.payloads[this.payloads.length - 1];
  }
}

// An image worker: remembers the jobs it was given and submits a PNG for each.
class ScriptedImageWorker extends ScriptedLoop {
  constructor(baseURL, { name = 'scripted-image-worker', model = 'stable_diffusion', stepMs = 300 } = {}) {
    super(baseURL, name, model, stepMs);
    this.jobs = [];
    this.popPath = '/generate/pop';
  }

  popBody() {
    return {
      name: this.name, models: [this.model], max_pixels: 4194304, nsfw: true, allow_img2img: true,
      bridge_agent: 'e2e-scripted-image-worker:1:https://example.invalid',
    };
  }

  async serve(job) {
    this.jobs.push(job);
    await sleep(this.stepMs);
    for (const id of (job.ids && job.ids.length ? job.ids : [job.id])) {
      await call(this.baseURL, '/generate/submit', this.key, { id, generation: PNG_1X1, seed: 1234, state: 'ok' });
    }
  }
}

// A PNG of `width`×`height` grey pixels, written here (signature, IHDR, IDAT, IEND).
function png(width, height) {
  const zlib = require('zlib');
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type), data])));
    return Buffer.concat([len, Buffer.from(type), data, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 0, 0, 0, 0], 8); // 8-bit greyscale
  const rows = Buffer.alloc((width + 1) * height, 0x80);
  for (let y = 0; y < height; y++) rows[y * (width + 1)] = 0; // each row's filter byte
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// An alchemist: captions with a fixed text and "upscales" to a 4×4 PNG uploaded to the form's
// upload link; remembers each form and the source image it fetched.
class ScriptedAlchemist extends ScriptedLoop {
  constructor(baseURL, { name = 'scripted-alchemist', caption = 'a lighthouse on a cliff', stepMs = 200 } = {}) {
    super(baseURL, name, null, stepMs);
    this.caption = caption;
    this.forms = [];
    this.popPath = '/interrogate/pop';
  }

  popBody() {
    return {
      name: this.name, forms: ['caption', 'RealESRGAN_x4plus'], amount: 1, threads: 1, max_tiles: 16,
      bridge_agent: 'e2e-scripted-alchemist:1:https://example.invalid',
    };
  }

  hasJob(answer) {
    return !!(answer && answer.forms && answer.forms.length);
  }

  async serve(answer) {
    for (const form of answer.forms) {
      const source = await fetch(form.source_image);
      this.forms.push({ ...form, source: Buffer.from(await source.arrayBuffer()) });
      await sleep(this.stepMs);
      let result;
      if (form.form === 'caption') {
        result = { caption: this.caption };
      } else {
        const put = await fetch(form.r2_upload, { method: 'PUT', body: png(4, 4) });
        if (!put.ok) throw new Error(`upload: ${put.status}`);
        result = { [form.form]: 'R2' };
      }
      await call(this.baseURL, '/interrogate/submit', this.key, { id: form.id, result, state: 'ok' });
    }
  }
}

module.exports = { ScriptedWorker, ScriptedImageWorker, ScriptedAlchemist, testUser, call, png, PNG_1X1 };
