// Markdown in the writing studio's chat and instruct turns, loaded by the page only when one of
// those modes is shown. Safe by construction: the rendering is built with createElement and
// textContent, never from HTML, so a generation's `<script>` or `<img onerror>` stays text;
// links only for http(s) addresses (opened without the page as opener), and images are never
// fetched: `![alt](url)` shows as a link labelled with its alt text.
//
// The transcript is the page's (Leptos renders each turn's text into `.turn > .text`); this
// module adds a rendered copy after each text (`.md`), hides the raw one with the class
// `markdown` on the transcript, and follows every change to the transcript. In chat it also
// gives each name an avatar (`avatars`).

// Its styles come with it (they are not in the page's first load).
document.head.append(Object.assign(document.createElement('style'), { textContent: `.transcript.markdown .turn > .text { display: none; } .md-view { overflow-wrap: anywhere; } .md-view .md > :first-child { margin-top: 0; } .md-view .md > :last-child { margin-bottom: 0; } .md-view p, .md-view ul, .md-view ol, .md-view pre, .md-view blockquote { margin: 0.4rem 0; } .md-view pre { overflow-x: auto; padding: 0.5rem; border-radius: 0.5rem; background: #8882; } .md-view code { font-size: 0.9em; background: #8882; border-radius: 0.25rem; padding: 0 0.2rem; } .md-view pre code { background: none; padding: 0; } .md-view blockquote { border-left: 3px solid var(--line); padding-left: 0.6rem; color: var(--muted); } .md-view h3, .md-view h4, .md-view h5, .md-view h6 { margin: 0.5rem 0 0.25rem; font-size: 1rem; } .md-view .thinking { font-size: 0.85rem; color: var(--muted); } .md-view .thinking summary { cursor: pointer; } [data-initial] { display: flex; align-items: center; gap: 0.4rem; margin-bottom: 0.2rem; } [data-initial]::before { content: attr(data-initial); flex: none; display: grid; place-items: center; width: 2rem; height: 2rem; border-radius: 50%; background: var(--avatar, var(--accent)) center / cover; color: var(--accent-text); }` }));

const SAFE_URL = /^https?:\/\//i;

/** Inline Markdown of `text` appended to `parent`: code, bold, italic, strike, links. */
function inline(parent, text) {
  // Code first (nothing inside it is Markdown), then links and images, then emphasis.
  const pattern = /(`+)([^`]+?)\1|!?\[([^\]]*)\]\(([^)\s]*)\)|(\*\*|__)(.+?)\5|(\*|_)(?![\s*_])(.+?)\7|~~(.+?)~~/g;
  let at = 0;
  for (let m; (m = pattern.exec(text)); ) {
    if (m.index > at) parent.append(text.slice(at, m.index));
    at = pattern.lastIndex;
    if (m[1]) {
      parent.append(el('code', m[2]));
    } else if (m[4] !== undefined) {
      const label = m[3] || m[4];
      if (SAFE_URL.test(m[4])) {
        const a = el('a', label);
        a.href = m[4];
        a.rel = 'noopener noreferrer nofollow';
        a.target = '_blank';
        parent.append(a);
      } else {
        parent.append(label);
      }
    } else if (m[5]) {
      inline(parent.appendChild(document.createElement('strong')), m[6]);
    } else if (m[7]) {
      inline(parent.appendChild(document.createElement('em')), m[8]);
    } else {
      inline(parent.appendChild(document.createElement('del')), m[9]);
    }
  }
  if (at < text.length) parent.append(text.slice(at));
}

function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Blocks: fenced code, headings, quotes, lists, rules and paragraphs (line breaks kept). */
export function render(text) {
  const out = el('div');
  out.className = 'md';
  const lines = text.split('\n');
  let para = null;
  let list = null;
  const close = () => { para = null; list = null; };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if ((m = /^\s*(```|~~~)/.exec(line))) {
      close();
      const body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(m[1]); i++) body.push(lines[i]);
      out.appendChild(el('pre')).append(el('code', body.join('\n')));
    } else if (!line.trim()) {
      close();
    } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      close();
      inline(out.appendChild(el(`h${Math.min(m[1].length + 2, 6)}`)), m[2]);
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      close();
      out.append(el('hr'));
    } else if ((m = /^\s*>\s?(.*)$/.exec(line))) {
      close();
      inline(out.appendChild(el('blockquote')), m[1]);
    } else if ((m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(line))) {
      const tag = /\d/.test(m[1]) ? 'ol' : 'ul';
      if (!list || list.tagName.toLowerCase() !== tag) {
        para = null;
        list = out.appendChild(el(tag));
      }
      inline(list.appendChild(el('li')), m[2]);
    } else {
      list = null;
      if (para) para.append(el('br'));
      else para = out.appendChild(el('p'));
      inline(para, line);
    }
  }
  return out;
}

/** Thinking (`<think>…</think>`) shown folded: a closed details before the rest. */
function withThinking(text, into) {
  const m = /^\s*<think(?:ing)?>([\s\S]*?)(?:<\/think(?:ing)?>|$)/i.exec(text);
  if (!m) return text;
  const fold = el('details');
  fold.className = 'thinking';
  fold.append(el('summary', 'Thinking'), el('div', m[1].trim()));
  into.push(fold);
  return text.slice(m[0].length);
}

/** Renders every chat or instruct turn of the transcript (again when its text changed). */
/** Chat names with an avatar: the bot's picture (the transcript's `data-avatar`, from a
 *  character card) or else the speaker's initial, drawn by the style above. */
function avatars(transcript) {
  const picture = transcript.dataset.avatar;
  for (const speaker of transcript.querySelectorAll('.turn > .speaker')) {
    const bot = picture && speaker.parentElement.matches('.model');
    speaker.dataset.initial = bot ? '' : speaker.textContent.trim().charAt(0);
    if (bot) speaker.style.setProperty('--avatar', `url("${picture}")`);
  }
}

function refresh(transcript) {
  const mode = transcript.closest('[data-mode]')?.dataset.mode;
  if (mode === 'chat') avatars(transcript);
  const on = /^(chat|instruct)$/.test(mode || '');
  transcript.classList.toggle('markdown', on);
  for (const old of transcript.querySelectorAll('.md-view')) {
    const source = old.previousElementSibling;
    if (!on || !source || !source.matches('.text')) old.remove();
  }
  if (!on) return;
  for (const source of transcript.querySelectorAll('.turn > .text')) {
    let view = source.nextElementSibling;
    if (view && view.matches('.md-view') && view.dataset.source === source.textContent) continue;
    if (!view || !view.matches('.md-view')) {
      view = el('div');
      view.className = 'md-view';
      source.after(view);
    }
    const parts = [];
    const rest = withThinking(source.textContent, parts);
    view.replaceChildren(...parts, render(rest));
    view.dataset.source = source.textContent;
  }
}

let started = false;

/** Follows the page's transcript from now on. */
export function start() {
  if (started) return;
  started = true;
  const transcript = document.querySelector('.transcript');
  if (!transcript) return;
  let queued = false;
  const again = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => { queued = false; refresh(transcript); });
  };
  // Our own rendering changes only `.md-view` subtrees and the class; skip those records.
  new MutationObserver((records) => {
    if (records.some((r) => !(r.target instanceof Element && r.target.closest('.md-view')) && r.type !== 'attributes')) again();
  }).observe(transcript, { childList: true, subtree: true, characterData: true });
  new MutationObserver(again).observe(transcript.closest('[data-mode]') || transcript, { attributes: true, attributeFilter: ['data-mode'] });
  refresh(transcript);
}
