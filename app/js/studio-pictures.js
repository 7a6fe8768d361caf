// The writing studio's pictures: an illustration of the current scene made through the horde
// (an image request; the prompt, filled in from the end of the story, is editable before it is
// sent), a picture from a file, and captions of the story's pictures by the horde's alchemists
// (an interrogation request), written into the story as text the model reads. Loaded by the
// page when its `details[data-lazy=studio-pictures]` panel is first opened, so none of it is in
// the studio's first load; `open()` runs on every opening. The horde is reached through the
// server functions under /ui/api/ (`submit_image`, `image_progress`, `cancel_image`,
// `submit_alchemy`, `alchemy_progress`), the studio through the `horde-studio` window event
// (app/src/pages/write/files.rs): `story` reads the story, `turns` replaces its turns (undoably).
// Pictures are `data:` URLs in the story, kept with it in this browser's storage.

document.head.append(Object.assign(document.createElement('style'), {
  textContent: '.pictures[open] { display: grid; grid-template-columns: minmax(0, 1fr); gap: 0.5rem; } .pictures [hidden] { display: none; }'
    + ' .pictures .row { flex-wrap: wrap; align-items: center; } .pictures .row > * { flex: 0 0 auto; }'
    + ' .story-pictures { display: grid; gap: 0.5rem; } .story-picture { display: flex; gap: 0.5rem; align-items: center; }'
    + ' .story-picture img { width: 4rem; height: 4rem; object-fit: cover; border-radius: 0.25rem; flex: none; }'
    + ' .story-picture span { flex: 1; min-width: 0; overflow-wrap: anywhere; font-size: 0.85rem; }',
}));

/** Asks the studio (synchronously) and returns its answer. */
function ask(op, json) {
  const detail = { op, json };
  window.dispatchEvent(new CustomEvent('horde-studio', { detail }));
  return detail.answer;
}

function story() {
  try {
    return JSON.parse(ask('story')) || { turns: [] };
  } catch {
    return { turns: [] };
  }
}

/** Changes the current story's turns (read afresh, so nothing written meanwhile is lost). */
function changeTurns(f) {
  const turns = story().turns || [];
  f(turns);
  ask('turns', JSON.stringify(turns));
}

