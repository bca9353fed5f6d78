// kybernetes console: the single page. Routes (hash):
//   #/architecture (default) #/problems #/workloads?ns= #/pods?ns= #/nodes #/services #/events
//   #/journey/<resource>/<ns>/<name>   #/object/<resource>/<ns>/<name>   ('_' = no namespace)
// Lists take ?ns=&q=&sort=&order=&page=&kind=. Data: the console's JSON API and one event stream.

import {getJSON, on, startStream, streamStatus} from './lib/api.js';
import {h, setText} from './lib/dom.js';
import {rememberedNamespace} from './lib/prefs.js';
import {subscribeProblems} from './lib/problems.js';
import {DEFAULT_ROUTE, buildHash, navigate, parseHash, setNavigateHandler} from './lib/router.js';
import {createArchitectureView} from './views/architecture.js';
import {createJourneyView} from './views/journey.js';
import {LIST_ROUTES, createListView} from './views/list.js';
import {createObjectView} from './views/object.js';
import {createProblemsView} from './views/problems.js';

/** The navigation, in order; the digit keys 1..7 go to them. */
const NAV = [
  ['architecture', 'Architecture'], ['problems', 'Problems'], ['workloads', 'Workloads'], ['pods', 'Pods'],
  ['nodes', 'Nodes'], ['services', 'Services'], ['events', 'Events'],
];

const NAMESPACED_ROUTES = new Set(['workloads', 'pods', 'services', 'events']);

const VIEWS = {
  architecture: createArchitectureView,
  problems: createProblemsView,
  journey: createJourneyView,
  object: createObjectView,
  ...Object.fromEntries(Object.keys(LIST_ROUTES).map((name) => [name, createListView])),
};

const main = document.getElementById('main');
const navLinks = new Map();
let current = null;  // {name, key, view}

// ---- header -------------------------------------------------------------------------------------

function buildHeader() {
  const nav = document.getElementById('nav');
  for (const [name, title] of NAV) {
    const link = h('a', {href: `#/${name}`, testid: `nav-${name}`}, title);
    if (name === 'problems') link.append(h('span', {class: 'badge', hidden: true, id: 'problem-badge'}));
    navLinks.set(name, link);
    nav.append(link);
  }
  const live = document.getElementById('live');
  const showStatus = (state) => {
    live.className = `live state-${state}`;
    setText(live, {live: 'live', reconnecting: 'reconnecting…', offline: 'offline', connecting: 'connecting…'}[state]
      || state);
    live.title = state === 'live' ? 'Updates stream from the console as the cluster changes' : 'No live updates now';
  };
  showStatus(streamStatus());
  on('status', showStatus);
  subscribeProblems((data) => {
    const badge = document.getElementById('problem-badge');
    const items = data?.items || [];
    const errors = items.filter((i) => i.severity === 'error').length;
    badge.hidden = !items.length;
    badge.className = `badge${errors ? ' error' : ''}`;
    setText(badge, String(items.length));
  });
  getJSON('/api/session').then((session) => {
    const who = document.getElementById('who');
    setText(who, `${session.user || 'unknown user'} · ${session.context || session.server || ''}`);
    who.title = `API server ${session.server || ''}`;
  }, () => {});
  on('unauthorized', (text) => {
    const banner = document.getElementById('banner');
    banner.hidden = false;
    banner.replaceChildren(h('b', {}, 'Not signed in. '),
      `The console answered: “${text}”. Open the URL with ?token=… that `, h('code', {}, 'kyb console'),
      ' printed (the token lasts as long as that process).');
  });
}

function syncNav(routeName) {
  const ns = rememberedNamespace();
  for (const [name, link] of navLinks) {
    link.setAttribute('href', buildHash(name, [], NAMESPACED_ROUTES.has(name) ? {ns} : {}));
    if (name === routeName) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

// ---- routing ------------------------------------------------------------------------------------

function render() {
  const route = parseHash();
  if (!VIEWS[route.name]) {
    navigate(`#/${DEFAULT_ROUTE}`, {replace: true});
    return;
  }
  // Lists keep their frame (and the search box its focus) while their parameters change;
  // any other change of route makes a new view.
  const key = `${route.name}/${route.args.join('/')}`;
  if (current && current.key === key && current.view.update) {
    current.view.update(route);
  } else {
    current?.view.destroy?.();
    main.replaceChildren();
    current = {name: route.name, key, view: VIEWS[route.name](main, route)};
    main.scrollTop = 0;
    window.scrollTo(0, 0);
  }
  syncNav(route.name);
  const navTitle = NAV.find(([name]) => name === route.name)?.[1];
  document.title = `${navTitle || route.args[2] || route.name} · kybernetes console`;
}

// ---- keyboard -----------------------------------------------------------------------------------

function toggleHelp(force) {
  const help = document.getElementById('help');
  help.hidden = force === undefined ? !help.hidden : !force;
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement
    || target instanceof HTMLSelectElement || target?.isContentEditable;
  if (event.key === 'Escape') {
    toggleHelp(false);
    if (typing) target.blur();
    return;
  }
  if (typing) return;
  if (current?.view.onKey?.(event)) {
    event.preventDefault();
    return;
  }
  if (event.key === '?') {
    toggleHelp();
  } else if (/^[1-7]$/.test(event.key)) {
    const name = NAV[Number(event.key) - 1][0];
    navigate(navLinks.get(name).getAttribute('href'));
  } else {
    return;
  }
  event.preventDefault();
}

buildHeader();
setNavigateHandler(render);
window.addEventListener('hashchange', render);
document.addEventListener('keydown', onKey);
document.getElementById('help-close').addEventListener('click', () => toggleHelp(false));
document.getElementById('help-button').addEventListener('click', () => toggleHelp());
startStream();
render();
