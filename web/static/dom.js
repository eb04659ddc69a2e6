// dom.js -- building elements and formatting figures. No innerHTML anywhere: every text goes in
// as a text node, so a job's content or an error message can never become markup. Nothing sets
// a style attribute (the CSP forbids them); sizes that vary go through element.style.

// h('tr', {class: 'x', onclick: fn}, child, 'text', [more]) -> the element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

export const dash = '–';

export function num(n) {
  if (n === null || n === undefined) return dash;
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: 2 });
}

// 850 -> "850 ms", 2300 -> "2.3 s", 250000 -> "4.2 min", ...
export function ms(v) {
  if (v === null || v === undefined) return dash;
  const a = Math.abs(v);
  if (a < 1000) return `${Math.round(v)} ms`;
  if (a < 60000) return `${(v / 1000).toFixed(1)} s`;
  if (a < 3600000) return `${(v / 60000).toFixed(1)} min`;
  if (a < 86400000) return `${(v / 3600000).toFixed(1)} h`;
  return `${(v / 86400000).toFixed(1)} d`;
}

// 0.1234 -> "12.3 %"
export function pct(r) {
  if (r === null || r === undefined) return dash;
  return `${(r * 100).toFixed(1)} %`;
}

export function usd(v) {
  if (v === null || v === undefined) return dash;
  return `$${Number(v).toFixed(v < 1 ? 4 : 2)}`;
}

// An absolute time in ms -> "14:02:07" (today) or "2026-12-06 14:02".
export function when(atMs) {
  if (!atMs) return dash;
  const d = new Date(atMs);
  const pad = (x) => String(x).padStart(2, '0');
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (new Date().toDateString() === d.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}

// A badge: a word in a coloured pill; kind picks the colour (ok, warn, bad, info).
export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}

// A table with a header row; rows are arrays of cells (strings or nodes) or <tr> elements.
export function table(label, heads, rows, empty) {
  const body = h('tbody', null);
  for (const r of rows) body.append(r instanceof Node ? r : h('tr', null, r.map((c) => h('td', null, c))));
  if (!rows.length) body.append(h('tr', null, h('td', { colspan: heads.length, class: 'muted' }, empty || 'none')));
  return h('div', { class: 'scroll' },
    h('table', { 'aria-label': label },
      h('thead', null, h('tr', null, heads.map((x) => h('th', { scope: 'col' }, x)))), body));
}

// A dead-letter entry (or any object) as indented JSON; a "job" field that holds JSON text is
// shown parsed, so the job reads as an object rather than one escaped line.
export function pretty(entry) {
  let e = entry;
  if (e && typeof e.job === 'string') {
    try {
      e = { ...e, job: JSON.parse(e.job) };
    } catch (_) { /* not JSON: shown as stored */ }
  }
  return JSON.stringify(e, null, 2);
}
