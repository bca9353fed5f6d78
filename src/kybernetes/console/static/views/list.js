// The object lists (workloads, pods, nodes, services, events): one page of 100 rows at a time,
// sorted, filtered and paged by the console process; re-fetched when the stream says the shown
// resource's version moved (no polling).

import {apiPath, getJSON, on} from '../lib/api.js';
import {CLUSTER_SCOPED, JOURNEY_RESOURCES, h, journeyHref, objectHref, resourceOf, setAttr, setText, statusClass,
  syncKeyed} from '../lib/dom.js';
import {buildHash, navigate} from '../lib/router.js';
import {namespaceSelect} from '../lib/nsselect.js';
import {rememberNamespace} from '../lib/prefs.js';

export const PAGE_SIZE = 100;

/** Each list route, the resources it can show (tabs; the first is the default) and its scope. */
export const LIST_ROUTES = {
  workloads: {title: 'Workloads', namespaced: true, kinds: [
    ['deployments', 'Deployments'], ['statefulsets', 'StatefulSets'], ['daemonsets', 'DaemonSets'],
    ['replicasets', 'ReplicaSets'], ['jobs', 'Jobs'], ['cronjobs', 'CronJobs']]},
  pods: {title: 'Pods', namespaced: true, kinds: [['pods', 'Pods']]},
  nodes: {title: 'Nodes', namespaced: false, kinds: [['nodes', 'Nodes'], ['namespaces', 'Namespaces']]},
  services: {title: 'Services', namespaced: true, kinds: [
    ['services', 'Services'], ['persistentvolumeclaims', 'PersistentVolumeClaims']]},
  // Events: the newest first, as one reads them (the console sorts a time column by age: ascending
  // is newest first).
  events: {title: 'Events', namespaced: true, kinds: [['events', 'Events']], defaultSort: ['lastSeen', 'asc']},
};

const STATUS_KEYS = new Set(['status', 'phase']);

function cellText(value) {
  if (value == null) return '';
  if (Array.isArray(value)) return value.map(cellText).join(', ');
  if (typeof value === 'object') return Object.entries(value).map(([k, v]) => `${k}=${v}`).join(', ');
  return String(value);
}

/** The colour of a cell: health words, events' Warning, and a "ready" fraction short of its total. */
function cellClass(key, text) {
  if (STATUS_KEYS.has(key)) return statusClass(text);
  if (key === 'type' && text === 'Warning') return 'warn';
  if (key === 'ready') {
    const match = /^(\d+)\/(\d+)$/.exec(text);
    if (match && Number(match[1]) < Number(match[2])) return 'warn';
  }
  return '';
}

/** State of a list page from the route's parameters. */
function stateFrom(config, params) {
  const resources = config.kinds.map(([resource]) => resource);
  const kind = resources.includes(params.get('kind')) ? params.get('kind') : resources[0];
  const page = Math.max(1, Number.parseInt(params.get('page') || '1', 10) || 1);
  const namespaced = config.namespaced && !CLUSTER_SCOPED.has(kind);
  const sort = params.get('sort') || defaultSort(config)[0];
  const order = params.get('order') || defaultOrder(config, sort);
  return {kind, namespaced, ns: namespaced ? (params.get('ns') || '') : '', q: params.get('q') || '',
    sort, order: order === 'desc' ? 'desc' : 'asc', page};
}

/** [key, order] a route sorts by when its URL names none ('' = the console's own order). */
function defaultSort(config) {
  return config.defaultSort || ['', 'asc'];
}

function defaultOrder(config, sort) {
  const [key, order] = defaultSort(config);
  return sort === key ? order : 'asc';
}

