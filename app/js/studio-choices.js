// The writing studio's rarer choices: the models a request may go to (several at once) and the
// studio's theme and text size. Loaded by the page when a `details[data-lazy=studio-choices]`
// panel is first opened, so none of it is in the studio's first load; `open()` runs on every
// opening and redraws from the horde's offer and the stored settings. The studio's state is
// reached through the `horde-studio` window event (see app/src/pages/write/files.rs): `settings`
// reads them, `models` (one name a line), `theme` and `font_size` change them.

document.head.append(Object.assign(document.createElement('style'), {
  textContent: '.model-list { display: grid; gap: 0.25rem; margin-top: 0.4rem; max-height: 16rem; overflow-y: auto; overflow-wrap: anywhere; }',
}));

/** Asks the studio (synchronously) and returns its answer. */
function ask(op, json) {
  const detail = { op, json };
  window.dispatchEvent(new CustomEvent('horde-studio', { detail }));
  return detail.answer;
}

function settings() {
  try {
    return JSON.parse(ask('settings')) || {};
  } catch {
    return {};
  }
}

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

/** The text models on offer, labelled by the horde with their workers, queue and wait. */
async function offer() {
  try {
    const response = await fetch('/ui/api/text_choices', {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: '{}',
    });
    return response.ok ? (await response.json()).models || [] : [];
  } catch {
    return [];
  }
}

/** A checkbox per model on offer; a chosen model that went offline stays listed to be unticked. */
async function models(box) {
  const chosen = (settings().models || '').split('\n').filter(Boolean);
  const list = await offer();
  for (const name of chosen) {
    if (!list.some((c) => c.value === name)) list.push({ value: name, label: `${name} · offline` });
  }
  const ticked = new Set(chosen);
  box.replaceChildren(
    ...list.map((c) => {
      const input = el('input', {
        type: 'checkbox', name: 'model', value: c.value,
        onchange: () => {
          if (input.checked) ticked.add(c.value);
          else ticked.delete(c.value);
          ask('models', [...ticked].join('\n'));
        },
      });
      input.checked = ticked.has(c.value);
      return el('label', { class: 'check' }, input, c.label);
    }),
    el('p', { class: 'muted' }, list.length ? 'None ticked: any model.' : 'No text model is online.'),
  );
}

const THEMES = [['', 'As the device'], ['light', 'Light'], ['dark', 'Dark'], ['classic', 'Classic (Lite)']];
const SIZES = [[0, 'Default'], [14, '14 px'], [18, '18 px'], [20, '20 px'], [24, '24 px']];

/** A select of `options` ([value, label]) showing `value`, telling the studio `op` on change. */
function picker(label, name, options, value, op) {
  const select = el('select', { name, onchange: () => ask(op, select.value) },
    ...options.map(([v, text]) => el('option', { value: String(v) }, text)));
  select.value = String(value);
  return el('label', { class: 'field' }, el('span', {}, label), select);
}

function looks(box) {
  const s = settings();
  box.replaceChildren(
    picker('Theme', 'theme', THEMES, s.theme || '', 'theme'),
    picker('Text size', 'font_size', SIZES, s.font_size || 0, 'font_size'),
  );
}

const PANELS = { models, looks };

/** Draws every panel of this module on the page (again on each opening). */
export function open() {
  for (const box of document.querySelectorAll('[data-choices]')) {
    const draw = PANELS[box.dataset.choices];
    if (draw) draw(box);
  }
}
