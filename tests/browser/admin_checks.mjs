// admin_checks.mjs -- the admin page in headless Chromium, as an operator uses it
// (tests/integration/test_admin_browser.sh sets up Redis, planb-mock and planb with an admin
// key and a viewer key, then runs this). Elements are found by role and visible name, and every
// wait is for what a person would see (a figure, a badge, a text), bounded; no fixed sleep but
// the 1.5 s in which a paused queue must not be claimed (an absence has nothing to wait for).
//
// Environment: ADMIN_URL, ADMIN_KEY, VIEWER_KEY, REDIS_PORT, MOCK_URL, WORKER_PIDS (the
// workers' pids, stopped and continued here), SHOTS (folder for the screenshots), CHROMIUM.
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};
const URL = env('ADMIN_URL');
const SHOTS = env('SHOTS');
const WORKERS = env('WORKER_PIDS').split(/\s+/).filter(Boolean).map(Number);
const R = (...args) => execFileSync('redis-cli', ['-p', env('REDIS_PORT'), ...args]).toString().trim();
const mockSet = async (model, behaviour) => {
  const r = await fetch(`${env('MOCK_URL')}/_mock/models/${model}`, { method: 'POST', body: JSON.stringify(behaviour) });
  if (!r.ok) throw new Error(`mock ${model}: HTTP ${r.status}`);
};
const job = (id) => JSON.stringify({ id, reply: true, submitted_at_ms: Date.now(), messages: [{ role: 'user', content: `q ${id}` }] });
let step = 'start';
const ok = (cond, what) => {
  if (!cond) throw new Error(`${step}: ${what}`);
};

// Polls fn until it returns a truthy value, at most ms; the last value goes into the failure.
async function until(fn, what, ms = 15000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`${step}: waited ${ms} ms for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const textIs = (loc, want) => async () => ((await loc.textContent()) || '').trim() === String(want);
const visible = (loc) => async () => loc.isVisible();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
});
const cspErrors = [];
async function newPage(opts) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text());
  });
  page.on('pageerror', (e) => cspErrors.push(`page error: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  return page;
}
async function login(page, key, who) {
  await page.goto(`${URL}/`);
  await page.waitForURL(`${URL}/login`);
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Queues' }).waitFor();
  await page.getByText(who, { exact: true }).waitFor();
}
const post = (page, path, headers) => page.evaluate(async ([p, h]) => {
  const r = await fetch(p, { method: 'POST', headers: h });
  return { status: r.status, body: await r.json() };
}, [path, headers || {}]);

