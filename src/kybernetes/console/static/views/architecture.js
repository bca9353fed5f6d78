// The architecture page: the problems panel first, then the control plane and every node as a
// picture, kept live by the stream's 'overview' event (every 2 s). The console process sends the
// first 200 nodes; the rest are summarised in one card.

import {getJSON, latestOverview, on} from '../lib/api.js';
import {age, bytes, clock, h, healthClass, num, objectHref, s, setAttr, setText, syncKeyed} from '../lib/dom.js';
import {fraction} from '../lib/quantity.js';
import {problemsPanel} from './problems.js';

/** The five control-plane slots, in the picture's order, with what each one does. */
const CONTROL_PLANE = [
  ['kube-scheduler', 'assigns pending pods to nodes'],
  ['kube-controller-manager', 'drives objects to their spec'],
  ['cloud-controller-manager', 'nodes, load balancers, routes'],
  ['kube-apiserver', 'every read, write and watch'],
  ['store', 'where objects live'],
];

/** Figures unchanged for this long are said to be old. */
const STALE_MS = 15000;

/** Beyond this many nodes on the page, each is a small tile. */
const COMPACT_NODES = 24;

const RATE_LABELS = {
  requestsPerSecond: 'requests/s', watches: 'watches', inflight: 'in flight', objects: 'objects',
  dbSizeBytes: 'db size', attemptsPerSecond: 'attempts/s', pendingPods: 'pending pods', queueDepth: 'queue depth',
  addsPerSecond: 'adds/s',
};

/** The rate that makes a component's wire flow (data moving), by component. */
const FLOW_RATE = {
  'kube-scheduler': 'attemptsPerSecond', 'kube-controller-manager': 'addsPerSecond',
  'cloud-controller-manager': null, store: 'requestsPerSecond',
};

