// dead.js -- the dead letters (#dead, #dead/<n or id>): GET /api/dead a page of 50 at a time,
// newest first; one entry as stored; and for admins: retry one, retry every entry whose error
// or reason holds a text, purge them all. A retried job's link opens its job view, where its
// new result appears.

import { api } from './api.js';
import { h, fill, num, ms, table, dash, pretty } from './dom.js';

const PAGE = 50;

export function mount(root, ctx, sel) {
  let offset = 0;
  let stopped = false;
  const list = h('div', { class: 'dead-list' });
  const detail = h('div', { class: 'dead-detail' });
  const notice = h('div', { class: 'notice', role: 'status' });
  const reason = h('input', { id: 'dead-reason', type: 'text', placeholder: 'e.g. TOO_MANY_DELIVERIES (empty: all)', autocomplete: 'off' });
  root.append(h('h1', null, 'Dead letters'), notice);
  if (ctx.canAct) {
    root.append(h('div', { class: 'toolbar' },
      h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); retryAll(); } },
        h('label', { for: 'dead-reason' }, 'Error or reason holds'), reason,
        h('button', { type: 'submit' }, 'Retry matching')),
      h('button', { type: 'button', class: 'danger', onclick: purge }, 'Purge all')));
  }
  root.append(detail, list);

  async function load() {
    let page;
    try {
      page = await api('GET', `/api/dead?offset=${offset}&limit=${PAGE}`);
    } catch (e) {
      if (!stopped) fill(list, h('p', { class: 'error' }, `Could not read the dead letters: ${e.message}`));
      return;
    }
    if (stopped) return;
    if (page.total > 0 && offset >= page.total) {
      offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
      load();
      return;
    }
    const heads = ['#', 'Job', 'Error', 'Reason', 'Worker', 'Age', ''];
    const rows = page.entries.map((e) => {
      const key = e.id || String(e.n);
      return h('tr', null,
        h('td', null, num(e.n)),
        h('td', null, e.id ? h('a', { href: `#job/${encodeURIComponent(e.id)}` }, e.id) : dash),
        h('td', { class: 'error-text' }, e.error || dash),
        h('td', null, e.reason || dash),
        h('td', null, e.worker || dash),
        h('td', null, e.age_ms === null ? dash : ms(e.age_ms)),
        h('td', { class: 'buttons' },
          h('a', { href: `#dead/${encodeURIComponent(key)}`, 'aria-label': `Show dead letter ${key}` }, 'Show'),
          ctx.canAct ? h('button', { type: 'button', 'aria-label': `Retry ${key}`, onclick: () => retry(key) }, 'Retry') : null));
    });
    const last = Math.min(page.total, offset + page.entries.length);
    fill(list,
      h('p', { class: 'pager' },
        `${page.total ? `${num(offset + 1)}–${num(last)} of ` : ''}${num(page.total)} dead letter${page.total === 1 ? '' : 's'} `,
        h('button', { type: 'button', class: 'quiet', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, 'Newer'),
        h('button', { type: 'button', class: 'quiet', disabled: last >= page.total, onclick: () => { offset += PAGE; load(); } }, 'Older'),
        h('button', { type: 'button', class: 'quiet', onclick: load }, 'Refresh')),
      table('Dead letters', heads, rows, 'no dead letters'));
  }

  async function show() {
    if (!sel) return;
    try {
      const e = await api('GET', `/api/dead/${encodeURIComponent(sel)}`);
      if (stopped) return;
      fill(detail, h('section', { class: 'card', 'aria-label': `Dead letter ${sel}` },
        h('h2', null, `Dead letter ${sel}`),
        e.id ? h('p', null, h('a', { href: `#job/${encodeURIComponent(e.id)}` }, `Open job ${e.id}`)) : null,
        ctx.canAct ? h('button', { type: 'button', 'aria-label': `Retry ${sel}`, onclick: () => retry(sel) }, 'Retry') : null,
        h('pre', null, pretty(e))));
    } catch (e) {
      if (!stopped) fill(detail, h('p', { class: e.status === 404 ? 'muted' : 'error' }, `Dead letter ${sel}: ${e.message}`));
    }
  }

  async function retry(key) {
    try {
      const r = await api('POST', `/api/dead/${encodeURIComponent(key)}/retry`);
      fill(notice, `Job ${r.id} pushed back to ${r.queue}: `, h('a', { href: `#job/${encodeURIComponent(r.id)}` }, `Open job ${r.id}`));
      if (key === sel) fill(detail);
    } catch (e) {
      fill(notice, h('span', { class: 'error' }, `Retry ${key}: ${e.message}`));
    }
    load();
  }

  async function retryAll() {
    const text = reason.value.trim();
    if (!confirm(text ? `Retry every dead letter whose error or reason holds "${text}"?` : 'Retry every dead letter?')) return;
    try {
      const r = await api('POST', '/api/dead/retry', { reason: text });
      fill(notice, `${num(r.retried)} retried, ${num(r.left)} left.`);
    } catch (e) {
      fill(notice, h('span', { class: 'error' }, `Retry matching: ${e.message}`));
    }
    load();
  }

  async function purge() {
    if (!confirm('Delete every dead letter? This cannot be undone.')) return;
    try {
      const r = await api('POST', '/api/dead/purge');
      fill(notice, `${num(r.purged)} dead letters purged.`);
      fill(detail);
    } catch (e) {
      fill(notice, h('span', { class: 'error' }, `Purge: ${e.message}`));
    }
    load();
  }

  show();
  load();
  return () => { stopped = true; };
}
