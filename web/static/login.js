// login.js -- the login page: posts the key once to /api/login (which sets the session cookie),
// then opens the page. Already logged in (or no admin.keys at all): straight to the page.

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');

async function already() {
  const r = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
  if (r.ok) location.replace('/');
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.textContent = '';
  const key = document.getElementById('key').value;
  let r;
  try {
    r = await fetch('/api/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ key }),
    });
  } catch (e) {
    error.textContent = `The admin server did not answer: ${e.message}`;
    return;
  }
  if (r.ok) {
    location.replace('/');
    return;
  }
  let msg = `HTTP ${r.status}`;
  try {
    const e = (await r.json()).error;
    if (e.code === 'no_keys') {
      location.replace('/');
      return;
    }
    msg = e.code === 'bad_key' ? 'That key is not one of admin.keys.' : e.message;
  } catch (_) { /* keep the status */ }
  error.textContent = msg;
});

already().catch(() => {});
