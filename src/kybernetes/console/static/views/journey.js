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

const STEPS_SHOWN = 12;

function deltaText(time, t0) {
  const t = Date.parse(time || '');
  return !Number.isNaN(t) && t0 != null ? `+${((t - t0) / 1000).toFixed(1)} s` : '';
}

/** The journey's own object: stages about it need no link to it. */
let journeyObject = null;

function objectChip(obj) {
  if (!obj?.name) return null;
  if (journeyObject && obj.kind === journeyObject.kind && obj.name === journeyObject.name) return null;
  const resource = resourceOf(obj.kind);
  const text = `${obj.kind} ${obj.name}`;
  return resource ? h('a', {class: 'chip link', href: objectHref(resource, obj.namespace, obj.name)}, text)
    : h('span', {class: 'chip'}, text);
}

/** A stage's dated parts (managers, created objects, events): the first few, the rest folded. */
function stepsView(steps, t0, openKeys, key) {
  if (!steps?.length) return null;
  const item = (step) => {
    const tone = step.ok === true ? 'ok' : step.ok === false ? 'bad' : 'pending';
    return h('li', {class: `step entry-${tone}`},
      h('span', {class: 'step-when', title: step.time || ''}, step.time ? clock(step.time) : '–',
        h('span', {class: 'delta'}, deltaText(step.time, t0))),
      h('span', {class: 'entry-mark', 'aria-hidden': 'true'}, tone === 'ok' ? '✓' : tone === 'bad' ? '✖' : '…'),
      h('span', {class: 'step-title'}, step.title || '',
        step.count > 1 ? h('span', {class: 'count'}, ` ×${step.count}`) : null),
      objectChip(step.object));
  };
  const list = h('ol', {class: 'steps'}, steps.slice(0, STEPS_SHOWN).map(item));
  if (steps.length <= STEPS_SHOWN) return list;
  // The rest are made when asked for: a Deployment of 10,000 pods has 10,000 steps.
  const rest = h('ol', {class: 'steps'});
  const more = h('details', {class: 'more-steps'}, h('summary', {}, `${steps.length - STEPS_SHOWN} more`), rest);
  more.addEventListener('toggle', () => {
    if (more.open && !rest.childElementCount) rest.append(...steps.slice(STEPS_SHOWN).map(item));
    if (more.open) openKeys.add(key);
    else openKeys.delete(key);
  });
  more.open = openKeys.has(key);  // kept open across refreshes
  return [list, more];
}

function entryView(entry, t0, openKeys) {
  const delta = deltaText(entry.time, t0);
  const tone = entry.ok === true ? 'ok' : entry.ok === false ? 'bad' : 'pending';
  return h('li', {class: `entry entry-${tone}`},
    h('div', {class: 'entry-when'},
      entry.time ? h('time', {datetime: entry.time, title: entry.time}, clock(entry.time))
        : h('span', {class: 'muted'}, 'not yet'),
      delta ? h('span', {class: 'delta'}, delta) : null),
    h('div', {class: 'entry-what'},
      h('div', {class: 'entry-title'},
        h('span', {class: 'entry-mark', 'aria-hidden': 'true'}, tone === 'ok' ? '✓' : tone === 'bad' ? '✖' : '…'),
        entry.title || entry.stage),
      entry.actor ? h('div', {class: 'actor'}, 'by ', h('b', {}, entry.actor)) : null,
      entry.detail ? h('div', {class: 'entry-detail'}, entry.detail) : null,
      objectChip(entry.object),
      stepsView(entry.steps, t0, openKeys, `steps-${entry.stage}`)));
}

/** A node's verdict as words, from either the contract's {verdict} or explain's {fits, plugin}. */
function verdictOf(node) {
  if (node.verdict === 'rejected' && node.plugin) return `rejected by ${node.plugin}`;
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
    scheduling.explanation && scheduling.explanation !== reason
      ? h('p', {class: 'explanation'}, 'The scheduler, asked again now: ', h('span', {class: 'mono'}, scheduling.explanation))
      : null,
    (scheduling.suggestions || []).length ? h('div', {class: 'suggestions'}, h('h4', {}, 'What would help'),
      h('ul', {}, scheduling.suggestions.map((text) => h('li', {}, text)))) : null,
    fits.length ? h('p', {class: 'fits'}, `Fits now on: ${fits.map((f) => (typeof f === 'string' ? f : f.node)).join(', ')}`)
      : null,
    nodes.length ? details : null);
}

const PODS_SHOWN = 60;

function podsStrip(pods, focus) {
  if (!pods?.length) return null;
  const chip = (pod) => h('a', {class: `chip link tone-${statusClass(pod.phase)}${pod.name === focus ? ' focus' : ''}`,
    href: journeyHref('pods', pod.namespace, pod.name), title: 'this pod\'s journey'},
  h('b', {}, pod.name), ` ${pod.phase || ''}${pod.node ? ` on ${pod.node}` : ''}`);
  return h('section', {class: 'panel pods-strip', 'aria-label': 'Pods'},
    h('div', {class: 'panel-head'}, h('h2', {}, `Pods (${pods.length})`),
      focus ? h('span', {class: 'muted'}, `stages 3 to 6 follow ${focus}`) : null),
    h('div', {class: 'chips'}, pods.slice(0, PODS_SHOWN).map(chip),
      pods.length > PODS_SHOWN ? h('span', {class: 'chip'}, `… ${pods.length - PODS_SHOWN} more`) : null));
}

export function createJourneyView(root, route) {
  const [resource = '', nsArg = '_', name = ''] = route.args;
  const namespace = nsArg === '_' ? '' : nsArg;
  const url = `/api/journey/${[resource, nsArg || '_', name].map(encodeURIComponent).join('/')}`;
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
    journeyObject = obj;
    title.textContent = `Journey of ${obj.kind || resource} ${obj.name || name}`;
    const strip = resource === 'pods' ? null : podsStrip((data.pods || []).map((p) => ({
      namespace: obj.namespace || namespace, ...p})), data.focus?.name);
    pods.replaceChildren(...(strip ? [strip] : []));
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
          entries.length ? h('ol', {class: 'entries'}, entries.map((e) => entryView(e, t0, openKeys))) : null,
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
