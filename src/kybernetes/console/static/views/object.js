// One object: a summary (owners, labels, conditions; for pods the containers), for pods a streamed
// Logs panel, its events, its YAML. Fetched again when its resource's version moves.

import {ApiError, apiPath, getJSON, onResourcesChanged} from '../lib/api.js';
import {
  CLUSTER_SCOPED, JOURNEY_RESOURCES, age, clock, h, journeyHref, objectHref, resourceOf, setText, statusClass,
} from '../lib/dom.js';
import {buildHash} from '../lib/router.js';
import {logsPanel} from './logs.js';

/** The list page an object's resource belongs to (in its namespace). */
export function listHref(resource, namespace) {
  const ns = namespace && namespace !== '_' ? namespace : '';
  const [route, kind] = {
    pods: ['pods', ''], nodes: ['nodes', ''], namespaces: ['nodes', 'namespaces'], services: ['services', ''],
    persistentvolumeclaims: ['services', 'persistentvolumeclaims'], events: ['events', ''],
    deployments: ['workloads', ''],
  }[resource] || ['workloads', resource];
  return buildHash(route, [], {kind, ns: route === 'nodes' ? '' : ns});
}

function chips(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return h('span', {class: 'muted'}, 'none');
  return entries.map(([k, v]) => h('span', {class: 'chip'}, `${k}=${v}`));
}