export function createListView(root, route) {
  const config = LIST_ROUTES[route.name];
  const routeName = route.name;
  let state = stateFrom(config, route.params);
  let shownVersion = null;
  let columnsKey = '';
  let columns = [];
  let inflight = null;
  let dirty = false;
  let selected = -1;
  let lastData = null;

  const hashFor = (changes) => {
    const next = {...state, ...changes};
    const defaultKind = config.kinds[0][0];
    // Defaults stay out of the URL: '#/events' is the newest events first.
    return buildHash(routeName, [], {
      kind: next.kind === defaultKind ? '' : next.kind, ns: next.ns, q: next.q,
      sort: next.sort === defaultSort(config)[0] ? '' : next.sort,
      order: next.sort && next.order !== defaultOrder(config, next.sort) ? next.order : '',
      page: next.page > 1 ? next.page : '',
    });
  };

  // ---- the frame, built once --------------------------------------------------------------------
  const tabs = config.kinds.length > 1 ? h('nav', {class: 'tabs', 'aria-label': `${config.title} kinds`},
    config.kinds.map(([resource, title]) => h('a', {href: '', testid: `tab-${resource}`, 'data-kind': resource}, title)))
    : null;
  const nsSelect = config.namespaced ? namespaceSelect(state.ns, (ns) => {
    rememberNamespace(ns);
    navigate(hashFor({ns, page: 1}));
  }) : null;
  let searchTimer = null;
  const search = h('input', {type: 'search', testid: 'search', class: 'search', autocomplete: 'off', spellcheck: 'false',
    placeholder: routeName === 'events' ? 'Filter by the object’s name' : 'Filter by name, or label selector (app=web)',
    'aria-label': 'Filter'});
  search.value = state.q;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => navigate(hashFor({q: search.value.trim(), page: 1}), {replace: true}), 200);
  });
  const summary = h('span', {class: 'summary', 'aria-live': 'polite'});
  const message = h('div', {class: 'message', hidden: true});
  const thead = h('thead');
  const tbody = h('tbody');
  const table = h('table', {class: 'list', testid: 'list-table'}, thead, tbody);
  const prev = h('button', {type: 'button', testid: 'pager-prev', class: 'btn'}, '‹ Previous');
  const next = h('button', {type: 'button', testid: 'pager-next', class: 'btn'}, 'Next ›');
  const pageInfo = h('span', {class: 'page-info'});
  prev.addEventListener('click', () => navigate(hashFor({page: state.page - 1})));
  next.addEventListener('click', () => navigate(hashFor({page: state.page + 1})));
  const heading = h('h1', {}, config.title);

  root.append(h('section', {class: `view list-view list-${routeName}`},
    h('header', {class: 'view-head'}, heading, tabs),
    h('div', {class: 'toolbar'}, nsSelect?.el, search, summary, h('div', {class: 'pager'}, prev, pageInfo, next)),
    message,
    h('div', {class: 'table-wrap'}, table)));

  thead.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-sort]');
    if (!button) return;
    const key = button.dataset.sort;
    const order = state.sort === key && state.order === 'asc' ? 'desc' : 'asc';
    navigate(hashFor({sort: key, order, page: 1}));
  });

  function syncFrame() {
    if (tabs) {
      for (const link of tabs.children) {
        link.setAttribute('href', hashFor({kind: link.dataset.kind, page: 1, sort: defaultSort(config)[0],
          order: defaultSort(config)[1]}));
        setAttr(link, 'aria-current', link.dataset.kind === state.kind ? 'page' : null);
      }
    }
    if (nsSelect) {
      nsSelect.set(state.ns);
      nsSelect.el.disabled = !state.namespaced;
    }
    if (document.activeElement !== search) search.value = state.q;
  }

  // ---- data ---------------------------------------------------------------------------------
  function load() {
    inflight?.abort();
    const controller = new AbortController();
    inflight = controller;
    dirty = false;
    const path = apiPath(`/api/list/${state.kind}`, {
      namespace: state.ns, q: state.q, sort: state.sort, order: state.sort ? state.order : '',
      offset: (state.page - 1) * PAGE_SIZE, limit: PAGE_SIZE,
    });
    root.querySelector('.list-view')?.classList.add('loading');
    getJSON(path, {signal: controller.signal}).then((data) => {
      if (inflight !== controller) return;
      inflight = null;
      root.querySelector('.list-view')?.classList.remove('loading');
      render(data);
      if (dirty) load();
    }, (err) => {
      if (inflight !== controller) return;
      inflight = null;
      root.querySelector('.list-view')?.classList.remove('loading');
      if (err.name === 'AbortError') return;
      showMessage(`Could not list ${state.kind}: ${err.message}`, 'error');
    });
  }

  function refresh() {
    if (inflight) dirty = true;
    else load();
  }

  const offChanged = on('changed', ({versions: moved, all}) => {
    if (all) refresh();
    else if (state.kind in moved && moved[state.kind] !== shownVersion) refresh();
  });

  function showMessage(text, kind) {
    message.hidden = !text;
    message.className = `message ${kind || ''}`;
    setText(message, text);
  }

  function displayColumns(data) {
    const cols = [...(data.columns || [])];
    const keys = new Set(cols.map((c) => c.key));
    // Events are known by what they are about (kubectl get events shows no name either).
    if (!keys.has('name') && state.kind !== 'events') cols.unshift({key: 'name', title: 'Name'});
    if (state.namespaced && !state.ns && !keys.has('namespace')) cols.unshift({key: 'namespace', title: 'Namespace'});
    if (JOURNEY_RESOURCES.has(state.kind)) cols.push({key: '_journey', title: '', fixed: true});
    return cols;
  }

  function renderHead() {
    const cells = columns.map((col) => {
      if (col.fixed) return h('th', {class: 'col-journey', scope: 'col'}, h('span', {class: 'sr-only'}, 'Journey'));
      const active = state.sort === col.key;
      const arrow = active ? (state.order === 'desc' ? '▼' : '▲') : '';
      return h('th', {scope: 'col', 'aria-sort': active ? (state.order === 'desc' ? 'descending' : 'ascending') : null,
        class: `col-${col.key}`},
      h('button', {type: 'button', 'data-sort': col.key, class: 'sort', title: `Sort by ${col.title || col.key}`},
        col.title || col.key, h('span', {class: 'arrow', 'aria-hidden': 'true'}, arrow)));
    });
    thead.replaceChildren(h('tr', {}, cells));
  }

  function createRow() {
    const tr = h('tr');
    for (const col of columns) {
      const td = h('td', {class: `col-${col.key}`});
      if (col.key === 'name') td.append(h('a', {class: 'name'}));
      else if (col.key === 'object' && state.kind === 'events') td.append(h('a', {class: 'involved'}));
      else if (col.key === '_journey') td.append(h('a', {class: 'journey-link', title: 'Journey'}, 'journey →'));
      if (col.key === 'status') td.setAttribute('data-testid', 'cell-status');
      tr.append(td);
    }
    return tr;
  }

  function updateRow(tr, row) {
    const ns = row.namespace || '';
    setAttr(tr, 'data-testid', `row-${ns}-${row.name}`);
    columns.forEach((col, i) => {
      const td = tr.children[i];
      if (col.key === 'name') {
        const link = td.firstChild;
        setAttr(link, 'href', objectHref(state.kind, ns, row.name));
        setText(link, row.name);
      } else if (col.key === 'object' && state.kind === 'events') {
        // kubectl's "pod/web-1": a link to that object when the console shows its kind.
        const text = cellText(row.object);
        const [kind, ...rest] = text.split('/');
        const resource = rest.length ? resourceOf(kind) : '';
        const link = td.firstChild;
        setText(link, text);
        setAttr(link, 'href', resource ? objectHref(resource, resource === 'nodes' ? '' : ns, rest.join('/')) : null);
      } else if (col.key === '_journey') {
        setAttr(td.firstChild, 'href', journeyHref(state.kind, ns, row.name));
      } else {
        const text = cellText(row[col.key]);
        setText(td, text);
        const tone = cellClass(col.key, text);
        const cls = `col-${col.key}${tone ? ` tone-${tone}` : ''}`;
        if (td.className !== cls) td.className = cls;
        if (text.length > 40) setAttr(td, 'title', text);
      }
    });
  }

  function render(data) {
    lastData = data;
    shownVersion = data.version;
    const total = data.total ?? 0;
    const offset = data.offset ?? (state.page - 1) * PAGE_SIZE;
    const items = data.items || [];
    if (!items.length && total > 0 && offset >= total) {
      navigate(hashFor({page: Math.max(1, Math.ceil(total / PAGE_SIZE))}), {replace: true});
      return;
    }
    const cols = displayColumns(data);
    const key = cols.map((c) => c.key).join('|');
    if (key !== columnsKey) {
      columnsKey = key;
      columns = cols;
      tbody.replaceChildren();
      tbody._keyed = null;
    }
    renderHead();
    if (data.forbidden) {
      showMessage(`Forbidden: your credentials may not list ${state.kind}${state.ns ? ` in namespace ${state.ns}` : ''}.`,
        'forbidden');
    } else if (!items.length) {
      showMessage(state.q ? `No ${state.kind} match “${state.q}”.`
        : `No ${state.kind}${state.ns ? ` in namespace ${state.ns}` : ''}.`, 'empty');
    } else {
      showMessage('');
    }
    syncKeyed(tbody, items, (row) => row.uid || `${row.namespace}/${row.name}`, createRow, updateRow);
    if (selected >= items.length) selected = items.length - 1;
    markSelected();
    const first = items.length ? offset + 1 : 0;
    setText(pageInfo, total ? `${first}–${offset + items.length} of ${total.toLocaleString()}` : '0 of 0');
    prev.disabled = state.page <= 1;
    next.disabled = offset + items.length >= total;
    setText(summary, data.forbidden ? 'forbidden' : `${total.toLocaleString()} ${state.kind}`);
  }

  function markSelected() {
    Array.from(tbody.children).forEach((tr, i) => tr.classList.toggle('selected', i === selected));
  }

  // ---- the view's contract with the app ---------------------------------------------------------
  syncFrame();
  load();

  return {
    update(next) {
      const nextState = stateFrom(config, next.params);
      const same = JSON.stringify(nextState) === JSON.stringify(state);
      state = nextState;
      syncFrame();
      if (!same) {
        selected = -1;
        load();
      }
    },
    onKey(event) {
      if (event.key === '/') { search.focus(); search.select(); return true; }
      if (event.key === '[' && !prev.disabled) { prev.click(); return true; }
      if (event.key === ']' && !next.disabled) { next.click(); return true; }
      const rows = tbody.children;
      if ((event.key === 'j' || event.key === 'ArrowDown') && rows.length) {
        selected = Math.min(rows.length - 1, selected + 1);
        markSelected();
        rows[selected].scrollIntoView({block: 'nearest'});
        return true;
      }
      if ((event.key === 'k' || event.key === 'ArrowUp') && rows.length) {
        selected = Math.max(0, selected - 1);
        markSelected();
        rows[selected].scrollIntoView({block: 'nearest'});
        return true;
      }
      if (selected >= 0 && selected < rows.length && lastData) {
        const row = lastData.items[selected];
        if (event.key === 'Enter') { navigate(objectHref(state.kind, row.namespace, row.name)); return true; }
        if (event.key === 'J' && JOURNEY_RESOURCES.has(state.kind)) {
          navigate(journeyHref(state.kind, row.namespace, row.name));
          return true;
        }
      }
      return false;
    },
    destroy() {
      offChanged();
      inflight?.abort();
      clearTimeout(searchTimer);
      nsSelect?.destroy();
    },
  };
}
