// The console's JSON API (CONSOLE.md) and its event stream, seen from the browser.
// One EventSource on /api/stream serves every view: views subscribe to 'changed' and 'overview'.

export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const listeners = {changed: new Set(), overview: new Set(), status: new Set(), unauthorized: new Set()};

function emit(type, value) {
  for (const fn of listeners[type]) {
    try { fn(value); } catch (err) { console.error(err); }
  }
}

/** Subscribes fn to 'changed' | 'overview' | 'status' | 'unauthorized'; returns the unsubscribe. */
export function on(type, fn) {
  listeners[type].add(fn);
  return () => listeners[type].delete(fn);
}

/**
 * GET a JSON document; throws ApiError with the server's {"error", "code"} on failure.
 * A 401 also tells the 'unauthorized' listeners (the banner that explains the token).
 */
export async function getJSON(path, {signal} = {}) {
  let response;
  try {
    response = await fetch(path, {credentials: 'same-origin', headers: {Accept: 'application/json'}, signal});
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, `the console did not answer (${err.message})`);
  }
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    if (response.status === 401) emit('unauthorized', body?.error || 'unauthorized');
    throw new ApiError(body?.code || response.status, body?.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

/** Builds '/api/...?' with the non-empty parameters. */
export function apiPath(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== '' && value != null) query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// ---- the event stream -------------------------------------------------------------------------

let source = null;
let retryTimer = null;
let lastOverview = null;
let streamState = 'connecting';
let hadError = false;
/** The last version seen per resource (from 'changed'). */
const versions = {};

/** The last 'overview' the stream delivered (or null). */
export function latestOverview() {
  return lastOverview;
}

export function streamStatus() {
  return streamState;
}

function setState(state) {
  if (state === streamState) return;
  streamState = state;
  emit('status', state);
}

/**
 * Opens /api/stream once. When the connection comes back after an error, views get a 'changed'
 * with {all: true}: events may have been missed, so everything shown is fetched again.
 */
export function startStream() {
  if (source) return;
  source = new EventSource('/api/stream', {withCredentials: true});
  source.addEventListener('open', () => {
    setState('live');
    if (hadError) emit('changed', {versions: {...versions}, all: true});
    hadError = false;
  });
  source.addEventListener('changed', (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch { return; }
    // The event may carry every resource's version: pass on only those that moved.
    const moved = {};
    for (const [resource, version] of Object.entries(data.versions || {})) {
      if (versions[resource] !== version) moved[resource] = version;
      versions[resource] = version;
    }
    if (Object.keys(moved).length) emit('changed', {versions: moved, all: false});
  });
  source.addEventListener('overview', (event) => {
    try { lastOverview = JSON.parse(event.data); } catch { return; }
    emit('overview', lastOverview);
  });
  source.addEventListener('error', () => {
    hadError = true;
    if (source.readyState === EventSource.CLOSED) {
      // An HTTP error (401, 5xx): EventSource gives up; try again, and find out whether the
      // session is the reason.
      source = null;
      setState('offline');
      getJSON('/api/session').catch(() => {});
      clearTimeout(retryTimer);
      retryTimer = setTimeout(startStream, 5000);
    } else {
      setState('reconnecting');
    }
  });
}

/**
 * Calls fn(versionsMoved) when one of the resources moved (or after a reconnect), at most once per
 * minInterval ms, never concurrently: a change during a running fn runs it once more afterwards.
 */
export function onResourcesChanged(resources, fn, minInterval = 0) {
  const watched = new Set(resources);
  let running = false;
  let pending = false;
  let last = 0;
  let timer = null;
  const run = async () => {
    timer = null;
    if (running) { pending = true; return; }
    running = true;
    last = Date.now();
    try { await fn(); } catch (err) { console.error(err); }
    running = false;
    if (pending) { pending = false; schedule(); }
  };
  const schedule = () => {
    if (timer) return;
    const wait = Math.max(0, last + minInterval - Date.now());
    timer = setTimeout(run, wait);
  };
  const off = on('changed', ({versions: moved, all}) => {
    if (all || Object.keys(moved).some((r) => watched.has(r))) schedule();
  });
  return () => { off(); clearTimeout(timer); };
}
