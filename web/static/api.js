// api.js -- the one door to the JSON API (docs/admin.md): JSON in and out, the session's
// CSRF token on every POST, a lost session sent back to the login page.

let csrf = null;

// The token /api/session or /api/login handed out; POSTs carry it in X-CSRF-Token.
export function setCsrf(token) {
  csrf = token;
}

// An error reply: status, the API's error code and its message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || null;
  }
}

// method path [body] -> the parsed reply (null for 204); throws ApiError on an error reply and
// TypeError when the admin server cannot be reached.
export async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (method === 'POST') {
    if (csrf) opts.headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (r.status === 401 && path !== '/api/login') {
    location.assign('/login');
  }
  if (!r.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(r.status, e.code, e.message);
  }
  return data;
}