function row(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

function ownerLinks(meta) {
  return (meta.ownerReferences || []).map((ref) => {
    const resource = resourceOf(ref.kind);
    const text = `${ref.kind} ${ref.name}`;
    return resource ? h('a', {href: objectHref(resource, meta.namespace, ref.name), class: 'chip link'}, text)
      : h('span', {class: 'chip'}, text);
  });
}

function conditionsTable(conditions) {
  if (!conditions?.length) return null;
  return h('table', {class: 'mini'},
    h('thead', {}, h('tr', {}, ['Condition', 'Status', 'Reason', 'Since', 'Message'].map((t) => h('th', {}, t)))),
    h('tbody', {}, conditions.map((c) => h('tr', {},
      h('td', {}, c.type),
      h('td', {class: c.status === 'True' ? (/Pressure|Unavailable/.test(c.type) ? 'tone-bad' : 'tone-ok')
        : c.status === 'False' && !/Pressure|Unavailable/.test(c.type) ? 'tone-warn' : ''}, c.status),
      h('td', {}, c.reason || ''),
      h('td', {title: c.lastTransitionTime || ''}, c.lastTransitionTime ? age(c.lastTransitionTime) : ''),
      h('td', {class: 'wrap-cell'}, c.message || '')))));
}

function containerState(status) {
  const st = status.state || {};
  if (st.running) return [`Running since ${clock(st.running.startedAt)}`, 'ok'];
  if (st.waiting) return [st.waiting.reason || 'Waiting', statusClass(st.waiting.reason || 'Waiting') || 'warn'];
  if (st.terminated) {
    const t = st.terminated;
    return [`${t.reason || 'Terminated'} (exit ${t.exitCode})`, t.exitCode === 0 ? 'ok' : 'bad'];
  }
  return ['unknown', 'warn'];
}

function containersTable(pod) {
  const statuses = [...(pod.status?.initContainerStatuses || []), ...(pod.status?.containerStatuses || [])];
  const specs = [...(pod.spec?.initContainers || []), ...(pod.spec?.containers || [])];
  if (!specs.length) return null;
  const byName = new Map(statuses.map((st) => [st.name, st]));
  return h('table', {class: 'mini'},
    h('thead', {}, h('tr', {}, ['Container', 'Image', 'Ready', 'Restarts', 'State'].map((t) => h('th', {}, t)))),
    h('tbody', {}, specs.map((spec) => {
      const st = byName.get(spec.name);
      const [text, tone] = st ? containerState(st) : ['not created', 'warn'];
      return h('tr', {}, h('td', {}, spec.name), h('td', {class: 'mono'}, spec.image || ''),
        h('td', {}, st ? (st.ready ? 'yes' : 'no') : ''), h('td', {}, st ? String(st.restartCount ?? 0) : ''),
        h('td', {class: `tone-${tone}`}, text));
    })));
}

function summary(resource, obj) {
  const meta = obj.metadata || {};
  const facts = [
    ...row('Kind', `${obj.kind || ''} · ${obj.apiVersion || ''}`),
    meta.namespace ? row('Namespace', meta.namespace) : [],
    ...row('Created', h('span', {title: meta.creationTimestamp || ''},
      `${clock(meta.creationTimestamp)} (${age(meta.creationTimestamp)} ago)`)),
    ...row('Labels', chips(meta.labels)),
    meta.ownerReferences?.length ? row('Owners', ownerLinks(meta)) : [],
    meta.deletionTimestamp ? row('Deleting', `since ${clock(meta.deletionTimestamp)}`) : [],
  ];
  if (resource === 'pods') {
    const node = obj.spec?.nodeName;
    facts.push(...row('Phase', h('span', {class: `tone-${statusClass(obj.status?.phase)}`}, obj.status?.phase || '')));
    facts.push(...row('Node', node ? h('a', {href: objectHref('nodes', '', node)}, node) : h('span', {class: 'muted'},
      'not scheduled')));
    if (obj.status?.podIP) facts.push(...row('Pod IP', obj.status.podIP));
    if (obj.status?.qosClass) facts.push(...row('QoS', obj.status.qosClass));
  }
  const st = obj.status || {};
  const spec = obj.spec || {};
  if (['deployments', 'replicasets', 'statefulsets'].includes(resource)) {
    facts.push(...row('Replicas', `${st.readyReplicas ?? 0}/${spec.replicas ?? 0} ready · ` +
      `${st.updatedReplicas ?? st.fullyLabeledReplicas ?? 0} up to date · ${st.availableReplicas ?? 0} available`));
  }
  if (resource === 'daemonsets') {
    facts.push(...row('Pods', `${st.numberReady ?? 0}/${st.desiredNumberScheduled ?? 0} ready · ` +
      `${st.updatedNumberScheduled ?? 0} up to date · ${st.numberAvailable ?? 0} available`));
  }
  if (resource === 'jobs') {
    facts.push(...row('Pods', `${st.succeeded ?? 0}/${spec.completions ?? 1} succeeded · ${st.active ?? 0} active · ` +
      `${st.failed ?? 0} failed (backoff limit ${spec.backoffLimit ?? 6})`));
  }
  if (spec.selector?.matchLabels || (resource === 'services' && spec.selector)) {
    facts.push(...row('Selector', chips(spec.selector.matchLabels || spec.selector)));
  }
  if (resource === 'services') {
    const addresses = (spec.clusterIPs || [spec.clusterIP]).filter(Boolean).join(', ');
    facts.push(...row('Service', `${spec.type || 'ClusterIP'} ${addresses}`));
    const port = (p) => `${p.name ? `${p.name} ` : ''}${p.port}${p.targetPort != null ? `→${p.targetPort}` : ''}` +
      `/${p.protocol || 'TCP'}`;
    facts.push(...row('Ports', (spec.ports || []).map((p) => h('span', {class: 'chip'}, port(p)))));
  }
  if (resource === 'nodes') {
    const addresses = (obj.status?.addresses || []).map((a) => `${a.type} ${a.address}`).join(', ');
    if (addresses) facts.push(...row('Addresses', addresses));
    const info = obj.status?.nodeInfo;
    if (info) facts.push(...row('Versions', `kubelet ${info.kubeletVersion} · ${info.containerRuntimeVersion}`));
    const cap = obj.status?.capacity || {};
    const alloc = obj.status?.allocatable || {};
    facts.push(...row('Capacity', ['cpu', 'memory', 'pods'].map((k) => `${k} ${cap[k] ?? '?'} (allocatable ${alloc[k] ?? '?'})`)
      .join(' · ')));
    if (obj.spec?.taints?.length) {
      facts.push(...row('Taints', obj.spec.taints.map((t) => h('span', {class: 'chip'},
        `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`))));
    }
  }
  return h('div', {class: 'summary-body'}, h('dl', {class: 'facts'}, facts),
    resource === 'pods' ? containersTable(obj) : null,
    conditionsTable(obj.status?.conditions));
}

/**
 * The object's events, newest first: the console lists events whose name contains the object's
 * (events are named "<object>.<suffix>"), and of those the page keeps the ones about this object.
 */
function eventsPanel(resource, namespace, name, kind) {
  const body = h('tbody');
  const status = h('p', {class: 'panel-status'}, 'Loading…');
  const el = h('section', {class: 'panel events-panel', 'aria-label': 'Events'},
    h('div', {class: 'panel-head'}, h('h2', {}, 'Events')), status,
    h('table', {class: 'mini', hidden: true},
      h('thead', {}, h('tr', {}, ['Last seen', 'Type', 'Reason', 'Message'].map((t) => h('th', {}, t)))), body));
  let about = '';
  async function load() {
    if (!about) return;
    let data;
    try {
      data = await getJSON(apiPath('/api/list/events', {namespace: CLUSTER_SCOPED.has(resource) ? '' : namespace,
        q: name, sort: 'lastSeen', limit: 100}));
    } catch (err) {
      setText(status, `Could not list events: ${err.message}`);
      return;
    }
    const rows = (data.items || []).filter((row) => row.object === about);
    el.querySelector('table').hidden = !rows.length;
    status.hidden = rows.length > 0;
    setText(status, data.forbidden ? 'Forbidden: your credentials may not list events.' : 'No events about it.');
    body.replaceChildren(...rows.map((row) => h('tr', {},
      h('td', {}, row.lastSeen || ''), h('td', {class: row.type === 'Warning' ? 'tone-warn' : ''}, row.type || ''),
      h('td', {}, row.reason || ''), h('td', {class: 'wrap-cell'}, row.message || ''))));
  }
  const off = onResourcesChanged(['events'], load, 2000);
  return {
    el,
    /** Called with the object's kind once it is known ("pod/web-1" is how events name it). */
    setKind(objKind) {
      const next = `${String(objKind || kind).toLowerCase()}/${name}`;
      if (next !== about) {
        about = next;
        load();
      }
    },
    destroy: off,
  };
}

export function createObjectView(root, route) {
  const [resource = '', nsArg = '_', name = ''] = route.args;
  const namespace = nsArg === '_' ? '' : nsArg;
  const apiUrl = `/api/object/${[resource, nsArg || '_', name].map(encodeURIComponent).join('/')}`;
  const message = h('div', {class: 'message', hidden: true});
  const summaryPanel = h('section', {class: 'panel summary-panel', 'aria-label': 'Summary'},
    h('div', {class: 'panel-head'}, h('h2', {}, 'Summary')), h('div', {class: 'summary-body'}, 'Loading…'));
  const yaml = h('pre', {class: 'yaml-view', testid: 'yaml-view', tabindex: '0', 'aria-label': 'YAML'});
  const copy = h('button', {type: 'button', class: 'btn btn-small'}, 'Copy');
  copy.addEventListener('click', () => navigator.clipboard?.writeText(yaml.textContent).then(
    () => { setText(copy, 'Copied'); setTimeout(() => setText(copy, 'Copy'), 1500); }, () => {}));
  const yamlPanel = h('section', {class: 'panel yaml-panel', 'aria-label': 'YAML'},
    h('div', {class: 'panel-head'}, h('h2', {}, 'YAML'), copy), yaml);
  const logsSlot = h('div', {class: 'logs-slot'});
  const events = resource === 'events' ? null : eventsPanel(resource, namespace, name, '');
  const crumbs = h('div', {class: 'crumbs'}, h('a', {href: listHref(resource, namespace)}, resource),
    namespace ? [' / ', h('a', {href: listHref(resource, namespace)}, namespace)] : null);
  root.append(h('section', {class: 'view object-view'},
    h('header', {class: 'view-head'}, crumbs, h('h1', {}, name),
      JOURNEY_RESOURCES.has(resource)
        ? h('a', {class: 'btn', href: journeyHref(resource, namespace, name), testid: 'open-journey'}, 'Journey →') : null),
    message, summaryPanel, logsSlot, events?.el, yamlPanel));

  let logs = null;
  let gone = false;
  let shownVersion = null;

  async function load() {
    let data;
    try {
      data = await getJSON(apiUrl);
    } catch (err) {
      message.hidden = false;
      if (err instanceof ApiError && err.code === 404) {
        gone = true;
        message.className = 'message warn';
        const last = yaml.textContent ? ' any more (deleted): the last state seen is below' : '';
        setText(message, `${resource}/${name} does not exist${last}.`);
        yaml.classList.add('stale');
      } else {
        message.className = 'message error';
        setText(message, `Could not read ${resource}/${name}: ${err.message}`);
      }
      return;
    }
    if (gone) {
      gone = false;
      shownVersion = null;
      yaml.classList.remove('stale');
    }
    message.hidden = true;
    const obj = data.object || {};
    // The stream names the resource that moved, not the object: most calls find it unchanged.
    const version = obj.metadata?.resourceVersion;
    if (version && version === shownVersion) return;
    shownVersion = version;
    summaryPanel.querySelector('.summary-body').replaceWith(summary(resource, obj));
    events?.setKind(obj.kind);
    if (yaml.textContent !== data.yaml) {
      const top = yaml.scrollTop;
      yaml.textContent = data.yaml || '';
      yaml.scrollTop = top;
    }
    if (resource === 'pods') {
      if (!logs) {
        logs = logsPanel(namespace, name, obj);
        logsSlot.append(logs.el);
      } else {
        logs.podChanged(obj);
      }
    }
  }

  const offChanged = onResourcesChanged([resource], load, 1000);
  load();

  return {
    destroy() {
      offChanged();
      logs?.destroy();
      events?.destroy();
    },
  };
}
