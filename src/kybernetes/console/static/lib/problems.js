// What is wrong now (/api/problems), shared by the header's badge, the architecture page's panel
// and the problems page. Fetched again when a resource problems come from moved, at most every 2 s.

import {getJSON, onResourcesChanged} from './api.js';

const SOURCES = ['pods', 'nodes', 'jobs', 'deployments', 'replicasets', 'statefulsets', 'daemonsets', 'events'];
const subscribers = new Set();
let latest = null;
let error = null;
let started = false;

async function refresh() {
  try {
    latest = await getJSON('/api/problems');
    error = null;
  } catch (err) {
    error = err;
  }
  for (const fn of subscribers) fn(latest, error);
}

/** fn(problems, error) now (when known) and after every refresh; returns the unsubscribe. */
export function subscribeProblems(fn) {
  subscribers.add(fn);
  if (!started) {
    started = true;
    onResourcesChanged(SOURCES, refresh, 2000);
    refresh();
  } else if (latest || error) {
    fn(latest, error);
  }
  return () => subscribers.delete(fn);
}
