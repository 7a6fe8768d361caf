// The writing studio's files: import (Lite and KoboldAI saves, KoboldAI United `.kaistory`
// files, character cards in PNG, WEBP or JSON, lorebooks, text, studio stories), export (the
// studio's JSON, a Lite save), world-info files, and the quick starts (a built-in scenario per
// mode, or a character card). Loaded by the
// page when a `details[data-lazy]` panel is first opened, so none of it is in the studio's first
// load. The importers run on the server (server functions under /ui/api/); the studio's state
// is reached through the `horde-studio` window event (see app/src/pages/write/files.rs).

// Its styles come with it (they are not in the page's first load).
document.head.append(Object.assign(document.createElement('style'), { textContent: `.files { display: flex; flex-direction: column; gap: 0.5rem; margin-top: 0.5rem; } .files > button { align-self: flex-start; } .scenarios { flex-wrap: wrap; } .scenarios > * { flex: 0 0 auto; }` }));

/** Asks the studio (synchronously) and returns its answer. */
function ask(op, json) {
  const detail = { op, json };
  window.dispatchEvent(new CustomEvent('horde-studio', { detail }));
  return detail.answer;
}

/** Calls a server function with JSON arguments; resolves to its answer, rejects with its message. */
async function call(endpoint, args) {
  const response = await fetch(`/ui/api/${endpoint}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(args),
  });
  const text = await response.text();
  if (!response.ok) {
    // Server functions answer errors as "ServerError|the message".
    throw new Error(text.replace(/^[A-Za-z]+\|/, '') || `The horde answered ${response.status}.`);
  }
  return JSON.parse(text);
}

/** Offers `json` as a file named `name`. */
function download(name, json) {
  const url = URL.createObjectURL(new Blob([json], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The chosen file as base64 (without the data URL's prefix). */
function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split('base64,')[1] || '');
    reader.onerror = () => reject(new Error('The file could not be read.'));
    reader.readAsDataURL(file);
  });
}

/** A card's picture as a small square avatar (a `data:` URL), or '' when it is no picture. */
async function avatarOf(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const side = Math.min(bitmap.width, bitmap.height);
    const canvas = Object.assign(document.createElement('canvas'), { width: 96, height: 96 });
    // A square from the top of a portrait, where the face usually is.
    canvas.getContext('2d').drawImage(bitmap, (bitmap.width - side) / 2, 0, side, side, 0, 0, 96, 96);
    return canvas.toDataURL('image/webp', 0.85);
  } catch {
    return '';
  }
}

/** An importer's answer (JSON text) with the card's picture as each chat's bot avatar. */
async function withAvatar(json, file) {
  const imported = JSON.parse(json);
  if (!imported.stories || !imported.stories.length) return json;
  const avatar = await avatarOf(file);
  if (avatar) {
    for (const story of imported.stories) story.bot_avatar = avatar;
    imported.imported.push("the card's image (the bot's avatar)");
  } else {
    imported.not_imported.push("the card's image (not readable as a picture)");
  }
  return JSON.stringify(imported);
}

/** An element with attributes and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function field(label, input) {
  return el('label', { class: 'field' }, el('span', {}, label), input);
}

function title() {
  try {
    return JSON.parse(ask('story')).title || 'Untitled';
  } catch {
    return 'Untitled';
  }
}

/** An importer's answer (JSON text) whose settings, if any, keep this studio's theme and text size (a save's settings are its samplers). */
function keepLooks(json) {
  const imported = JSON.parse(json);
  if (!imported.settings) return json;
  const { theme, font_size: size } = JSON.parse(ask('settings'));
  imported.settings = { ...imported.settings, theme, font_size: size };
  return JSON.stringify(imported);
}

/** A report line (a `role=status` paragraph, hidden until it says something) and its `say`. */
function reporter(className) {
  const report = el('p', { class: `muted ${className}`, role: 'status', hidden: '' });
  return [report, (text) => { report.hidden = false; report.textContent = text; }];
}

/**
 * Imports a file through the server's importers and opens it (the current story stays in the
 * stories list); `say` hears what was imported and what was not. `picture`: the chosen file
 * when it is an image (a character card), for the bot's avatar.
 */
async function importing(say, name, data, base64, picture) {
  say('Importing…');
  try {
    const answer = keepLooks(await call('import_file', { name, data, base64 }));
    say(ask('import', picture ? await withAvatar(answer, picture) : answer));
  } catch (e) {
    say(e.message);
  }
}

/** A file input (named `name`, taking `accept`) that imports what is chosen. */
function importInput(name, accept, say) {
  return el('input', {
    type: 'file', name, accept,
    onchange: async (ev) => {
      const chosen = ev.target.files[0];
      if (!chosen) return;
      try {
        await importing(say, chosen.name, await readBase64(chosen), true, chosen.type.startsWith('image/') ? chosen : null);
      } catch (e) {
        say(e.message);
      }
      ev.target.value = '';
    },
  });
}

const STORY_FILES = '.json,.png,.webp,.txt,.kaistory,application/json,image/png,image/webp,text/plain';
const CARD_FILES = '.png,.webp,.json,image/png,image/webp,application/json';

/** Import and export of whole stories. */
function storyFiles(box) {
  const [report, say] = reporter('import-report');
  const file = importInput('import_file', STORY_FILES, say);
  const paste = el('textarea', { name: 'import', rows: '3' });
  box.append(
    el('button', { class: 'ghost', name: 'export_json', onclick: () => download(`${title()}.json`, ask('story')) }, 'Export JSON'),
    el('button', {
      class: 'ghost', name: 'export_lite',
      onclick: async () => {
        try {
          const save = await call('export_lite', { story: JSON.parse(ask('story')), settings: JSON.parse(ask('settings')) });
          download(`${title()} (Lite).json`, save);
        } catch (e) {
          say(e.message);
        }
      },
    }, 'Export for KoboldAI Lite'),
    field('Import a file: a Lite or KoboldAI save (.json, .kaistory), a character card (PNG, WEBP or JSON), a lorebook, a text file or a story (this one stays in the stories list)', file),
    field("Or paste a story's JSON", paste),
    el('button', { class: 'ghost', onclick: () => importing(say, 'pasted.json', paste.value, false) }, 'Import'),
    report,
  );
}

/** Export of the current story's world info, and import of lorebooks into it. */
function worldInfoFiles(box) {
  const [report, say] = reporter('wi-report');
  const file = el('input', {
    type: 'file', name: 'import_world_info', accept: 'application/json,.json',
    onchange: async (ev) => {
      const chosen = ev.target.files[0];
      if (!chosen) return;
      try {
        say(ask('world_info', await call('import_world_info', { data: await readBase64(chosen), base64: true })));
      } catch (e) {
        say(e.message);
      }
      ev.target.value = '';
    },
  });
  box.append(
    el('button', {
      class: 'ghost small', name: 'export_world_info',
      onclick: () => download('world-info.json', JSON.stringify(JSON.parse(ask('story')).world_info || [])),
    }, 'Export world info'),
    field("Import world info: Lite, SillyTavern, Agnai or a card's (adds its entries)", file),
    report,
  );
}

/** The built-in quick starts, one per mode: what the story starts with. */
export const SCENARIOS = [
  {
    title: 'The lighthouse keeper', mode: 'story',
    memory: 'A quiet literary story about Elin, the last keeper of a lighthouse on a northern island.',
    turns: [{ role: 'writer', text: 'The storm had been building since noon. By the time Elin climbed the hundred and twelve steps to the lamp room, the sea below was a field of white, and a light she did not know was blinking on the horizon.' }],
  },
  {
    title: 'The sunken temple', mode: 'adventure',
    memory: 'A text adventure. The player explores a half-flooded jungle temple looking for the Jade Idol. Describe what the player sees and what happens, in the second person.',
    turns: [{ role: 'model', text: 'You stand at the mouth of the temple. Vines hang over the carved doorway, and cold water laps at your boots. Somewhere inside, something heavy shifts in the dark. Your torch has perhaps an hour of oil left.' }],
  },
  {
    title: 'Captain Mara', mode: 'chat', bot_name: 'Mara', user_name: 'You',
    memory: "{{char}} is the sharp-tongued, warm-hearted captain of the airship Kestrel. {{user}} has just signed on as the ship's new navigator.",
    turns: [{ role: 'model', text: "*Mara looks up from the charts.* So you're the new navigator. Can you read the winds, or do I need to find someone who can?" }],
  },
  {
    title: 'Writing helper', mode: 'instruct', template: 'ChatMl',
    system_prompt: 'You are a helpful writing assistant. You help the user plan, draft and revise stories, and you answer briefly unless asked for more.',
    turns: [{ role: 'model', text: 'Hello! What are you writing? Tell me about your story, or ask me for ideas, a first paragraph, or a critique.' }],
  },
];

/** The quick starts: a built-in scenario per mode, or a character card (a chat with its first message). */
function quickStart(box) {
  const [report, say] = reporter('start-report');
  const buttons = SCENARIOS.map((s) => el('button', {
    class: 'ghost small', name: 'scenario', 'data-scenario': s.mode,
    onclick: () => {
      ask('import', JSON.stringify({ stories: [s], imported: [], not_imported: [] }));
      say(`Started “${s.title}” (${s.mode}). Your previous story is in the stories list.`);
    },
  }, `${s.title} (${s.mode})`));
  box.append(
    el('div', { class: 'row scenarios' }, ...buttons),
    field('Or start a chat from a character card (PNG, WEBP or JSON)', importInput('start_card', CARD_FILES, say)),
    report,
  );
}

const PANELS = { story: storyFiles, world_info: worldInfoFiles, start: quickStart };

/** Fills in the file controls of every panel on the page (once). */
export function open() {
  for (const box of document.querySelectorAll('[data-files]:not([data-filled])')) {
    const fill = PANELS[box.dataset.files];
    if (!fill) continue;
    box.dataset.filled = 'true';
    // The panel itself is in the page; what it holds is drawn here.
    const area = el('div', { class: 'files' });
    box.append(area);
    fill(area);
  }
}
