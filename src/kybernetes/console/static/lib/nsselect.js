// The namespace selector (data-testid="namespace-select"): every namespace the user may list,
// kept current by the stream's 'changed' events, plus "All namespaces" (value '').

import {apiPath, getJSON, on} from './api.js';
import {h} from './dom.js';

const PAGE = 100;
const MAX_PAGES = 20;
let names = null;       // sorted namespace names once loaded
let loading = null;     // the running load, shared by every selector
const selects = new Set();

async function loadNames() {
  const found = [];
  for (let page = 0; page < MAX_PAGES; page++) {
    const data = await getJSON(apiPath('/api/list/namespaces', {sort: 'name', offset: page * PAGE, limit: PAGE}));
    if (data.forbidden) break;
    for (const item of data.items || []) found.push(item.name);
    if (found.length >= (data.total ?? 0) || !(data.items || []).length) break;
  }
  return found;
}

function reload() {
  if (!loading) {
    loading = loadNames().then((found) => {
      names = found;
      for (const select of selects) fill(select);
    }).catch(() => {}).finally(() => { loading = null; });
  }
  return loading;
}

on('changed', ({versions, all}) => {
  if (selects.size && (all || 'namespaces' in versions)) reload();
});

function fill(select) {
  const value = select.dataset.value || '';
  const options = [h('option', {value: ''}, 'All namespaces')];
  const list = names ? [...names] : [];
  if (value && !list.includes(value)) list.push(value);
  for (const name of list) options.push(h('option', {value: name}, name));
  select.replaceChildren(...options);
  select.value = value;
}

/** A <select> showing `value`; onChange(namespace) when the user picks another. */
export function namespaceSelect(value, onChange) {
  const select = h('select', {testid: 'namespace-select', 'aria-label': 'Namespace', class: 'ns-select'});
  select.dataset.value = value || '';
  select.addEventListener('change', () => {
    select.dataset.value = select.value;
    onChange(select.value);
  });
  selects.add(select);
  fill(select);
  if (names === null) reload();
  return {
    el: select,
    set(next) {
      if ((select.dataset.value || '') === (next || '')) return;
      select.dataset.value = next || '';
      fill(select);
    },
    destroy() { selects.delete(select); },
  };
}
