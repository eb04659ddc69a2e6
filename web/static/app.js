// app.js -- the admin page's shell: the session (who, role, CSRF token, refresh period), the
// header, and the views behind #overview, #job/<id> and #dead[/<n or id>]. Each view module
// exports mount(el, ctx, arg) -> unmount(); ctx is what a view needs from the shell.

import { api, setCsrf } from './api.js';
import { fill } from './dom.js';
import * as overview from './overview.js';
import * as job from './job.js';
import * as dead from './dead.js';

const views = { overview, job, dead };
const $ = (id) => document.getElementById(id);
let unmount = null;
let flashTimer = null;

const ctx = {
  role: 'viewer',
  canAct: false,
  refreshMs: 2000,
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  // A short message under the header ("queue default paused"), kind ok or bad.
  flash(text, kind) {
    const el = $('flash');
    el.textContent = text;
    el.className = `flash ${kind || 'ok'}`;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { el.textContent = ''; el.className = 'flash'; }, 8000);
  },
  // The banner: text, or null to hide it.
  banner(text) {
    const el = $('banner');
    el.hidden = !text;
    el.textContent = text || '';
  },
};

function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const view = views[name] || overview;
  if (unmount) unmount();
  ctx.banner(null);
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
  unmount = view.mount(fill($('view')), ctx, arg) || null;
}

async function start() {
  let s;
  try {
    s = await api('GET', '/api/session');
  } catch (e) {
    if (e.status !== 401) fill($('view'), `The admin server did not answer: ${e.message}`);
    return;
  }
  setCsrf(s.csrf);
  ctx.role = s.role;
  ctx.canAct = s.role === 'admin';
  ctx.refreshMs = s.refresh_ms || 2000;
  document.body.classList.add(`role-${s.role}`);
  $('who').textContent = `${s.name} (${s.role})`;
  const out = $('logout');
  out.hidden = false;
  out.addEventListener('click', async () => {
    try { await api('POST', '/api/logout'); } catch (_) { /* the cookie expires anyway */ }
    location.assign('/login');
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