function rateLabel(key) {
  return RATE_LABELS[key] || key.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

function rateValue(key, value) {
  return key === 'dbSizeBytes' ? bytes(value) : num(value);
}

// ---- control plane ----------------------------------------------------------------------------

function createComponent(name, role) {
  return h('div', {class: `comp comp-${name} health-unknown`, testid: `arch-component-${name}`},
    h('div', {class: 'comp-head'}, h('span', {class: 'dot', 'aria-hidden': 'true'}), h('b', {}, name),
      h('span', {class: 'health-word'})),
    h('div', {class: 'role'}, role),
    h('div', {class: 'rates'}),
    h('div', {class: 'comp-lease'}),
    h('div', {class: 'comp-detail'}));
}

function updateComponent(el, comp) {
  const health = comp?.health || 'unknown';
  const cls = `comp comp-${el.dataset.testid.slice('arch-component-'.length)} health-${healthClass(health)}`;
  if (el.className !== cls) el.className = cls;
  setText(el.querySelector('.health-word'), health);
  const rates = Object.entries(comp?.rates || {});
  const box = el.querySelector('.rates');
  if (box.childElementCount !== rates.length) {
    box.replaceChildren(...rates.map(() => h('div', {class: 'rate'}, h('b'), h('span'))));
  }
  rates.forEach(([key, value], i) => {
    setText(box.children[i].firstChild, rateValue(key, value));
    setText(box.children[i].lastChild, rateLabel(key));
  });
  const lease = comp?.holder ? `leader ${comp.holder}${comp.renewed ? ` · renewed ${age(comp.renewed)} ago` : ''}` : '';
  setText(el.querySelector('.comp-lease'), lease);
  // The detail often names the lease's holder again ("lease renewed by X"): said once is enough.
  const detail = comp?.holder && comp?.detail?.includes(comp.holder) ? '' : comp?.detail;
  setText(el.querySelector('.comp-detail'), detail || (comp ? '' : 'not reported'));
  setAttr(el, 'title', comp?.detail || null);
}

// ---- nodes ------------------------------------------------------------------------------------

function bar(label) {
  return h('div', {class: `bar bar-${label}`},
    h('span', {class: 'bar-label'}, label), h('span', {class: 'bar-track'}, h('span', {class: 'bar-fill'})),
    h('span', {class: 'bar-text'}));
}

function setBar(el, part, total, text) {
  const f = fraction(part, total);
  el.hidden = f == null && !text;
  const fill = el.querySelector('.bar-fill');
  const width = `${Math.round((f ?? 0) * 100)}%`;
  if (fill.style.width !== width) fill.style.width = width;
  fill.className = `bar-fill${f != null && f > 0.9 ? ' high' : ''}`;
  setText(el.querySelector('.bar-text'), text);
}

function createNode(node) {
  return h('a', {class: 'node', testid: `arch-node-${node.name}`, href: objectHref('nodes', '', node.name)},
    h('div', {class: 'node-head'}, h('span', {class: 'dot', 'aria-hidden': 'true'}), h('b', {class: 'node-name'}),
      h('span', {class: 'ready-word'})),
    h('ul', {class: 'parts'},
      h('li', {class: 'part-kubelet'}, h('span', {class: 'dot'}), 'kubelet ', h('span', {class: 'muted'})),
      h('li', {class: 'part-runtime'}, h('span', {class: 'dot'}), 'runtime ', h('span', {class: 'muted'})),
      h('li', {class: 'part-proxy'}, h('span', {class: 'dot'}), 'kube-proxy ', h('span', {class: 'muted'}))),
    bar('pods'), bar('cpu'), bar('mem'),
    h('div', {class: 'conditions'}));
}

function updateNode(el, node) {
  const ready = node.ready === true ? 'ok' : node.ready === false ? 'bad' : 'unknown';
  const cls = `node health-${ready}`;
  if (el.className !== cls) el.className = cls;
  setText(el.querySelector('.node-name'), node.name);
  setText(el.querySelector('.ready-word'), node.ready === true ? 'Ready' : node.ready === false ? 'NotReady' : 'Unknown');
  const part = (name, health, text) => {
    const li = el.querySelector(`.part-${name}`);
    li.firstChild.className = `dot health-${healthClass(health)}`;
    setText(li.lastChild, text || '');
  };
  part('kubelet', node.kubelet?.health, node.kubelet?.version);
  part('runtime', node.runtime ? (node.ready === false ? 'unknown' : 'ok') : 'unknown', node.runtime);
  part('proxy', node.proxy?.health, node.proxy?.health && node.proxy.health !== 'ok' ? node.proxy.health : '');
  const podsAllocatable = node.allocatable?.pods;
  setBar(el.querySelector('.bar-pods'), String(node.pods ?? 0), podsAllocatable,
    `${node.pods ?? 0}${podsAllocatable ? `/${podsAllocatable}` : ''} · ${node.podsRunning ?? 0} running`);
  const usage = node.usage;
  setBar(el.querySelector('.bar-cpu'), usage?.cpu, node.allocatable?.cpu,
    usage ? `${usage.cpu} of ${node.allocatable?.cpu ?? '?'}` : `${node.allocatable?.cpu ?? '?'} allocatable`);
  setBar(el.querySelector('.bar-mem'), usage?.memory, node.allocatable?.memory,
    usage ? `${usage.memory} of ${node.allocatable?.memory ?? '?'}` : `${node.allocatable?.memory ?? '?'} allocatable`);
  const notable = (node.conditions || []).filter((c) =>
    (c.type === 'Ready' && c.status !== 'True') || (c.type !== 'Ready' && c.status === 'True'));
  setText(el.querySelector('.conditions'),
    notable.map((c) => (c.type === 'Ready' ? `${c.reason || 'NotReady'}` : c.type)).join(' · '));
  setAttr(el, 'title', [
    `${node.name}: ${node.ready === true ? 'Ready' : node.ready === false ? 'NotReady' : 'readiness unknown'}`,
    `kubelet ${node.kubelet?.version || ''} (${node.kubelet?.health || 'unknown'})`,
    `runtime ${node.runtime || 'unknown'}`, `kube-proxy ${node.proxy?.health || 'unknown'}`,
    `${node.pods ?? 0} pods, ${node.podsRunning ?? 0} running`,
    usage ? `cpu ${usage.cpu} of ${node.allocatable?.cpu ?? '?'}` : '',
    usage ? `memory ${usage.memory} of ${node.allocatable?.memory ?? '?'}` : '',
  ].filter(Boolean).join('\n'));
}

// ---- wires ------------------------------------------------------------------------------------

function rectIn(el, origin) {
  const r = el.getBoundingClientRect();
  return {left: r.left - origin.left, top: r.top - origin.top, right: r.right - origin.left,
    bottom: r.bottom - origin.top, cx: (r.left + r.right) / 2 - origin.left, cy: (r.top + r.bottom) / 2 - origin.top};
}

function line(x1, y1, x2, y2, cls, markers = 'end', prefix = cls.startsWith('drop') ? 'nodes' : 'cp') {
  return s('line', {x1, y1, x2, y2, class: `wire ${cls}`,
    'marker-end': markers !== 'none' ? `url(#${prefix}-arrow)` : null,
    'marker-start': markers === 'both' ? `url(#${prefix}-arrow-start)` : null});
}

function path(d, cls) {
  return s('path', {d, class: `wire ${cls}`, fill: 'none'});
}

/**
 * The control plane's wires (components -> API server, API server <-> store) in their own small SVG
 * inside the control-plane box: the flowing ones animate, and only that box repaints.
 */
function drawControlPlaneWires(controlPlane, svg, flows) {
  const origin = controlPlane.getBoundingClientRect();
  svg.setAttribute('width', String(origin.width));
  svg.setAttribute('height', String(origin.height));
  const box = (name) => controlPlane.querySelector(`[data-testid="arch-component-${name}"]`);
  const api = rectIn(box('kube-apiserver'), origin);
  const out = [];
  for (const name of ['kube-scheduler', 'kube-controller-manager', 'cloud-controller-manager']) {
    const r = rectIn(box(name), origin);
    const x = Math.min(Math.max(r.cx, api.left + 24), api.right - 24);
    out.push(line(r.cx, r.bottom + 2, x, api.top - 3, `cp ${flows[name] ? 'flowing' : ''}`));
  }
  const store = rectIn(box('store'), origin);
  out.push(line(api.right + 3, api.cy, store.left - 3, store.cy, `store ${flows.store ? 'flowing' : ''}`, 'both'));
  svg.replaceChildren(arrowDefs('cp'), ...out);
}

/**
 * The API server's trunk to one bus per row of nodes, with an arrow down to each node. Drawn again
 * only when the layout moved (another set of nodes, another width, a taller control plane).
 */
function drawNodeWires(diagram, svg) {
  const origin = diagram.getBoundingClientRect();
  const api = rectIn(diagram.querySelector('[data-testid="arch-component-kube-apiserver"]'), origin);
  const nodes = Array.from(diagram.querySelectorAll('.nodes > .node'));
  const rects = nodes.map((el) => rectIn(el, origin));
  const places = rects.map((r) => `${Math.round(r.left)},${Math.round(r.top)}`).join(';');
  const layout = `${Math.round(origin.width)}|${Math.round(api.cy)}|${places}`;
  if (svg.dataset.layout === layout) return;
  svg.dataset.layout = layout;
  svg.setAttribute('width', String(origin.width));
  svg.setAttribute('height', String(diagram.scrollHeight));
  const out = [];
  if (rects.length) {
    const trunkX = 14;
    const rows = new Map();
    for (const r of rects) {
      const key = Math.round(r.top);
      if (!rows.has(key)) rows.set(key, []);
      rows.get(key).push(r);
    }
    const tops = [...rows.keys()].sort((a, b) => a - b);
    const lastBus = tops[tops.length - 1] - 12;
    out.push(path(`M ${api.left - 3} ${api.cy} H ${trunkX} V ${lastBus}`, 'trunk'));
    for (const top of tops) {
      const cards = rows.get(top);
      const bus = top - 12;
      out.push(path(`M ${trunkX} ${bus} H ${Math.max(...cards.map((r) => r.cx))}`, 'bus'));
      for (const r of cards) out.push(line(r.cx, bus, r.cx, r.top - 2, 'drop'));
    }
  }
  svg.replaceChildren(arrowDefs('nodes'), ...out);
}

function arrowDefs(prefix) {
  // Arrowheads of one size whatever the wire's width (userSpaceOnUse).
  const marker = (id) => s('marker', {id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9,
    markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse'},
  s('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'}));
  return s('defs', {}, marker(`${prefix}-arrow`), marker(`${prefix}-arrow-start`));
}

// ---- the page ---------------------------------------------------------------------------------

export function createArchitectureView(root) {
  const problems = problemsPanel({compact: true});
  const summary = h('div', {class: 'arch-summary'});
  const components = new Map(CONTROL_PLANE.map(([name, role]) => [name, createComponent(name, role)]));
  const extras = h('div', {class: 'cp-extras'});
  const cpSvg = s('svg', {class: 'wires cp-wires', 'aria-hidden': 'true'});
  const controlPlane = h('div', {class: 'control-plane'}, cpSvg,
    h('div', {class: 'zone-label'}, 'control plane'),
    h('div', {class: 'cp-grid'}, ...components.values()), extras);
  const nodes = h('div', {class: 'nodes'});
  const svg = s('svg', {class: 'wires node-wires', 'aria-hidden': 'true'});
  const diagram = h('div', {class: 'diagram'}, svg, controlPlane,
    h('div', {class: 'zone-label nodes-label'}, 'nodes · kubelet, container runtime, kube-proxy'), nodes);
  const stale = h('div', {class: 'message', hidden: true});
  root.append(h('section', {class: 'view arch-view'},
    problems.el,
    h('section', {class: 'panel arch-panel', 'aria-label': 'Architecture'},
      h('div', {class: 'panel-head'}, h('h2', {}, 'Architecture'), summary), stale, diagram)));

  let wireFrame = 0;
  let flows = {};
  const scheduleWires = () => {
    cancelAnimationFrame(wireFrame);
    wireFrame = requestAnimationFrame(() => {
      drawControlPlaneWires(controlPlane, cpSvg, flows);
      drawNodeWires(diagram, svg);
    });
  };
  const resize = new ResizeObserver(scheduleWires);
  // The flowing wires' dashes advance 4 times a second (not at all when the user asked for less motion).
  const still = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches;
  let flowStep = 0;
  const flowTimer = still ? 0 : setInterval(() => {
    if (document.hidden || !Object.values(flows).some(Boolean)) return;
    flowStep = (flowStep + 1) % 4;
    cpSvg.style.setProperty('--flow-offset', String(-flowStep * 2.75));
  }, 250);
  resize.observe(diagram);

  let onPage = null;  // the overview shown
  function render(overview) {
    onPage = overview;
    const byName = new Map((overview.controlPlane || []).map((c) => [c.name, c]));
    for (const [name, el] of components) updateComponent(el, byName.get(name));
    const others = (overview.controlPlane || []).filter((c) => !components.has(c.name));
    syncKeyed(extras, others, (c) => c.name, (c) => createComponent(c.name, ''), updateComponent);
    flows = {};
    for (const [name, key] of Object.entries(FLOW_RATE)) {
      const comp = byName.get(name === 'store' ? 'kube-apiserver' : name);
      flows[name] = key ? (comp?.rates?.[key] ?? 0) > 0 : false;
    }
    const shown = overview.nodes || [];
    nodes.classList.toggle('compact', shown.length > COMPACT_NODES);
    const total = overview.nodeCount ?? shown.length;
    const items = [...shown];
    if (total > shown.length) items.push({more: total - shown.length});
    if (!total) items.push({none: true});
    syncKeyed(nodes, items, (n) => (n.more ? '#more' : n.none ? '#none' : n.name),
      (n) => (n.more || n.none ? h('a', {class: 'node summary-card', href: '#/nodes'}) : createNode(n)),
      (el, n) => {
        if (n.more) {
          setText(el, `+ ${n.more.toLocaleString()} more nodes (${(overview.nodesNotReady ?? 0).toLocaleString()} ` +
            'not ready in all) · see the Nodes list');
        } else if (n.none) {
          setText(el, 'No nodes registered yet.');
        } else {
          updateNode(el, n);
        }
      });
    setText(summary, `${total.toLocaleString()} node${total === 1 ? '' : 's'} · ` +
      `${(overview.nodesNotReady ?? 0).toLocaleString()} not ready · ${(overview.podCount ?? 0).toLocaleString()} pods` +
      (overview.collectedAt ? ` · collected ${clock(overview.collectedAt)}` : ''));
    checkStale(overview);
    scheduleWires();
  }

  // Stale: the same collection for 15 s by this browser's clock (the console's may differ).
  let collectedAt = null;
  let collectedSeen = 0;
  function checkStale(overview) {
    if (!overview) return;
    if (overview.collectedAt !== collectedAt) {
      collectedAt = overview.collectedAt;
      collectedSeen = Date.now();
    }
    const old = Date.now() - collectedSeen > STALE_MS;
    stale.hidden = !old;
    stale.className = 'message warn';
    if (old) setText(stale, `These figures are from ${clock(overview.collectedAt)}: the console has not sent new ones since.`);
  }

  for (const el of components.values()) updateComponent(el, null);
  const offOverview = on('overview', render);
  const staleTimer = setInterval(() => checkStale(onPage), 5000);
  const first = latestOverview();
  if (first) {
    render(first);
  } else {
    setText(summary, 'loading…');
    getJSON('/api/overview').then((data) => { if (!latestOverview()) render(data); }, (err) => {
      stale.hidden = false;
      stale.className = 'message error';
      setText(stale, `Could not read the overview: ${err.message}`);
    });
  }
  scheduleWires();

  return {
    destroy() {
      offOverview();
      clearInterval(staleTimer);
      clearInterval(flowTimer);
      resize.disconnect();
      cancelAnimationFrame(wireFrame);
      problems.destroy();
    },
  };
}
