// An object's journey through the system as a vertical timeline: accepted by the API server ->
// controllers -> scheduler -> kubelet -> endpoints -> kube-proxy. Each stage (one per kind of step,
// data-testid="journey-stage-<stage>") lists its steps with actor, time and detail; for a pending
// pod the scheduler's stage holds every node's verdict and the smallest change that would help.

import {getJSON, onResourcesChanged} from '../lib/api.js';
import {clock, h, journeyHref, objectHref, resourceOf, statusClass} from '../lib/dom.js';
import {listHref} from './object.js';

const STAGES = [
  ['accepted', 'Accepted by the API server', 'authenticated, admitted, validated and stored'],
  ['controller', 'Controllers', 'owners create the objects the spec asks for'],
  ['scheduled', 'Scheduler', 'a node is chosen for each pod'],
  ['kubelet', 'Kubelet', 'image pulled, sandbox created, containers started, probes passed'],
  ['endpoints', 'Endpoints', "ready pods join their Services' EndpointSlices"],
  ['proxy', 'kube-proxy', "each node's rules send Service traffic to the pod"],
];

const VERDICT_NODES_SHOWN = 12;

function stageState(entries, failedScheduling) {
  if (failedScheduling) return 'failed';
  if (!entries.length) return 'unreached';
  if (entries.some((e) => e.ok === false)) return 'failed';
  if (entries.every((e) => e.ok === true)) return 'ok';
  if (entries.every((e) => !e.time)) return 'unreached';
  return 'waiting';
}

const STATE_WORDS = {ok: 'done', failed: 'failed', waiting: 'in progress', unreached: 'not reached'};

function entryView(entry, t0) {
  const t = Date.parse(entry.time || '');
  const delta = !Number.isNaN(t) && t0 != null ? `+${((t - t0) / 1000).toFixed(1)} s` : '';
  const tone = entry.ok === true ? 'ok' : entry.ok === false ? 'bad' : 'pending';
  const obj = entry.object;
  const resource = obj ? resourceOf(obj.kind) : '';
  return h('li', {class: `entry tone-${tone}`},
    h('div', {class: 'entry-when'},
      entry.time ? h('time', {datetime: entry.time, title: entry.time}, clock(entry.time)) : h('span', {class: 'muted'}, 'not yet'),
      delta ? h('span', {class: 'delta'}, delta) : null),
    h('div', {class: 'entry-what'},
      h('div', {class: 'entry-title'},
        h('span', {class: 'entry-mark', 'aria-hidden': 'true'}, tone === 'ok' ? '✓' : tone === 'bad' ? '✖' : '…'),
        entry.title || entry.stage),
      entry.actor ? h('div', {class: 'actor'}, 'by ', h('b', {}, entry.actor)) : null,
      entry.detail ? h('div', {class: 'entry-detail'}, entry.detail) : null,
      obj?.name ? (resource
        ? h('a', {class: 'chip link', href: objectHref(resource, obj.namespace, obj.name)}, `${obj.kind} ${obj.name}`)
        : h('span', {class: 'chip'}, `${obj.kind} ${obj.name}`)) : null));
}

/** A node's verdict as words, from either the contract's {verdict} or explain's {fits, plugin}. */
function verdictOf(node) {
  if (node.verdict) return String(node.verdict);
  if (node.fits === true) return 'fits';
  return node.plugin ? `rejected by ${node.plugin}` : 'rejected';
}

function schedulingView(scheduling, openKeys) {
  const nodes = scheduling.nodes || [];
  const groups = new Map();
  for (const node of nodes) {
    const reasons = (node.reasons || []).join('; ');
    const key = `${verdictOf(node)}|${reasons}`;
    if (!groups.has(key)) groups.set(key, {verdict: verdictOf(node), reasons, nodes: []});
    groups.get(key).nodes.push(node.node || node.name);
  }
  const sorted = [...groups.values()].sort((a, b) => b.nodes.length - a.nodes.length);
  const reason = scheduling.message || sorted.map((g) => `${g.nodes.length} node(s): ${g.reasons || g.verdict}`).join('; ')
    || 'The pod waits for the scheduler.';
  const fits = scheduling.fits || [];
  const details = h('details', {class: 'verdicts', open: openKeys.has('verdicts')},
    h('summary', {}, `Every node's verdict (${nodes.length} node${nodes.length === 1 ? '' : 's'}, ` +
      `${sorted.length} distinct)`),
    h('table', {class: 'mini'},
      h('thead', {}, h('tr', {}, ['Verdict', 'Reasons', 'Nodes'].map((t) => h('th', {}, t)))),
      h('tbody', {}, sorted.map((g) => h('tr', {},
        h('td', {class: g.verdict === 'fits' ? 'tone-ok' : 'tone-bad'}, g.verdict),
        h('td', {class: 'wrap-cell'}, g.reasons || '–'),
        h('td', {class: 'wrap-cell'}, `${g.nodes.length}: ${g.nodes.slice(0, VERDICT_NODES_SHOWN).join(', ')}` +
          (g.nodes.length > VERDICT_NODES_SHOWN ? `, … ${g.nodes.length - VERDICT_NODES_SHOWN} more` : '')))))));
  details.addEventListener('toggle', () => {
    if (details.open) openKeys.add('verdicts');
    else openKeys.delete('verdicts');
  });
  return h('div', {class: 'scheduling'},
    h('h4', {}, scheduling.pod ? `Why ${scheduling.pod} is not scheduled` : 'Why the pod is not scheduled'),
    h('p', {class: 'scheduling-reason', testid: 'scheduling-reason'}, reason),
    (scheduling.suggestions || []).length ? h('div', {class: 'suggestions'}, h('h4', {}, 'What would help'),
      h('ul', {}, scheduling.suggestions.map((text) => h('li', {}, text)))) : null,
    fits.length ? h('p', {class: 'fits'}, `Fits now on: ${fits.map((f) => (typeof f === 'string' ? f : f.node)).join(', ')}`)
      : null,
    nodes.length ? details : null);
}

