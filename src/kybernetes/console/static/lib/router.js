// Hash routes: '#/pods?ns=default&q=web' -> {name: 'pods', args: [], params: URLSearchParams}.
// '#/journey/pods/default/web-1' -> {name: 'journey', args: ['pods', 'default', 'web-1'], ...}.

export const DEFAULT_ROUTE = 'architecture';

/** Parses a location hash (default: the current one). */
export function parseHash(hash = location.hash) {
  const text = hash.replace(/^#\/?/, '');
  const [path, query = ''] = text.split('?', 2);
  const parts = path.split('/').filter(Boolean).map((part) => {
    try { return decodeURIComponent(part); } catch { return part; }
  });
  return {name: parts[0] || DEFAULT_ROUTE, args: parts.slice(1), params: new URLSearchParams(query)};
}

/** '#/name/arg1/arg2?k=v' with empty parameters left out. */
export function buildHash(name, args = [], params = {}) {
  const path = [name, ...args.map((arg) => encodeURIComponent(arg))].join('/');
  const query = new URLSearchParams();
  const entries = params instanceof URLSearchParams ? params.entries() : Object.entries(params);
  for (const [key, value] of entries) {
    if (value !== '' && value != null) query.set(key, String(value));
  }
  const text = query.toString();
  return `#/${path}${text ? `?${text}` : ''}`;
}

let onNavigate = () => {};

/** The app registers the function that renders the current hash. */
export function setNavigateHandler(fn) {
  onNavigate = fn;
}

/**
 * Goes to a hash. replace: true rewrites the current history entry (typing in the search box)
 * instead of adding one; the page is rendered either way.
 */
export function navigate(hash, {replace = false} = {}) {
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(null, '', hash);
    onNavigate();
  } else {
    location.hash = hash;  // 'hashchange' renders
  }
}
