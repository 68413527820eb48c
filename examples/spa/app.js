// County Services example SPA: a cookie session with the CSRF header, no framework, no build step.
//
// - Every request goes to the API with credentials: 'include', so the browser sends and stores the
//   HttpOnly session cookie (this page can never read it).
// - Unsafe requests (POST, PUT, PATCH, DELETE) carry X-CSRF-Token: the csrf_token from POST /login,
//   or from GET /auth/csrf after a reload. It is kept in memory only.
// - The access and refresh tokens that POST /login also returns are ignored: a browser app has the
//   cookie; tokens are for clients without one (mobile apps, scripts).
// - Accounts with two-factor authentication: POST /login answers {tf_required, tf_token} instead of
//   a session; the page asks for a code and completes the login with POST /tf-validate, which answers
//   (and sets the cookie) like a login. The tf_token is kept in memory only. Forced setup (a role that
//   requires 2FA, none set up yet) is left to other clients: the page says so.
// - Passkeys (WebAuthn, with @simplewebauthn/browser): "Sign in with a passkey" needs no address
//   (POST /wan-signin without identity: the browser offers its discoverable credentials); the code
//   step offers "Use a security key" (POST /wan-signin with the tf_token) when the login's
//   tf_methods include "webauthn"; the account page lists, adds (POST /wan-register + its finish)
//   and deletes (POST /wan-delete) keys.
// - Conditional UI (passkey autofill): while the sign-in form is shown, and when the browser has
//   PublicKeyCredential.isConditionalMediationAvailable(), a WebAuthn get with mediation
//   "conditional" waits in the background; the email field's autocomplete="username webauthn"
//   makes the browser offer the site's passkeys in its autofill, and picking one signs in. Leaving
//   the form (or pressing the button, which starts a modal ceremony) aborts it. body[data-conditional]
//   says whether one is waiting ("pending") or not ("off").
// - Two-factor by email: when tf_method is "email" the code step says a code was mailed and offers
//   "Email me another code" (POST /tf-send-code).
// - "Email me a code": POST /us-signin/send-code with the address typed, then POST /us-signin with
//   the 6-digit code (two-factor authentication still applies). The emailed link can point at this
//   page (?signin_token=…): it is used with POST /us-signin/link.
// - Everything the API returns is rendered with textContent, never as HTML.

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const state = { api: '', csrf: null, tfToken: null, usIdentity: null };
const webauthn = globalThis.SimpleWebAuthnBrowser;

