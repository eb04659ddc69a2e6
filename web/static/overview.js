// overview.js -- the overview view: /api/overview once per refresh_ms (the admin process reads
// Redis once per refresh for every viewer), drawn section by section; a section is redrawn only
// when its figures changed, so a button is not replaced under the pointer. Actions: pause and
// resume a queue, force a model's breaker open or closed or hand it back (admins only). When
// Redis is down (or the admin server does not answer) the last figures stay, with a banner.

import { api } from './api.js';
import { h, fill, num, ms, pct, usd, when, badge, table, dash } from './dom.js';
import { chart } from './charts.js';

const SECTIONS = ['status', 'queues', 'charts', 'routes', 'models', 'workers', 'totals'];

export function mount(root, ctx) {
  const sec = {};
  const shown = {};
  let timer = null;
  let stopped = false;
  let lastOk = null; // when the last overview arrived (browser clock)

  const box = (id, title, ...extra) => {
    sec[id] = h('div', { class: 'body' });
    return h('section', { class: `card ${id}`, 'aria-labelledby': title ? `h-${id}` : null, 'aria-label': title ? null : 'Figures' },
      title ? h('h2', { id: `h-${id}` }, title) : null, ...extra, sec[id]);
  };
  const charts = h('div', { class: 'charts' });
  const chartBox = (title) => h('div', { class: 'chart', role: 'img', 'aria-label': title });
  const els = [chartBox('Jobs per minute, last 60 minutes'), chartBox('Latency per minute, last 60 minutes'),
    chartBox('Jobs per 5 minutes, last 24 hours'), chartBox('Latency per 5 minutes, last 24 hours')];
  charts.append(...els);
  root.append(
    h('h1', { class: 'sr-only' }, 'Overview'),
    box('status', null),
    h('div', { class: 'grid' },
      box('queues', 'Queues'),
      box('routes', 'Routes (5 min)'),
      h('section', { class: 'card charts-card', 'aria-labelledby': 'h-charts' }, h('h2', { id: 'h-charts' }, 'History'), charts),
      box('models', 'Models'),
      box('workers', 'Workers and hosts'),
      box('totals', 'Totals')));
  const plots = [chart(els[0], 'jobs', 'jobs / min (60 min)'), chart(els[1], 'latency', 'latency / min (60 min)'),
    chart(els[2], 'jobs', 'jobs / 5 min (24 h)'), chart(els[3], 'latency', 'latency / 5 min (24 h)')];

  async function act(method, path, body, done) {
    try {
      const r = await api(method, path, body);
      ctx.flash(done(r), 'ok');
    } catch (e) {
      ctx.flash(`${path}: ${e.message}`, 'bad');
    }
    poll();
  }

  const draw = {
    status(ov) {
      const up = ov.redis === 'up';
      return [
        h('div', { class: 'figures' },
          figure('Jobs / s', `${num(ov.jobs_per_s?.['1m'])}`, `5 min: ${num(ov.jobs_per_s?.['5m'])}`),
          figure('Wait p50 / p99', `${ms(ov.wait_ms?.p50)} / ${ms(ov.wait_ms?.p99)}`, 'push → claim, 5 min'),
          figure('Latency p50 / p99', `${ms(ov.latency_ms?.p50)} / ${ms(ov.latency_ms?.p99)}`, 'claim → finish, 5 min'),
          h('div', { class: 'figure' }, h('div', { class: 'label' }, 'Dead letters'),
            h('a', { class: 'value', href: '#dead' }, num(ov.dead?.count)), h('div', { class: 'sub' }, 'open the list')),
          figure('Redis', up ? 'up' : 'down', ov.at_ms ? `read ${when(ov.at_ms)}` : 'not read yet', up ? 'ok' : 'bad')),
      ];
    },
    queues(ov) {
      const heads = ['Queue', 'Depth', 'Oldest job', 'State'];
      if (ctx.canAct) heads.push('Action');
      return table('Queues', heads, (ov.queues || []).map((q) => {
        const cells = [q.name, h('span', { class: 'n', 'data-queue-depth': q.name }, num(q.depth)), ms(q.oldest_age_ms),
          q.paused ? badge(`paused${q.paused_by ? ` by ${q.paused_by}` : ''}`, 'warn') : badge('running', 'ok')];
        if (ctx.canAct) {
          const verb = q.paused ? 'Resume' : 'Pause';
          cells.push(h('button', {
            type: 'button', 'aria-label': `${verb} queue ${q.name}`,
            onclick: () => act('POST', `/api/queues/${encodeURIComponent(q.name)}/${verb.toLowerCase()}`, undefined,
              (r) => `queue ${r.queue} ${r.paused ? 'paused' : 'resumed'}`),
          }, verb));
        }
        return h('tr', null, cells.map((c) => h('td', null, c)));
      }));
    },
    routes(ov) {
      return table('Routes', ['Route', 'Jobs', 'Fallback', 'Degraded', 'Cache'],
        (ov.routes || []).map((r) => [r.name, num(r.jobs_5m), rate(r.fallback_rate, 0.05, 0.2),
          rate(r.degraded_rate, 0.01, 0.05), pct(r.cache_rate)]));
    },
    models(ov) {
      const heads = ['Model', 'Breaker', 'Attempts', 'Errors', 'p50 / p99', 'Hedges', 'RPM', 'TPM', 'Cost 24 h'];
      if (ctx.canAct) heads.push('Force');
      return table('Models', heads, (ov.models || []).map((m) => {
        const cells = [
          h('span', null, m.name, h('span', { class: 'muted small' }, ` ${m.provider}`)),
          breaker(m),
          num(m.attempts_5m),
          errors(m.errors_5m),
          `${ms(m.latency_ms?.p50)} / ${ms(m.latency_ms?.p99)}`,
          num(m.hedges_5m),
          `${num(m.rpm_used)} / ${m.rpm ? num(m.rpm) : dash}`,
          `${num(m.tpm_used)} / ${m.tpm ? num(m.tpm) : dash}`,
          usd(m.cost_usd_24h),
        ];
        if (ctx.canAct) cells.push(forceButtons(m));
        return h('tr', null, cells.map((c) => h('td', null, c)));
      }), 'no models');
    },
    workers(ov) {
      return [
        table('Workers', ['Worker', 'Host', 'In flight', 'Heartbeat'],
          (ov.workers || []).map((w) => [w.id, w.host, num(w.inflight), `${ms(ov.at_ms - w.last_seen_ms)} ago`]),
          'no worker alive'),
        table('Hosts', ['Host', 'Workers', 'In flight'], (ov.hosts || []).map((x) => [x.host, num(x.workers), num(x.inflight)]),
          'no host'),
      ];
    },
    totals(ov) {
      const t = ov.totals || {};
      return h('dl', { class: 'totals-list' }, Object.keys(t).map((k) => h('div', null, h('dt', null, k), h('dd', null, num(t[k])))));
    },
  };

  function forceButtons(m) {
    const post = (state) => act('POST', `/api/models/${encodeURIComponent(m.name)}/breaker`, { state },
      (r) => `breaker of ${r.model}: ${r.forced ? `forced ${r.forced}` : 'automatic'}`);
    return h('span', { class: 'buttons' },
      h('button', {
        type: 'button', class: 'danger', 'aria-label': `Force ${m.name} open`, disabled: m.forced === 'open',
        onclick: () => { if (confirm(`Force ${m.name} open? It refuses every call until set back.`)) post('open'); },
      }, 'Open'),
      h('button', { type: 'button', 'aria-label': `Force ${m.name} closed`, disabled: m.forced === 'closed', onclick: () => post('closed') }, 'Closed'),
      h('button', { type: 'button', 'aria-label': `Breaker of ${m.name} on auto`, disabled: !m.forced, onclick: () => post('auto') }, 'Auto'));
  }

  function render(ov) {
    for (const id of SECTIONS) {
      if (id === 'charts') continue;
      const key = JSON.stringify(pick(ov, id));
      if (shown[id] === key) continue;
      shown[id] = key;
      fill(sec[id], draw[id](ov));
    }
    const hist = ov.history || {};
    const k = JSON.stringify(hist);
    if (shown.charts !== k) {
      shown.charts = k;
      plots[0].update(hist.minute);
      plots[1].update(hist.minute);
      plots[2].update(hist.five_min);
      plots[3].update(hist.five_min);
    }
  }

  async function poll() {
    if (stopped) return;
    clearTimeout(timer);
    try {
      const ov = await api('GET', '/api/overview');
      if (stopped) return;
      lastOk = Date.now();
      render(ov);
      ctx.banner(ov.redis === 'down'
        ? `Redis is unreachable: the figures are the last ones read, ${ms(ov.age_ms)} ago (${when(ov.at_ms)}).`
        : null);
    } catch (e) {
      if (stopped) return;
      ctx.banner(`The admin server does not answer (${e.message}): the figures are from ${lastOk ? when(lastOk) : 'never'}.`);
    }
    if (!stopped) timer = setTimeout(poll, ctx.refreshMs);
  }

  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
    for (const p of plots) p.destroy();
  };
}