function podsStrip(pods) {
  if (!pods?.length) return null;
  return h('section', {class: 'panel pods-strip', 'aria-label': 'Pods'},
    h('div', {class: 'panel-head'}, h('h2', {}, `Pods (${pods.length})`)),
    h('div', {class: 'chips'}, pods.map((pod) => h('a', {class: `chip link tone-${statusClass(pod.phase)}`,
      href: journeyHref('pods', pod.namespace, pod.name)},
    h('b', {}, pod.name), ` ${pod.phase || ''}${pod.node ? ` on ${pod.node}` : ''}`))));
}

export function createJourneyView(root, route) {
  const [resource = '', nsArg = '_', name = ''] = route.args;
  const namespace = nsArg === '_' ? '' : nsArg;
  const url = `/api/journey/${encodeURIComponent(resource)}/${encodeURIComponent(nsArg || '_')}/${encodeURIComponent(name)}`;
  const title = h('h1', {}, `Journey of ${name}`);
  const message = h('div', {class: 'message', hidden: true});
  const pods = h('div', {class: 'pods-slot'});
  const timeline = h('ol', {class: 'timeline', 'aria-label': 'Stages'});
  const updated = h('span', {class: 'muted updated'});
  root.append(h('section', {class: 'view journey-view'},
    h('header', {class: 'view-head'},
      h('div', {class: 'crumbs'}, h('a', {href: listHref(resource, namespace)}, resource),
        namespace ? ` / ${namespace}` : ''),
      title,
      h('a', {class: 'btn', href: objectHref(resource, namespace, name)}, 'Object and YAML'),
      updated),
    message, pods, timeline));
  const openKeys = new Set(['verdicts']);
  let loaded = false;

  function render(data) {
    const obj = data.object || {};
    title.textContent = `Journey of ${obj.kind || resource} ${obj.name || name}`;
    pods.replaceChildren(...[podsStrip(resource === 'pods' ? [] : (data.pods || []).map((p) => ({
      namespace: obj.namespace || namespace, ...p})))].filter(Boolean));
    const stages = data.stages || [];
    const times = stages.map((s) => Date.parse(s.time || '')).filter((t) => !Number.isNaN(t));
    const t0 = times.length ? Math.min(...times) : null;
    const known = new Set(STAGES.map(([id]) => id));
    const extra = [...new Set(stages.map((s) => s.stage).filter((id) => !known.has(id)))]
      .map((id) => [id, id, '']);
    const items = [...STAGES, ...extra].map(([id, heading, what], index) => {
      const entries = stages.filter((s) => s.stage === id).sort((a, b) =>
        (Date.parse(a.time || '') || Infinity) - (Date.parse(b.time || '') || Infinity));
      const pending = id === 'scheduled' && data.scheduling;
      const state = stageState(entries, pending);
      return h('li', {class: `stage state-${state}`, testid: `journey-stage-${id}`},
        h('div', {class: 'stage-marker', 'aria-hidden': 'true'}, String(index + 1)),
        h('div', {class: 'stage-body'},
          h('div', {class: 'stage-head'}, h('h3', {}, heading), h('span', {class: 'stage-state'}, STATE_WORDS[state]),
            h('span', {class: 'stage-what'}, what)),
          entries.length ? h('ol', {class: 'entries'}, entries.map((e) => entryView(e, t0))) : null,
          pending ? schedulingView(data.scheduling, openKeys) : null));
    });
    timeline.replaceChildren(...items);
    updated.textContent = `updated ${clock(new Date().toISOString())}`;
  }

  async function load() {
    try {
      const data = await getJSON(url);
      message.hidden = true;
      render(data);
      loaded = true;
    } catch (err) {
      message.hidden = false;
      message.className = `message ${err.code === 404 ? 'warn' : 'error'}`;
      message.textContent = err.code === 404
        ? `${resource}/${name} does not exist${loaded ? ' any more: the last journey seen is below' : ''}.`
        : `Could not read the journey: ${err.message}`;
    }
  }

  const off = onResourcesChanged([resource, 'pods', 'events', 'endpointslices', 'replicasets'], load, 2000);
  load();
  return {destroy: off};
}