const byId = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from index.html`);
  return node;
};

class ApiError extends Error {
  constructor(status, body) {
    const envelope = body && typeof body === 'object' ? body : {};
    super(typeof envelope.message === 'string' ? envelope.message : `HTTP ${status}`);
    this.status = status;
    this.code = typeof envelope.code === 'string' ? envelope.code : null;
    this.fields = envelope.fields && typeof envelope.fields === 'object' ? envelope.fields : null;
  }
}

/** Calls the API; resolves to the JSON body (null for 204), rejects with an ApiError. */
async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (UNSAFE.has(method) && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  let res;
  try {
    res = await fetch(state.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'include',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, {
      code: 'NETWORK_ERROR',
      message: `Cannot reach the API at ${state.api}: is it running, and is ${location.origin} in its CORS_ORIGINS?`,
    });
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// ---- rendering (text only) ----

function showError(err) {
  const box = byId('error');
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  const lines = [err.code ? `${err.message} (${err.code})` : err.message];
  if (err instanceof ApiError && err.fields) {
    for (const [field, messages] of Object.entries(err.fields)) {
      for (const message of [].concat(messages)) lines.push(field ? `${field}: ${message}` : String(message));
    }
  }
  box.textContent = lines.join('\n');
  box.hidden = false;
}

function setStatus(text) {
  byId('status').textContent = text;
}

function show(view) {
  byId('signed-out').hidden = view !== 'signed-out';
  byId('signed-in').hidden = view !== 'signed-in';
  document.body.dataset.state = view;
  if (view === 'signed-out' && !byId('login-form').hidden) armConditional();
  else disarmConditional();
}

// ---- conditional UI: a discoverable passkey offered in the email field's autofill ----

const conditional = { pending: false, generation: 0 };

function setConditional(pending) {
  conditional.pending = pending;
  document.body.dataset.conditional = pending ? 'pending' : 'off';
}

async function conditionalAvailable() {
  if (!webauthn || !webauthn.browserSupportsWebAuthn()) return false;
  const pkc = globalThis.PublicKeyCredential;
  if (!pkc || typeof pkc.isConditionalMediationAvailable !== 'function') return false;
  try {
    return await pkc.isConditionalMediationAvailable();
  } catch {
    return false;
  }
}

/**
 * Starts the background ceremony (POST /wan-signin without identity, then a get with mediation
 * "conditional"). It resolves only when the user picks a passkey from the autofill; that assertion
 * signs in like the button's. Errors of the ceremony itself are silent (aborted, nothing picked);
 * the API's answer to a picked passkey is shown like any other.
 */
async function armConditional() {
  if (conditional.pending || !state.api) return;
  const generation = conditional.generation;
  setConditional(true);
  if (!(await conditionalAvailable())) return setConditional(false);
  let started;
  try {
    started = await call('POST', '/wan-signin', {});
  } catch {
    return setConditional(false);
  }
  if (generation !== conditional.generation) return setConditional(false); // the form was left meanwhile
  const since = Date.now();
  let credential;
  try {
    credential = await webauthn.startAuthentication({ optionsJSON: started.credential_options, useBrowserAutofill: true });
  } catch (err) {
    setConditional(false);
    // timed out after a while (the challenge expired with it): offer the passkeys again while the form is shown;
    // aborted (the button, leaving the form) or refused at once: leave it
    const longWait = Date.now() - since > 10_000;
    if (longWait && !(err && err.code === 'ERROR_CEREMONY_ABORTED') && document.body.dataset.state === 'signed-out' && !byId('login-form').hidden) {
      setTimeout(armConditional, 1000);
    }
    return;
  }
  setConditional(false);
  showError(null);
  setStatus('Signing in with your passkey…');
  try {
    await loginAnswer(await call('POST', `/wan-signin/${encodeURIComponent(started.wan_state)}`, { credential }));
  } catch (err) {
    setStatus('');
    handle(err);
  }
}

function disarmConditional() {
  conditional.generation += 1;
  if (conditional.pending && webauthn) webauthn.WebAuthnAbortService.cancelCeremony();
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

function renderUser(user) {
  byId('user-email').textContent = user.email;
  byId('user-name').textContent = user.full_name || '—';
  byId('user-roles').textContent = user.roles.length ? user.roles.join(', ') : '—';
  byId('user-logins').textContent = `${user.login_count ?? 0} (last from ${user.last_login_ip ?? '—'} at ${when(user.last_login_at)})`;
}

function renderSessions(sessions) {
  const rows = sessions.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.sessionId = s.id;
    if (s.current) tr.className = 'current';
    tr.append(
      cell(when(s.created_at)),
      cell(when(s.last_used_at)),
      cell(s.ip ?? '—'),
      cell(s.user_agent ?? '—', 'agent'),
      cell(s.current ? 'this browser' : ''),
    );
    return tr;
  });
  byId('sessions').querySelector('tbody').replaceChildren(...rows);
}

function renderPasskeys(credentials) {
  const rows = credentials.map((c) => {
    const tr = document.createElement('tr');
    tr.dataset.passkeyName = c.name;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'passkey-delete';
    remove.textContent = 'Delete';
    remove.addEventListener('click', () => deletePasskey(c.name));
    const actions = document.createElement('td');
    actions.append(remove);
    tr.append(cell(c.name, 'passkey-name'), cell(c.usage === 'first' ? 'sign-in' : 'second factor'), cell(when(c.created_at)),
      cell(when(c.last_used_at)), actions);
    return tr;
  });
  byId('passkeys').querySelector('tbody').replaceChildren(...rows);
}

// ---- flows ----

async function loadAccount() {
  const [me, list, keys, ids] = await Promise.all([
    call('GET', '/auth/current-user'), call('GET', '/auth/sessions'), call('GET', '/wan-register'),
    call('GET', '/auth/identities').catch(() => null),
  ]);
  renderUser(me.user);
  renderSessions(list.sessions);
  renderPasskeys(keys.credentials);
  renderIdentities(ids ? ids.identities : []);
  show('signed-in');
}

// ---- OpenID Connect sign-in (docs/oidc.md) ----

/** Where the provider sends the browser back: this page (with its ?api=, if any). Must be in SECURITY_OAUTH_ALLOWED_REDIRECTS. */
function returnUrl() {
  const api = new URLSearchParams(location.search).get('api');
  return `${location.origin}${location.pathname}${api ? `?api=${encodeURIComponent(api)}` : ''}`;
}

function renderProviders(providers) {
  byId('providers').replaceChildren(...providers.map((p) => {
    const a = document.createElement('a');
    a.href = `${state.api}/login/oauthstart/${encodeURIComponent(p.name)}?next=${encodeURIComponent(returnUrl())}`;
    a.textContent = `Sign in with ${p.display_name}`;
    a.className = 'provider';
    return a;
  }));
}

function renderIdentities(identities) {
  byId('identities').replaceChildren(...identities.map((i) => {
    const li = document.createElement('li');
    li.textContent = `${i.display_name}${i.email ? ` (${i.email})` : ''}, linked ${when(i.created_at)}`;
    return li;
  }));
}

/** Back from the provider: take login_code (or error) out of the address bar first, then exchange it. */
async function oauthReturn() {
  const params = new URLSearchParams(location.search);
  const code = params.get('login_code');
  const error = params.get('error');
  if (!code && !error) return false;
  params.delete('login_code');
  params.delete('error');
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
  if (error) throw new Error(`Signing in with the provider did not work (${error}).`);
  const answer = await call('POST', '/login/oauth/exchange', { login_code: code });
  if (answer.tf_required) {
    if (answer.tf_setup_required) throw new Error('Your role requires two-factor authentication: set it up with another client first.');
    show('signed-out');
  }
  await loginAnswer(answer);
  return true;
}

/** A 401 means the session is gone (expired, logged out elsewhere): back to the form. */
function handle(err) {
  if (err instanceof ApiError && err.status === 401 && document.body.dataset.state === 'signed-in') {
    state.csrf = null;
    show('signed-out');
  }
  showError(err);
}

/** The login form, or the code form of a login's second step. */
function showStep(step) {
  byId('login-form').hidden = step !== 'password';
  byId('tf-form').hidden = step !== 'code';
  byId('us-form').hidden = step !== 'email-code';
  if (step === 'password' && document.body.dataset.state === 'signed-out') armConditional();
  else if (step !== 'password') disarmConditional();
  if (step === 'code') byId('tf-code').focus();
  if (step === 'email-code') byId('us-code').focus();
}

/** Any login answer: the session, or the two-factor step it still needs. */
async function loginAnswer(answer) {
  if (answer.tf_required) {
    if (answer.tf_setup_required) {
      throw new Error('Your role requires two-factor authentication and this account has none yet: set it up with ' +
        'another client first (docs: Two-factor authentication, forced setup).');
    }
    state.tfToken = answer.tf_token;
    const methods = Array.isArray(answer.tf_methods) ? answer.tf_methods : [answer.tf_method];
    byId('tf-passkey').hidden = !methods.includes('webauthn');
    byId('tf-resend').hidden = answer.tf_method !== 'email';
    showStep('code');
    setStatus(answer.tf_method === 'email'
      ? 'Two-factor authentication: we emailed you a code; enter it (or a recovery code).'
      : answer.tf_method === 'webauthn'
        ? 'Two-factor authentication: use your security key (or enter a recovery code).'
        : `Two-factor authentication: enter a code from your app${methods.includes('webauthn') ? ', or use your security key' : ''}.`);
    return;
  }
  await signedIn(answer);
}

async function resendCode() {
  showError(null);
  try {
    await call('POST', '/tf-send-code', { tf_token: state.tfToken });
    setStatus('Another code is on its way to your email address.');
  } catch (err) {
    handle(err);
  }
}

/** A login answer (from POST /login or POST /tf-validate) that opened a session. */
async function signedIn(answer) {
  if (typeof answer.csrf_token !== 'string') throw new Error('The API answered without a session.');
  state.csrf = answer.csrf_token;
  state.tfToken = null;
  state.usIdentity = null;
  byId('login-form').reset();
  byId('tf-form').reset();
  byId('us-form').reset();
  await loadAccount();
  showStep('password'); // signed in now: the sign-in form's conditional UI stays off
  setStatus('Signed in.');
}

async function login(event) {
  event.preventDefault();
  const button = byId('login-button');
  const password = byId('password');
  showError(null);
  button.disabled = true;
  setStatus('Signing in…');
  try {
    const answer = await call('POST', '/login', { email: byId('email').value, password: password.value });
    password.value = '';
    await loginAnswer(answer);
  } catch (err) {
    password.value = '';
    setStatus('');
    handle(err);
  } finally {
    button.disabled = false;
  }
}

async function validateCode(event) {
  event.preventDefault();
  const button = byId('tf-button');
  const code = byId('tf-code');
  showError(null);
  button.disabled = true;
  try {
    await signedIn(await call('POST', '/tf-validate', { tf_token: state.tfToken, code: code.value.trim() }));
  } catch (err) {
    code.value = '';
    handle(err);
  } finally {
    button.disabled = false;
  }
}

function cancelCode() {
  state.tfToken = null;
  state.usIdentity = null;
  byId('tf-form').reset();
  byId('us-form').reset();
  showError(null);
  setStatus('');
  showStep('password');
}

/** A WebAuthn ceremony's browser half: the browser's own errors (cancelled, timed out) become a message. */
async function browserCeremony(run) {
  if (!webauthn || !webauthn.browserSupportsWebAuthn()) throw new Error('This browser does not support passkeys.');
  try {
    return await run();
  } catch (err) {
    throw new Error(`The passkey prompt did not complete: ${err && err.message ? err.message : err}`);
  }
}

/** Options → the browser's assertion → the API's login answer. */
async function passkeyAssertion(body) {
  const started = await call('POST', '/wan-signin', body);
  const credential = await browserCeremony(() => webauthn.startAuthentication({ optionsJSON: started.credential_options }));
  return call('POST', `/wan-signin/${encodeURIComponent(started.wan_state)}`, { credential });
}

async function passkeySignin() {
  showError(null);
  setStatus('Waiting for your passkey…');
  try {
    await loginAnswer(await passkeyAssertion({}));
  } catch (err) {
    setStatus('');
    handle(err);
  }
}

async function tfPasskey() {
  showError(null);
  try {
    await signedIn(await passkeyAssertion({ tf_token: state.tfToken }));
  } catch (err) {
    handle(err);
  }
}

async function sendCode() {
  showError(null);
  const email = byId('email');
  if (!email.checkValidity() || !email.value) {
    showError(new Error('Type your email address first.'));
    return;
  }
  try {
    await call('POST', '/us-signin/send-code', { identity: email.value, chosen_method: 'email' });
    state.usIdentity = email.value;
    showStep('email-code');
    setStatus('Check your email for the code.');
  } catch (err) {
    handle(err);
  }
}

async function codeSignin(event) {
  event.preventDefault();
  showError(null);
  const code = byId('us-code');
  try {
    await loginAnswer(await call('POST', '/us-signin', { identity: state.usIdentity, passcode: code.value.trim() }));
  } catch (err) {
    code.value = '';
    handle(err);
  }
}

async function addPasskey(event) {
  event.preventDefault();
  showError(null);
  try {
    const started = await call('POST', '/wan-register', { name: byId('wan-name').value, usage: byId('wan-usage').value });
    const credential = await browserCeremony(() => webauthn.startRegistration({ optionsJSON: started.credential_options }));
    await call('POST', `/wan-register/${encodeURIComponent(started.wan_state)}`, { credential });
    byId('wan-form').reset();
    renderPasskeys((await call('GET', '/wan-register')).credentials);
    setStatus('Passkey added.');
  } catch (err) {
    handle(err);
  }
}

async function deletePasskey(name) {
  showError(null);
  try {
    await call('POST', '/wan-delete', { name });
    renderPasskeys((await call('GET', '/wan-register')).credentials);
    setStatus('Passkey deleted.');
  } catch (err) {
    handle(err);
  }
}

async function logout() {
  showError(null);
  try {
    await call('POST', '/logout', {});
    state.csrf = null;
    renderSessions([]);
    renderPasskeys([]);
    show('signed-out');
    setStatus('Signed out.');
  } catch (err) {
    handle(err);
  }
}

async function reload() {
  showError(null);
  try {
    await loadAccount();
    setStatus(`Reloaded at ${new Date().toLocaleTimeString()}.`);
  } catch (err) {
    handle(err);
  }
}

/** ?api=… wins; otherwise the server's /config.json (serve.ts writes it). CSP limits both to one origin. */
async function apiBase() {
  const fromQuery = new URLSearchParams(location.search).get('api');
  let value = fromQuery;
  if (!value) {
    const res = await fetch('config.json', { cache: 'no-store' }).catch(() => null);
    const config = res && res.ok ? await res.json().catch(() => null) : null;
    value = config && typeof config.api === 'string' ? config.api : null;
  }
  if (!value) throw new Error('No API configured: open this page with ?api=http://localhost:5000');
  const url = new URL(value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`Not an http(s) API URL: ${value}`);
  return url.origin;
}

/** Loopback and IP hosts have no shared "site" with any other host name: say so, cookies won't flow. */
function checkSameSite(api) {
  const apiHost = new URL(api).hostname;
  const pageHost = location.hostname;
  const special = (h) => h === 'localhost' || /^[0-9.]+$/.test(h) || h.startsWith('[');
  if (apiHost !== pageHost && (special(apiHost) || special(pageHost))) {
    const warning = byId('warning');
    warning.textContent = `This page is on ${pageHost} but the API is on ${apiHost}: a different site, so the browser ` +
      'will not send the SameSite=Lax session cookie. Open both under the same host name.';
    warning.hidden = false;
  }
}

async function start() {
  byId('login-form').addEventListener('submit', login);
  byId('tf-form').addEventListener('submit', validateCode);
  byId('tf-cancel').addEventListener('click', cancelCode);
  byId('tf-passkey').addEventListener('click', tfPasskey);
  byId('tf-resend').addEventListener('click', resendCode);
  byId('passkey-button').addEventListener('click', passkeySignin);
  byId('us-send-button').addEventListener('click', sendCode);
  byId('us-form').addEventListener('submit', codeSignin);
  byId('us-cancel').addEventListener('click', cancelCode);
  byId('wan-form').addEventListener('submit', addPasskey);
  byId('logout-button').addEventListener('click', logout);
  byId('reload-button').addEventListener('click', reload);
  try {
    state.api = await apiBase();
  } catch (err) {
    show('signed-out');
    showError(err);
    return;
  }
  byId('api-origin').textContent = state.api;
  checkSameSite(state.api);
  // An emailed sign-in link pointing here (SECURITY_US_SIGNIN_URL_TEMPLATE=<this page>?signin_token={token}):
  // the token leaves the address bar at once, and only this explicit POST uses it (a scanner's GET does not).
  call('GET', '/login/oauth/providers').then((r) => renderProviders(r.providers), () => renderProviders([]));
  const params = new URLSearchParams(location.search);
  const signinToken = params.get('signin_token');
  if (signinToken) {
    params.delete('signin_token');
    history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
    try {
      await loginAnswer(await call('POST', '/us-signin/link', { token: signinToken }));
      return;
    } catch (err) {
      show('signed-out');
      showError(err);
      return;
    }
  }
  try {
    if (await oauthReturn()) return;
  } catch (err) {
    show('signed-out');
    showError(err);
    return;
  }
  try {
    // After a reload the cookie may still name a live session: its CSRF token brings the page back.
    state.csrf = (await call('GET', '/auth/csrf')).csrf_token;
    await loadAccount();
  } catch (err) {
    state.csrf = null;
    show('signed-out');
    if (!(err instanceof ApiError && err.status === 401)) showError(err);
  }
}

start();