/** A stored value of the studios (localStorage, JSON), or `fallback`. */
function stored(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

/** Calls a server function with JSON arguments; resolves to its answer, rejects with its message. */
async function call(endpoint, args) {
  const response = await fetch(`/ui/api/${endpoint}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(args),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(text.replace(/^[A-Za-z]+\|/, '') || `The horde answered ${response.status}.`);
  return JSON.parse(text);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An element with attributes (`on…` ones are listeners) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

/** A blob (a fetched image or a chosen file) as a `data:` URL. */
function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error('The picture could not be read.'));
    reader.readAsDataURL(blob);
  });
}

/** A chosen picture, made smaller (at most 1024 px, WebP) when it is large, for the browser's storage. */
async function fitted(file) {
  if (file.size <= 1_000_000) return dataUrl(file);
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 1024 / Math.max(bitmap.width, bitmap.height));
  const canvas = Object.assign(document.createElement('canvas'), {
    width: Math.round(bitmap.width * scale), height: Math.round(bitmap.height * scale),
  });
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL('image/webp', 0.9);
}

/** The end of the story's text (its pictures left out), as an image prompt: about 300 characters from a sentence's start. */
export function scenePrompt(s) {
  const text = (s.turns || []).filter((t) => !t.image).map((t) => t.text).join(' ')
    .replaceAll('{{user}}', s.user_name || 'User').replaceAll('{{char}}', s.bot_name || 'Bot')
    .replace(/\s+/g, ' ').trim();
  if (text.length <= 300) return text;
  const tail = text.slice(-300);
  const sentence = tail.search(/[.!?]\s+\S/);
  if (sentence >= 0 && sentence < 200) return tail.slice(sentence + 1).trim();
  const word = tail.indexOf(' ');
  return (word >= 0 ? tail.slice(word + 1) : tail).trim();
}

/** Where a request stands, in words. */
function progressText(p) {
  if (p.processing > 0) return 'Painting…';
  return `Queue position ${p.queue_position} · about ${p.wait_time} s`;
}

/** The image request, with the image studio's model, size, steps and sampler when it has them. */
function imageRequest(prompt) {
  const s = stored('horde.images', {});
  const negative = (s.negative || '').trim();
  return {
    prompt: negative ? `${prompt} ### ${negative}` : prompt,
    params: {
      width: s.width || 512, height: s.height || 512, steps: s.steps || 30, n: 1,
      sampler_name: s.sampler || 'k_euler_a', cfg_scale: s.cfg_scale || 7.5,
    },
    models: s.model ? [s.model] : undefined,
    nsfw: !!s.nsfw, censor_nsfw: s.censor_nsfw ?? true, r2: true,
  };
}

/** The illustration of the scene: prompt, make, follow, insert at the story's end. */
function illustration(box) {
  const prompt = el('textarea', { name: 'scene_prompt', rows: '4', 'aria-label': 'Picture prompt' });
  const status = el('p', { class: 'muted picture-status', role: 'status', hidden: '' });
  const say = (text) => { status.hidden = !text; status.textContent = text || ''; };
  let running = null;
  const make = el('button', { type: 'button', class: 'primary', name: 'make_picture' }, 'Make the picture');
  const cancel = el('button', { type: 'button', class: 'danger', hidden: '' }, 'Cancel');
  const refill = el('button', { type: 'button', class: 'ghost small', onclick: () => { prompt.value = scenePrompt(story()); } }, 'From the story');
  const busy = (on) => { make.hidden = on; cancel.hidden = !on; };
  make.addEventListener('click', async () => {
    const text = prompt.value.trim();
    if (!text) { say('Describe the picture first (or write some story to start from).'); return; }
    busy(true);
    say('Sending…');
    const mine = running = { id: '' };
    try {
      const sub = await call('submit_image', { api_key: stored('horde.api_key', ''), request: imageRequest(text) });
      mine.id = sub.id;
      if (!sub.possible) say('No image worker online can make it now; it waits up to 20 minutes for one.');
      let p;
      for (;;) {
        await sleep(1000);
        if (running !== mine) return;
        p = await call('image_progress', { id: sub.id });
        if (p.done || p.faulted) break;
        say(progressText(p));
      }
      if (!p.images.length) throw new Error('No worker could make this picture.');
      const response = await fetch(p.images[0].url);
      if (!response.ok) throw new Error('The picture could not be fetched; it may have expired.');
      const picture = await dataUrl(await response.blob());
      changeTurns((turns) => turns.push({ role: 'writer', text, image: picture }));
      say('Added to the end of the story.');
      list(box.querySelector('.story-pictures'));
    } catch (e) {
      if (running === mine) say(e.message);
    } finally {
      if (running === mine) { running = null; busy(false); }
    }
  });
  cancel.addEventListener('click', async () => {
    const mine = running;
    running = null;
    busy(false);
    say('Cancelled.');
    if (mine && mine.id) await call('cancel_image', { id: mine.id }).catch(() => {});
  });
  prompt.value = scenePrompt(story());
  return [
    el('label', { class: 'field' }, el('span', {}, 'An illustration of the scene (edit the prompt first; the image studio\'s model and size are used)'), prompt),
    el('div', { class: 'row' }, make, cancel, refill),
    status,
  ];
}

/** Captions picture `i` (its `data:` URL `image`) and writes the caption into the story after it. */
async function caption(i, image, say) {
  say('Sending…');
  const sub = await call('submit_alchemy', { api_key: stored('horde.api_key', ''), source_image: image, form: 'caption' });
  say(sub.possible ? 'Waiting for an alchemist…' : 'No alchemist online can caption it now; it waits up to 20 minutes for one.');
  let p;
  for (;;) {
    await sleep(1000);
    p = await call('alchemy_progress', { id: sub.id });
    if (p.done) break;
    if (p.state === 'processing') say('An alchemist is looking at it…');
  }
  if (p.form_state !== 'done') throw new Error('No alchemist could caption this picture.');
  let placed = false;
  changeTurns((turns) => {
    // The picture may have moved meanwhile: find it again.
    const at = turns[i] && turns[i].image === image ? i : turns.findIndex((t) => t.image === image);
    if (at < 0) return;
    const prose = (story().mode || 'story') === 'story';
    turns.splice(at + 1, 0, { role: 'writer', text: prose ? `\n[Image: ${p.caption}]\n` : `[Image: ${p.caption}]` });
    placed = true;
  });
  say(placed ? `Caption added after the picture: “${p.caption}”` : 'The picture is no longer in the story.');
}

/** The story's pictures, each with a caption button. */
function list(box) {
  const turns = story().turns || [];
  const pictures = turns.map((t, i) => [t, i]).filter(([t]) => t.image);
  box.replaceChildren(...pictures.map(([t, i]) => {
    const note = el('span', {}, t.text || 'A picture');
    const button = el('button', { type: 'button', class: 'ghost small', name: 'caption_picture' }, 'Caption');
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await caption(i, t.image, (text) => { note.textContent = text; });
      } catch (e) {
        note.textContent = e.message;
      }
      button.disabled = false;
    });
    return el('div', { class: 'story-picture' }, el('img', { src: t.image, alt: t.text || '' }), note, button);
  }));
  if (!pictures.length) box.append(el('p', { class: 'muted' }, 'No pictures in this story yet.'));
}

/** A picture from a file, at the story's end. */
function fromFile(box) {
  const input = el('input', {
    type: 'file', name: 'story_picture', accept: 'image/png,image/jpeg,image/webp',
    onchange: async (ev) => {
      const chosen = ev.target.files[0];
      if (!chosen) return;
      try {
        const picture = await fitted(chosen);
        changeTurns((turns) => turns.push({ role: 'writer', text: chosen.name.replace(/\.[^.]+$/, ''), image: picture }));
        list(box.querySelector('.story-pictures'));
      } catch (e) {
        box.querySelector('.picture-status').textContent = e.message;
      }
      ev.target.value = '';
    },
  });
  return el('label', { class: 'field' }, el('span', {}, 'Add a picture from a file'), input);
}

/** Draws the panel (once), and lists the story's pictures again on each opening. */
export function open() {
  for (const box of document.querySelectorAll('.pictures')) {
    if (!box.dataset.filled) {
      box.dataset.filled = 'true';
      box.append(
        ...illustration(box),
        fromFile(box),
        el('h4', {}, 'Pictures in this story'),
        el('div', { class: 'story-pictures' }),
        el('p', { class: 'muted' }, 'Pictures are kept with the story in this browser\'s storage (the horde\'s copy expires after 20 minutes). Captions go into the story as text the model reads.'),
      );
    } else {
      const prompt = box.querySelector('textarea[name=scene_prompt]');
      if (!prompt.value.trim()) prompt.value = scenePrompt(story());
    }
    list(box.querySelector('.story-pictures'));
  }
}
