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
  setText(el.querySelector('.comp-detail'), comp?.detail || (comp ? '' : 'not reported'));
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
  setAttr(el, 'title', `${node.name}: open the node`);
}

// ---- wires ------------------------------------------------------------------------------------

function rectIn(el, origin) {
  const r = el.getBoundingClientRect();
  return {left: r.left - origin.left, top: r.top - origin.top, right: r.right - origin.left,
    bottom: r.bottom - origin.top, cx: (r.left + r.right) / 2 - origin.left, cy: (r.top + r.bottom) / 2 - origin.top};
}

function line(x1, y1, x2, y2, cls, markers = 'end') {
  return s('line', {x1, y1, x2, y2, class: `wire ${cls}`,
    'marker-end': markers !== 'none' ? 'url(#arrow)' : null,
    'marker-start': markers === 'both' ? 'url(#arrow-start)' : null});
}

function path(d, cls) {
  return s('path', {d, class: `wire ${cls}`, fill: 'none'});
}

/**
 * Draws every wire from the boxes' positions: components -> API server, API server <-> store,
 * and the API server's trunk to one bus per row of nodes, with an arrow to each node.
 */
function drawWires(diagram, svg, flows) {
  const origin = diagram.getBoundingClientRect();
  svg.setAttribute('width', String(origin.width));
  svg.setAttribute('height', String(diagram.scrollHeight));
  const box = (name) => diagram.querySelector(`[data-testid="arch-component-${name}"]`);
  const api = rectIn(box('kube-apiserver'), origin);
  const out = [];
  for (const name of ['kube-scheduler', 'kube-controller-manager', 'cloud-controller-manager']) {
    const r = rectIn(box(name), origin);
    const x = Math.min(Math.max(r.cx, api.left + 24), api.right - 24);
    out.push(line(r.cx, r.bottom + 2, x, api.top - 3, `cp ${flows[name] ? 'flowing' : ''}`));
  }
  const store = rectIn(box('store'), origin);
  out.push(line(api.right + 3, api.cy, store.left - 3, store.cy, `store ${flows.store ? 'flowing' : ''}`, 'both'));

  const nodes = Array.from(diagram.querySelectorAll('.nodes > .node'));
  if (nodes.length) {
    const trunkX = 14;
    const rows = new Map();
    for (const el of nodes) {
      const r = rectIn(el, origin);
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
      const farthest = Math.max(...cards.map((r) => r.cx));
      out.push(path(`M ${trunkX} ${bus} H ${farthest}`, 'bus'));
      for (const r of cards) out.push(line(r.cx, bus, r.cx, r.top - 2, 'drop'));
    }
  }
  svg.replaceChildren(arrowDefs(), ...out);
}

function arrowDefs() {
  return s('defs', {},
    s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: 'auto-start-reverse'}, s('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'})),
    s('marker', {id: 'arrow-start', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: 'auto-start-reverse'}, s('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'})));
}

// ---- the page ---------------------------------------------------------------------------------

export function createArchitectureView(root) {
  const problems = problemsPanel({compact: true});
  const summary = h('div', {class: 'arch-summary'});
  const components = new Map(CONTROL_PLANE.map(([name, role]) => [name, createComponent(name, role)]));
  const extras = h('div', {class: 'cp-extras'});
  const controlPlane = h('div', {class: 'control-plane'},
    h('div', {class: 'zone-label'}, 'control plane'),
    h('div', {class: 'cp-grid'}, ...components.values()), extras);
  const nodes = h('div', {class: 'nodes'});
  const svg = s('svg', {class: 'wires', 'aria-hidden': 'true'});
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
    wireFrame = requestAnimationFrame(() => drawWires(diagram, svg, flows));
  };
  const resize = new ResizeObserver(scheduleWires);
  resize.observe(diagram);

  function render(overview) {
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

  function checkStale(overview) {
    const at = Date.parse(overview?.collectedAt || '');
    const old = !Number.isNaN(at) && Date.now() - at > 15000;
    stale.hidden = !old;
    stale.className = 'message warn';
    if (old) setText(stale, `These figures are from ${clock(overview.collectedAt)}: the console has not sent new ones since.`);
  }

  for (const el of components.values()) updateComponent(el, null);
  const offOverview = on('overview', render);
  const staleTimer = setInterval(() => checkStale(latestOverview()), 5000);
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
      resize.disconnect();
      cancelAnimationFrame(wireFrame);
      problems.destroy();
    },
  };
}
