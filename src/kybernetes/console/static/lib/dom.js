// DOM helpers shared by every view: element builders, keyed list updates and formatting.
// No framework: views build elements with h() and update them in place.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'testid') el.setAttribute('data-testid', value);
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Appends children (nodes, strings, numbers, nested arrays; null/false are skipped). */
export function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** h('a', {href, class, testid: 'x', onclick}, ...children): one HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) setAttrs(el, attrs);
  return append(el, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  if (attrs) setAttrs(el, attrs);
  return append(el, children);
}

/** Sets textContent only when it differs (keeps selections and avoids layout work). */
export function setText(el, text) {
  const value = text == null ? '' : String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** Sets or removes an attribute only when it differs. */
export function setAttr(el, name, value) {
  if (value == null || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

/**
 * Keyed update of a container's children: items are matched to existing elements by key(item),
 * new ones are made by create(item), every element is passed to update(el, item), and the
 * children end up in the items' order. Elements for vanished keys are removed.
 */
export function syncKeyed(container, items, key, create, update) {
  const old = container._keyed || new Map();
  const next = new Map();
  const ordered = [];
  for (const item of items) {
    const k = key(item);
    let el = old.get(k);
    if (!el || next.has(k)) el = create(item);
    update(el, item);
    next.set(k, el);
    ordered.push(el);
  }
  container._keyed = next;
  // Move only when the order differs: replaceChildren would relayout every row.
  const current = container.children;
  let same = current.length === ordered.length;
  for (let i = 0; same && i < ordered.length; i++) same = current[i] === ordered[i];
  if (!same) container.replaceChildren(...ordered);
}

// ---- formatting -------------------------------------------------------------------------------

/** kubectl's age: 42s, 5m, 3h, 2d (from an RFC 3339 time; '' when absent). */
export function age(time, now = Date.now()) {
  if (!time) return '';
  const t = Date.parse(time);
  if (Number.isNaN(t)) return '';
  let secs = Math.max(0, Math.floor((now - t) / 1000));
  if (secs < 120) return `${secs}s`;
  const mins = Math.floor(secs / 60);
  if (mins < 120) return `${mins}m`;
  const hours = Math.floor(mins / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/** Local wall-clock time with seconds (and the date when not today). */
export function clock(time) {
  if (!time) return '';
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) return String(time);
  const hms = d.toLocaleTimeString([], {hour12: false});
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return hms;
  return `${d.toLocaleDateString()} ${hms}`;
}

/** A rate or count, compact: 0, 3, 12.5, 1.2k, 3.4M. */
export function num(value) {
  if (value == null || Number.isNaN(value)) return '–';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  if (Number.isInteger(value)) return String(value);
  return abs >= 100 ? value.toFixed(0) : abs >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** Bytes as KiB/MiB/GiB. */
export function bytes(value) {
  if (value == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 10 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/**
 * The colour class of a status word as kubectl prints it: 'ok' (Running, Ready, Completed, ...),
 * 'bad' (CrashLoopBackOff, Error, NotReady, Failed, ...), 'warn' (Pending, ContainerCreating, ...),
 * '' when it says nothing about health.
 */
export function statusClass(status) {
  const text = String(status ?? '');
  if (!text) return '';
  if (/BackOff|Err|Error|Fail|NotReady|OOMKilled|Evicted|Invalid|Lost|Unhealthy|Warning|Forbidden/i.test(text)) {
    return 'bad';
  }
  if (/SchedulingDisabled/.test(text)) return 'warn';  // a cordoned node: "Ready,SchedulingDisabled"
  if (/^(Running|Ready|Succeeded|Completed|Complete|Bound|Active|Available|True|Normal|ok)(,|$)/i.test(text)) {
    return 'ok';
  }
  if (/Pending|Creating|Initializing|Terminating|Unknown|Waiting|Init:|Suspended/i.test(text)) {
    return 'warn';
  }
  return '';
}

/** Health word ('ok' | 'failing' | 'unknown' | true/false/null) to a colour class. */
export function healthClass(health) {
  if (health === true || health === 'ok') return 'ok';
  if (health === false || health === 'failing') return 'bad';
  return 'unknown';
}

// Kinds as the API names them, to the console's resource paths.
const KIND_RESOURCES = {
  Pod: 'pods', Node: 'nodes', Namespace: 'namespaces', Deployment: 'deployments',
  ReplicaSet: 'replicasets', StatefulSet: 'statefulsets', DaemonSet: 'daemonsets', Job: 'jobs',
  CronJob: 'cronjobs', Service: 'services', Event: 'events', PersistentVolumeClaim: 'persistentvolumeclaims',
  EndpointSlice: 'endpointslices',
};

export const JOURNEY_RESOURCES = new Set(['deployments', 'statefulsets', 'jobs', 'daemonsets', 'replicasets', 'pods']);

export const CLUSTER_SCOPED = new Set(['nodes', 'namespaces']);

const LOWER_KIND_RESOURCES = Object.fromEntries(Object.entries(KIND_RESOURCES).map(([k, r]) => [k.toLowerCase(), r]));

/** The resource path for a kind ('Pod' or kubectl's 'pod' -> 'pods'), or '' when the console has none. */
export function resourceOf(kind) {
  return KIND_RESOURCES[kind] || LOWER_KIND_RESOURCES[String(kind || '').toLowerCase()] || '';
}

/** The console route of an object's page ('#/object/pods/default/web'); '_' stands for no namespace. */
export function objectHref(resource, namespace, name) {
  return `#/object/${resource}/${encodeURIComponent(namespace || '_')}/${encodeURIComponent(name)}`;
}

export function journeyHref(resource, namespace, name) {
  return `#/journey/${resource}/${encodeURIComponent(namespace || '_')}/${encodeURIComponent(name)}`;
}