// The part of the overview a section draws (what decides whether it is redrawn).
function pick(ov, id) {
  switch (id) {
    case 'status': return [ov.jobs_per_s, ov.wait_ms, ov.latency_ms, ov.dead, ov.redis, ov.at_ms];
    case 'workers': return [ov.workers, ov.hosts, ov.at_ms];
    default: return ov[id];
  }
}

function figure(label, value, sub, kind) {
  return h('div', { class: `figure ${kind || ''}` }, h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value), h('div', { class: 'sub' }, sub));
}

// A rate, coloured past its warn and bad thresholds.
function rate(r, warn, bad) {
  const kind = r === null || r === undefined ? '' : r >= bad ? 'bad' : r >= warn ? 'warn' : '';
  return h('span', { class: kind ? `rate ${kind}` : 'rate' }, pct(r));
}

function breaker(m) {
  const kind = m.breaker === 'open' ? 'bad' : m.breaker === 'half_open' ? 'warn' : 'ok';
  return h('span', { class: 'breaker' }, badge(m.breaker.replace('_', '-'), kind),
    m.forced ? h('span', { class: 'small' }, ` forced ${m.forced}${m.forced_by ? ` by ${m.forced_by}` : ''}`) : null,
    m.open_until_ms && !m.forced ? h('span', { class: 'small' }, ` until ${when(m.open_until_ms)}`) : null);
}

function errors(e) {
  const parts = Object.entries(e || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  if (!parts.length) return h('span', { class: 'muted' }, '0');
  return h('span', { class: 'errors' }, parts.map(([k, n]) => h('span', { class: 'err' }, `${k} ${num(n)}`)));
}