try {
  // The page's files carry the strict CSP; every view below must run under it without a
  // violation (an inline style or script would be reported on the console).
  step = 'headers';
  const page = await newPage();
  const res = await page.goto(`${URL}/`);
  ok(/script-src 'self'/.test(res.headers()['content-security-policy'] || ''), `CSP on /: ${JSON.stringify(res.headers())}`);
  await page.waitForURL(`${URL}/login`);

  step = 'login refused';
  await page.getByLabel('Admin key').fill('not-a-key');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('That key is not one of admin.keys.').waitFor();

  step = 'login';
  await page.getByLabel('Admin key').fill(env('ADMIN_KEY'));
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Queues' }).waitFor();
  await page.getByText('ops (admin)', { exact: true }).waitFor();

  // The queue's depth rises while jobs are pushed and no worker claims (stopped), and falls
  // to 0 once they run again. The figure shown must be Redis's LLEN at each stage.
  step = 'depth';
  const queues = page.getByRole('table', { name: 'Queues' });
  const depth = queues.getByRole('row').filter({ hasText: 'default' }).getByRole('cell').nth(1);
  const depthOldest = queues.getByRole('row').filter({ hasText: 'default' }).getByRole('cell').nth(2);
  await until(textIs(depth, 0), 'depth 0 at the start');
  for (const pid of WORKERS) process.kill(pid, 'SIGSTOP');
  const seen = [];
  try {
    for (const [from, to] of [[1, 5], [6, 15]]) {
      for (let i = from; i <= to; i++) R('LPUSH', 'planb:q:default', job(`depth-${i}`));
      const n = Number(R('LLEN', 'planb:q:default'));
      ok(n >= to - 1, `LLEN ${n} after ${to} pushes with the workers stopped`);
      await until(textIs(depth, n), `depth ${n} on the page`);
      seen.push(n);
    }
    ok(seen[1] > seen[0], `depth rose: ${seen}`);
    await until(async () => (await depthOldest.textContent()) !== '–', 'the oldest job\'s age');
    // A queued job's view says where it is, and follows it until it is finished.
    step = 'queued job';
    await page.goto(`${URL}/#job/depth-15`);
    await page.getByText('Now: in queue default').waitFor();
  } finally {
    for (const pid of WORKERS) process.kill(pid, 'SIGCONT');
  }
  await page.getByText('Now: finished ok').waitFor({ timeout: 30000 });
  step = 'depth falls';
  await page.getByRole('link', { name: 'Overview' }).click();
  await until(textIs(depth, 0), 'depth back to 0 once the workers run', 30000);
  for (let i = 1; i <= 15; i++) await until(() => R('EXISTS', `planb:result:depth-${i}`) === '1', `result of depth-${i}`);

  // A failed job by id: every model failing gives the degraded reply after four attempts; the
  // job view shows each of them, in order, as the result has them.
  step = 'failed job';
  await mockSet('primary', { mode: 'status', status: 500 });
  await mockSet('backup', { mode: 'status', status: 503 });
  R('LPUSH', 'planb:q:default', job('fail-1'));
  const stored = JSON.parse(await until(() => {
    const v = R('GET', 'planb:result:fail-1');
    return v && v !== '' ? v : null;
  }, 'the result of fail-1'));
  await mockSet('primary', { mode: 'ok' });
  await mockSet('backup', { mode: 'ok' });
  ok(stored.status === 'degraded' && stored.attempts.length >= 2, `fail-1: ${JSON.stringify(stored)}`);
  await page.getByRole('link', { name: 'Job', exact: true }).click();
  await page.getByLabel('Job id').fill('fail-1');
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByRole('heading', { name: /Job fail-1/ }).waitFor();
  const items = page.getByRole('list', { name: 'Attempts' }).getByRole('listitem');
  await until(async () => (await items.count()) === stored.attempts.length, `${stored.attempts.length} attempts listed`);
  for (const [i, a] of stored.attempts.entries()) {
    const t = await items.nth(i).textContent();
    ok(t.includes(a.model) && t.includes(`try ${a.try}`) && t.includes(a.outcome), `attempt ${i}: "${t}" vs ${JSON.stringify(a)}`);
  }
  await page.getByText('degraded', { exact: true }).first().waitFor();
  await page.getByText(/^Answer \(/).click();
  await page.getByText('Sorry, try later.', { exact: true }).waitFor();
  await page.screenshot({ path: `${SHOTS}/admin-job.png`, fullPage: true });

  // A dead letter retried from the page: it leaves the list and its fresh result appears in
  // its job view.
  step = 'dead retry';
  const entry = (id) => JSON.stringify({ id, error: 'TOO_MANY_DELIVERIES handed back 5 times', reason: 'max_deliveries', worker: 'h:1', at_ms: Date.now() - 60000, job: job(id) });
  R('SET', 'planb:result:dl-1', '{"id":"dl-1","status":"invalid"}');
  R('LPUSH', 'planb:dead', entry('dl-1'));
  await page.getByRole('link', { name: 'Dead letters' }).click();
  const dead = page.getByRole('table', { name: 'Dead letters' });
  await dead.getByRole('row').filter({ hasText: 'dl-1' }).waitFor();
  await page.getByRole('button', { name: 'Retry dl-1' }).click();
  await page.getByRole('link', { name: 'Open job dl-1' }).click();
  await page.getByRole('heading', { name: /Job dl-1/ }).waitFor();
  await page.getByText('Now: finished ok').waitFor();
  await page.getByText(/^Answer \(/).click();
  await page.getByText('echo: q dl-1', { exact: true }).waitFor();
  ok(!R('LRANGE', 'planb:dead', '0', '-1').includes('"dl-1"'), 'dl-1 is still a dead letter');
  ok(JSON.parse(R('GET', 'planb:result:dl-1')).status === 'ok', 'dl-1 result not ok');

  // Retry every entry matching a reason (the others stay), then purge.
  step = 'dead retry matching';
  R('LPUSH', 'planb:dead', entry('dl-2'), entry('dl-3'), JSON.stringify({ id: 'dl-x', error: 'BAD_JSON x', worker: 'h:1', at_ms: Date.now(), job: 'not json' }));
  await page.getByRole('link', { name: 'Dead letters' }).click();
  await dead.getByRole('row').filter({ hasText: 'dl-3' }).waitFor();
  await page.getByLabel('Error or reason holds').fill('TOO_MANY');
  await page.getByRole('button', { name: 'Retry matching' }).click();
  await page.getByText('2 retried, 1 left.').waitFor();
  for (const id of ['dl-2', 'dl-3']) {
    await until(() => (R('GET', `planb:result:${id}`) || '').includes('"ok"'), `result of ${id}`);
  }
  step = 'dead purge';
  await page.getByRole('button', { name: 'Purge all' }).click();
  await page.getByText(/dead letters? purged/).waitFor();
  await until(() => R('LLEN', 'planb:dead') === '0', 'planb:dead empty');
  await page.getByText('no dead letters').waitFor();

  // Pause from the page: the badge, and planb:paused holding who paused it; resume clears it.
  step = 'pause';
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('button', { name: 'Pause queue default' }).click();
  await queues.getByText('paused by ops').waitFor();
  const paused = JSON.parse(R('HGET', 'planb:paused', 'default') || 'null');
  ok(paused && paused.by === 'ops', `planb:paused default = ${JSON.stringify(paused)}`);
  await page.screenshot({ path: `${SHOTS}/admin-overview.png`, fullPage: true });

  // The session tells the page how often to poll (admin.refresh_ms, 500 in this config).
  step = 'session';
  const session = await page.evaluate(async () => (await fetch('/api/session')).json());
  ok(session.name === 'ops' && session.role === 'admin' && session.refresh_ms === 500 && session.csrf, `session ${JSON.stringify(session)}`);

  // Without the session's CSRF token (or with a wrong one) a POST is refused: 403 csrf.
  step = 'csrf';
  for (const headers of [{}, { 'X-CSRF-Token': 'wrong' }]) {
    const r = await post(page, '/api/queues/default/resume', headers);
    ok(r.status === 403 && r.body.error.code === 'csrf', `POST with ${JSON.stringify(headers)}: ${JSON.stringify(r)}`);
  }
  ok(R('HEXISTS', 'planb:paused', 'default') === '1', 'a refused resume resumed the queue');

  // While paused the running workers claim nothing: the jobs pushed now stay on the page's
  // depth (and in Redis) until the resume below, then run.
  step = 'claims stop';
  for (let i = 1; i <= 3; i++) R('LPUSH', 'planb:q:default', job(`held-${i}`));
  await until(textIs(depth, 3), 'depth 3 while paused');
  await new Promise((r) => setTimeout(r, 1500)); // a claim would have happened by now
  ok(R('LLEN', 'planb:q:default') === '3' && R('EXISTS', 'planb:result:held-1') === '0', 'a worker claimed from a paused queue');
  ok(((await depth.textContent()) || '').trim() === '3', 'the depth fell while paused');

  step = 'resume';
  await page.getByRole('button', { name: 'Resume queue default' }).click();
  await queues.getByText('running', { exact: true }).waitFor();
  ok(R('HEXISTS', 'planb:paused', 'default') === '0', 'planb:paused still holds default');
  await until(textIs(depth, 0), 'depth back to 0 after the resume');
  for (let i = 1; i <= 3; i++) await until(() => R('EXISTS', `planb:result:held-${i}`) === '1', `result of held-${i}`);

  // A breaker forced closed from the page, then handed back to its rules.
  step = 'breaker';
  const models = page.getByRole('table', { name: 'Models' });
  await page.getByRole('button', { name: 'Force backup closed' }).click();
  await models.getByText('forced closed by ops').waitFor();
  ok(R('HGET', 'planb:breaker:backup', 'forced') === 'closed', 'planb:breaker:backup not forced closed');
  await page.getByRole('button', { name: 'Breaker of backup on auto' }).click();
  await until(async () => (await models.getByText('forced closed by ops').count()) === 0, 'the forced badge gone');
  ok(R('HEXISTS', 'planb:breaker:backup', 'forced') === '0', 'planb:breaker:backup still forced');

  // A viewer sees everything and can do nothing: no action button on any view, and a POST
  // with its cookie and its own CSRF token gets 403 forbidden.
  step = 'viewer';
  const vpage = await newPage({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
  await login(vpage, env('VIEWER_KEY'), 'oncall (viewer)');
  await vpage.getByRole('table', { name: 'Models' }).getByText('primary').waitFor();
  await vpage.screenshot({ path: `${SHOTS}/admin-overview-phone-dark.png`, fullPage: true });
  for (const name of [/Pause queue/, /Resume queue/, /^Force /, /on auto$/]) {
    ok((await vpage.getByRole('button', { name }).count()) === 0, `viewer sees a ${name} button`);
  }
  R('LPUSH', 'planb:dead', entry('dl-4'));
  await vpage.getByRole('link', { name: 'Dead letters' }).click();
  await vpage.getByRole('table', { name: 'Dead letters' }).getByRole('row').filter({ hasText: 'dl-4' }).waitFor();
  for (const name of [/^Retry/, 'Purge all']) {
    ok((await vpage.getByRole('button', { name }).count()) === 0, `viewer sees a ${name} button`);
  }
  const csrf = await vpage.evaluate(async () => (await (await fetch('/api/session')).json()).csrf);
  ok(typeof csrf === 'string' && csrf.length > 0, `viewer session csrf ${csrf}`);
  for (const path of ['/api/queues/default/pause', '/api/dead/dl-4/retry', '/api/dead/purge']) {
    const r = await post(vpage, path, { 'X-CSRF-Token': csrf });
    ok(r.status === 403 && r.body.error.code === 'forbidden', `viewer POST ${path}: ${JSON.stringify(r)}`);
  }
  ok(R('HEXISTS', 'planb:paused', 'default') === '0' && R('LLEN', 'planb:dead') === '1', 'a viewer POST acted');

  // Redis goes away: the page says so and keeps the last figures.
  step = 'redis down';
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('table', { name: 'Models' }).getByText('backup').waitFor();
  try { R('SHUTDOWN', 'NOSAVE'); } catch (_) { /* the connection closes under redis-cli */ }
  await page.getByRole('alert').filter({ hasText: 'Redis is unreachable' }).waitFor();
  await until(visible(page.getByRole('table', { name: 'Models' }).getByText('backup')), 'the models still shown');
  await until(visible(queues.getByRole('row').filter({ hasText: 'default' })), 'the queue still shown');

  step = 'csp';
  ok(cspErrors.length === 0, `console: ${cspErrors.join(' | ')}`);
  console.log('admin page checks passed');
} finally {
  await browser.close();
}
