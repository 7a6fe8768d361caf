// The writing studio's choices: the models a request may go to (several at once), the
// generation settings (presets, every sampler, stop sequences) and the studio's theme and text
// size (applied to `<html data-theme data-text-size>` when changed; each page's head applies the
// stored ones at load). Loaded by the page when a `details[data-lazy=studio-choices]` panel is first opened, so
// none of it is in the studio's first load; `open(panel)` runs on every opening and draws that
// panel from the horde's offer and the stored settings. The studio's state is reached through the
// `horde-studio` window event (see app/src/pages/write/files.rs): `settings` reads them,
// `set_settings` writes them (the studio clamps them), `presets` names the presets and `preset`
// applies one.

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

/** Sets some of the settings (the studio keeps them within their ranges). */
function change(patch) {
  ask('set_settings', JSON.stringify({ ...settings(), ...patch }));
  applyLooks();
}

/** The stored theme and text size on the document, where the style sheet reads them (as every page's head does at load). */
function applyLooks() {
  const s = settings();
  document.documentElement.dataset.theme = s.theme || '';
  document.documentElement.dataset.textSize = s.font_size || 0;
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
          change({ models: [...ticked].join('\n') });
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

/** A select of `options` ([value, label]) showing `value`; the setting `name` becomes `op(chosen)`. */
function picker(label, name, options, value, op) {
  const select = el('select', { name, onchange: () => change({ [name]: op(select.value) }) },
    ...options.map(([v, text]) => el('option', { value: String(v) }, text)));
  select.value = String(value);
  return el('label', { class: 'field' }, el('span', {}, label), select);
}

function looks(box) {
  const s = settings();
  box.replaceChildren(
    picker('Theme', 'theme', THEMES, s.theme || '', String),
    picker('Text size', 'font_size', SIZES, s.font_size || 0, Number),
  );
}

// [label, name, step]: a step of 1 is a whole number.
const NUMBERS = [
  ['Max length', 'max_length', 1], ['Context size', 'max_context_length', 1], ['Temperature', 'temperature', 0.05],
  ['Top p', 'top_p', 0.01], ['Top k', 'top_k', 1], ['Min p', 'min_p', 0.01], ['Repetition penalty', 'rep_pen', 0.01],
  ['Repetition range', 'rep_pen_range', 1], ['Repetition slope', 'rep_pen_slope', 0.05], ['Top a', 'top_a', 0.01],
  ['Typical', 'typical', 0.01], ['Tail-free', 'tfs', 0.01], ['DynaTemp range', 'dynatemp_range', 0.05],
  ['DynaTemp exponent', 'dynatemp_exponent', 0.05], ['Smoothing', 'smoothing_factor', 0.05], ['Seed (-1: random)', 'seed', 1],
];

/** The generation settings; every control shows the stored value again after each change. */
function generation(box) {
  const inputs = [];
  // The field being typed in keeps what is typed (its change shows the stored value after).
  const show = () => {
    const s = settings();
    for (const [input, name] of inputs) {
      if (input === document.activeElement) continue;
      if (input.type === 'checkbox') input.checked = !!s[name];
      else input.value = String(s[name] ?? '');
    }
  };
  const input = (name, attrs, read) => {
    const node = el(attrs.rows ? 'textarea' : 'input', { name, ...attrs });
    node.addEventListener(attrs.rows ? 'input' : 'change', () => {
      const v = read(node);
      if (v !== undefined) change({ [name]: v });
      if (!attrs.rows) show();
    });
    inputs.push([node, name]);
    return node;
  };
  const labelled = (text, node) => el('label', { class: 'field' }, el('span', {}, text), node);
  const presets = (ask('presets') || '').split('\n').filter(Boolean)
    .map((name) => el('button', { class: 'ghost small', onclick: () => { ask('preset', name); show(); } }, name));
  box.replaceChildren(
    el('div', { class: 'presets' }, ...presets),
    el('div', { class: 'grid' }, ...NUMBERS.map(([label, name, step]) => labelled(label, input(name, { type: 'number', step: String(step) }, (n) => {
      const v = parseFloat(n.value);
      if (Number.isNaN(v)) return undefined;
      return step === 1 ? Math.round(v) : v;
    })))),
    labelled('Sampler order (0 top-k, 1 top-a, 2 top-p, 3 tail-free, 4 typical, 5 temperature, 6 repetition)', input('sampler_order', {}, (n) => n.value)),
    el('label', { class: 'check' }, input('ban_eos', { type: 'checkbox' }, (n) => n.checked), 'Ban the end-of-sequence token (write to the full length)'),
    labelled('Stop sequences (one per line, \\n for a newline)', input('stop_sequences', { rows: '2' }, (n) => n.value)),
  );
  show();
  box.again = show;
}

const PANELS = { models, looks, settings: generation };
const AREAS = { models: 'model-list', looks: 'grid' };

/**
 * Draws the panel just opened (`opened`, its `details`; every panel of this module when not
 * given). The model list and the looks are drawn again at each opening; the settings' fields
 * are drawn once and show the stored values again (`box.again`), so an opening handled late
 * does not replace a field that is being typed in.
 */
export function open(opened) {
  const panels = opened && opened.dataset && opened.dataset.choices ? [opened] : document.querySelectorAll('[data-choices]');
  for (const panel of panels) {
    const draw = PANELS[panel.dataset.choices];
    if (!draw) continue;
    // The panel itself is in the page; what it holds is drawn into a box made here once.
    const box = panel.querySelector(':scope > .drawn')
      || panel.appendChild(el('div', { class: `drawn ${AREAS[panel.dataset.choices] || ''}` }));
    if (box.again) box.again();
    else draw(box);
  }
}
