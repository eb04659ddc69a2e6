// job.js -- the job view (#job/<id>): GET /api/jobs/<id>, where the job is now (queued, in
// flight on a worker, a dead letter, finished), its attempts as a timeline, source, cost and
// tokens, the answer folded. While the job is queued or in flight it is read again every
// refresh_ms until it finishes; a dead job can be retried from here (admins).

import { api } from './api.js';
import { h, fill, num, ms, usd, badge, dash, pretty } from './dom.js';

const STATE = {
  finished: ['finished', 'ok'],
  queued: ['queued', 'info'],
  in_flight: ['in flight', 'info'],
  dead: ['dead letter', 'bad'],
};

export function mount(root, ctx, id) {
  let timer = null;
  let stopped = false;
  let misses = 0; // a job just pushed back may be between lists: looked for again, 3 times
  const input = h('input', { id: 'job-id', name: 'id', type: 'search', required: true, autocomplete: 'off', spellcheck: 'false', value: id || '' });
  const out = h('div', { class: 'job' });
  root.append(
    h('h1', null, 'Job'),
    h('form', {
      class: 'lookup', role: 'search',
      onsubmit: (ev) => { ev.preventDefault(); ctx.go(`#job/${encodeURIComponent(input.value.trim())}`); },
    }, h('label', { for: 'job-id' }, 'Job id'), input, h('button', { type: 'submit' }, 'Look up')),
    out);
  if (!id) {
    out.append(h('p', { class: 'muted' }, 'Type a job id: its result, where it is now, and its attempts.'));
    input.focus();
    return () => {};
  }

  async function load() {
    clearTimeout(timer);
    let j;
    try {
      j = await api('GET', `/api/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      if (stopped) return;
      fill(out, h('p', { class: e.status === 404 ? 'muted' : 'error' },
        e.status === 404 ? `No job ${id} found: ${e.message}.` : `Could not read job ${id}: ${e.message}`));
      if (e.status === 503 || (e.status === 404 && ++misses <= 3)) timer = setTimeout(load, ctx.refreshMs);
      return;
    }
    if (stopped) return;
    fill(out, render(j, ctx, retry));
    if (j.state === 'queued' || j.state === 'in_flight') timer = setTimeout(load, ctx.refreshMs);
  }

  async function retry() {
    try {
      const r = await api('POST', `/api/dead/${encodeURIComponent(id)}/retry`);
      ctx.flash(`job ${r.id} pushed back to ${r.queue}`, 'ok');
    } catch (e) {
      ctx.flash(`retry ${id}: ${e.message}`, 'bad');
    }
    load();
  }

  load();
  return () => { stopped = true; clearTimeout(timer); };
}

function render(j, ctx, retry) {
  const r = j.result || {};
  const [word, kind] = STATE[j.state] || [j.state, ''];
  const where = j.state === 'queued' ? `in queue ${j.queue}`
    : j.state === 'in_flight' ? `being run by worker ${j.worker}`
      : j.state === 'dead' ? `in the dead letters: ${(j.dead && (j.dead.error || j.dead.reason)) || ''}`
        : `finished ${r.status || ''}`;
  const parts = [
    h('h2', null, `Job ${j.id} `, badge(word, kind)),
    h('p', { class: 'where' }, `Now: ${where}`),
  ];
  if (j.state === 'dead' && ctx.canAct) {
    parts.push(h('p', null, h('button', { type: 'button', 'aria-label': `Retry job ${j.id}`, onclick: retry }, 'Retry')));
  }
  if (j.result) {
    const u = r.usage || {};
    const tokens = r.usage ? [`${num(u.prompt_tokens)} in`, `${num(u.completion_tokens)} out`,
      u.cached_tokens ? `${num(u.cached_tokens)} cached` : null,
      u.reasoning_tokens ? `${num(u.reasoning_tokens)} reasoning` : null].filter(Boolean).join(', ') : dash;
    parts.push(h('dl', { class: 'facts' },
      fact('Status', badge(r.status || dash, r.status === 'ok' ? 'ok' : r.status === 'degraded' ? 'warn' : 'bad')),
      fact('Source', r.source || dash),
      fact('Model', r.model ? `${r.model}${r.provider ? ` (${r.provider})` : ''}` : dash),
      fact('Cost', usd(r.cost_usd)),
      fact('Tokens', tokens),
      fact('Waited', ms(r.queued_ms)),
      fact('Took', ms(r.latency_ms)),
      fact('Worker', r.worker || dash),
      fact('Hedges', num((r.attempts || []).filter((a) => a.outcome === 'hedge_cancelled').length)),
      r.finish_reason ? fact('Finish', r.finish_reason) : null,
      r.cut ? fact('Stream', badge(`cut by ${r.cut_reason || 'an error'}${r.continued ? ', continued by another model' : ''}`, 'warn')) : null,
      r.error ? fact('Error', h('span', { class: 'error' }, r.error)) : null,
      r.cache_age_s !== undefined ? fact('Cache age', `${num(r.cache_age_s)} s`) : null));
    parts.push(h('h3', null, 'Attempts'), timeline(r.attempts || []));
    if (r.content !== undefined) {
      parts.push(h('details', { class: 'content' },
        h('summary', null, `Answer (${(r.content || '').length} characters)`),
        h('pre', null, r.content || '(no text: see the message)')));
    }
    if (r.message && r.message.tool_calls) {
      parts.push(h('details', null, h('summary', null, 'Tool calls'), h('pre', null, JSON.stringify(r.message.tool_calls, null, 2))));
    }
    parts.push(h('details', null, h('summary', null, 'Result as stored'), h('pre', null, JSON.stringify(j.result, null, 2))));
  } else {
    parts.push(h('p', { class: 'muted' }, 'No result yet.'));
  }
  if (j.job) parts.push(h('details', null, h('summary', null, 'The job'), h('pre', null, JSON.stringify(j.job, null, 2))));
  if (j.dead) parts.push(h('details', { open: true }, h('summary', null, 'Dead-letter entry'), h('pre', null, pretty(j.dead))));
  return parts;
}

function fact(k, v) {
  return [h('dt', null, k), h('dd', null, v)];
}

// Attempts in order, one line each, with a bar as long as its share of the slowest attempt.
function timeline(attempts) {
  if (!attempts.length) return h('p', { class: 'muted' }, 'No upstream call (cache, or refused before any).');
  const max = Math.max(1, ...attempts.map((a) => a.ms || 0));
  return h('ol', { class: 'timeline', 'aria-label': 'Attempts' }, attempts.map((a) => {
    const hedge = a.outcome === 'hedge_cancelled';
    const kind = a.outcome === 'ok' ? 'ok' : hedge ? 'info' : 'bad';
    const bar = h('span', { class: `bar ${kind}` });
    bar.style.width = `${Math.max(2, (100 * (a.ms || 0)) / max)}%`;
    return h('li', { class: hedge ? 'hedge' : null },
      h('span', { class: 'model' }, a.model || dash),
      h('span', { class: 'try' }, `try ${a.try}`),
      badge(hedge ? 'hedge cancelled' : a.outcome, kind),
      h('span', { class: 'ms' }, ms(a.ms)),
      h('span', { class: 'track' }, bar));
  }));
}
