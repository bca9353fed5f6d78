// The problems panel: what is wrong now, errors first, each with a link to its journey.
// Compact on the architecture page (the first thing on it), complete on #/problems.

import {subscribeProblems} from '../lib/problems.js';
import {age, h, objectHref, resourceOf, setAttr, setText, syncKeyed} from '../lib/dom.js';

const COMPACT_LIMIT = 6;
/** The problems page shows this many (a broken cluster of 10,000 pods has 10,000 problems). */
const PAGE_LIMIT = 300;

/** '/api/journey/pods/ns/name' -> '#/journey/pods/ns/name' ('' when there is none). */
function journeyRoute(apiPath) {
  if (!apiPath) return '';
  const match = /^\/api\/(journey\/.+)$/.exec(apiPath);
  return match ? `#/${match[1]}` : '';
}

function resourceFor(kind) {
  const known = resourceOf(kind);
  if (known) return known;
  const lower = String(kind || '').toLowerCase();
  return lower.endsWith('s') ? lower : `${lower}s`;
}

function problemKey(item) {
  return `${item.kind}/${item.namespace || ''}/${item.name}`;
}

/**
 * One entry per object (a pod with two failing containers is one problem with two reasons), so
 * that each object has one element and one data-testid; the worst severity wins.
 */
function groupByObject(items) {
  const groups = new Map();
  for (const item of items) {
    const key = problemKey(item);
    const group = groups.get(key);
    const line = item.container ? `${item.container}: ${item.message || item.reason || ''}` : (item.message || '');
    if (!group) {
      groups.set(key, {...item, reasons: [item.reason].filter(Boolean), messages: [line].filter(Boolean),
        logTail: item.logTail || []});
      continue;
    }
    if (item.severity === 'error') group.severity = 'error';
    if (item.reason && !group.reasons.includes(item.reason)) group.reasons.push(item.reason);
    if (line) group.messages.push(line);
    if (!group.logTail.length && item.logTail?.length) group.logTail = item.logTail;
    if (item.since && (!group.since || item.since < group.since)) group.since = item.since;
    group.journey = group.journey || item.journey;
  }
  return [...groups.values()];
}

function createItem() {
  const el = h('li', {class: 'problem'},
    h('span', {class: 'sev', 'aria-hidden': 'true'}),
    h('div', {class: 'problem-body'},
      h('div', {class: 'problem-title'},
        h('span', {class: 'kind'}), ' ', h('a', {class: 'who'}), ' ',
        h('span', {class: 'reason'}), ' ', h('span', {class: 'since'})),
      h('div', {class: 'problem-message'}),
      h('details', {class: 'logtail', hidden: true},
        h('summary', {}, 'last log lines'), h('pre'))),
    h('div', {class: 'problem-actions'}, h('a', {class: 'btn btn-small journey-link'}, 'Journey →')));
  return el;
}

function updateItem(el, item, compact) {
  const ns = item.namespace || '';
  setAttr(el, 'data-testid', `problem-${item.kind}-${ns}-${item.name}`);
  el.className = `problem sev-${item.severity === 'error' ? 'error' : 'warning'}`;
  setText(el.querySelector('.sev'), item.severity === 'error' ? '✖' : '▲');
  setText(el.querySelector('.kind'), item.kind);
  const who = el.querySelector('.who');
  setText(who, ns ? `${ns}/${item.name}` : item.name);
  setAttr(who, 'href', objectHref(resourceFor(item.kind), ns, item.name));
  setText(el.querySelector('.reason'), (item.reasons || [item.reason]).filter(Boolean).join(', '));
  setText(el.querySelector('.since'), item.since ? `for ${age(item.since)}` : '');
  setText(el.querySelector('.problem-message'), (item.messages || [item.message]).filter(Boolean).join('\n'));
  const tail = el.querySelector('.logtail');
  const lines = item.logTail || [];
  tail.hidden = !lines.length;
  if (lines.length) {
    setText(tail.querySelector('pre'), lines.join('\n'));
    if (!compact && !tail.dataset.touched) tail.open = true;
  }
  tail.ontoggle = () => { tail.dataset.touched = '1'; };
  const journey = el.querySelector('.journey-link');
  const href = journeyRoute(item.journey);
  journey.hidden = !href;
  setAttr(journey, 'href', href || null);
}

function sortItems(items) {
  return [...items].sort((a, b) => (a.severity === 'error' ? 0 : 1) - (b.severity === 'error' ? 0 : 1));
}

/** The panel as an element; compact shows the first few and a link to #/problems. */
export function problemsPanel({compact}) {
  const list = h('ul', {class: 'problem-list'});
  const head = h('div', {class: 'panel-head'},
    h('h2', {}, compact ? 'Problems' : 'Now'), h('span', {class: 'counts'}),
    compact ? h('a', {class: 'all-link', href: '#/problems'}, 'all problems →') : null);
  const status = h('p', {class: 'panel-status'}, 'Loading…');
  const rest = h('p', {class: 'panel-status', hidden: true});
  const panel = h('section', {class: `panel problems-panel${compact ? ' compact' : ''}`, 'aria-label': 'Problems'},
    head, status, list, rest);

  const unsubscribe = subscribeProblems((data, error) => {
    if (error && !data) {
      status.hidden = false;
      status.className = 'panel-status error';
      setText(status, `Could not read problems: ${error.message}`);
      return;
    }
    const items = sortItems(groupByObject(data?.items || []));
    const errors = items.filter((i) => i.severity === 'error').length;
    setText(head.querySelector('.counts'), items.length
      ? `${errors} error${errors === 1 ? '' : 's'}, ${items.length - errors} warning${items.length - errors === 1 ? '' : 's'}`
      : '');
    panel.classList.toggle('all-clear', !items.length);
    status.hidden = items.length > 0;
    status.className = 'panel-status ok';
    setText(status, 'Nothing is wrong: no pending pods, no crash loops, every node ready.');
    const shown = items.slice(0, compact ? COMPACT_LIMIT : PAGE_LIMIT);
    syncKeyed(list, shown, problemKey, createItem, (el, item) => updateItem(el, item, compact));
    const more = head.querySelector('.all-link');
    if (more) setText(more, items.length > shown.length ? `all ${items.length} problems →` : 'problems page →');
    rest.hidden = compact || items.length <= shown.length;
    setText(rest, `… and ${items.length - shown.length} more: the lists (filtered by namespace or name) show them.`);
  });
  return {el: panel, destroy: unsubscribe};
}

/** The #/problems page. */
export function createProblemsView(root) {
  const panel = problemsPanel({compact: false});
  root.append(h('section', {class: 'view problems-view'},
    h('header', {class: 'view-head'}, h('h1', {}, 'Problems'),
      h('p', {class: 'lede'}, 'Pending pods, crash-looping containers, image pull failures, nodes not ready, ' +
        'failed jobs and stalled deployments, as of now.')),
    panel.el));
  return {destroy: panel.destroy};
}
