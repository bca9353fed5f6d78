// A pod's logs panel: /api/logs streamed through an EventSource (one `data:` per line, `event: end`
// when the upstream closes). The stream is closed when the panel goes away; EventSource's own
// reconnection is never used (it would replay the tail and duplicate lines).

import {apiPath} from '../lib/api.js';
import {h, setText} from '../lib/dom.js';

const MAX_LINES = 5000;
const TAIL_CHOICES = ['100', '200', '1000', '5000'];

/** The containers a pod's logs can come from: [{name, label}], init containers first. */
export function podContainers(pod) {
  const spec = pod?.spec || {};
  return [
    ...(spec.initContainers || []).map((c) => ({name: c.name, label: `${c.name} (init)`})),
    ...(spec.containers || []).map((c) => ({name: c.name, label: c.name})),
    ...(spec.ephemeralContainers || []).map((c) => ({name: c.name, label: `${c.name} (debug)`})),
  ];
}

function defaultContainer(pod, containers) {
  const annotated = pod?.metadata?.annotations?.['kubectl.kubernetes.io/default-container'];
  if (annotated && containers.some((c) => c.name === annotated)) return annotated;
  return (pod?.spec?.containers || [])[0]?.name || containers[0]?.name || '';
}

function restartCount(pod, name) {
  const statuses = [...(pod?.status?.initContainerStatuses || []), ...(pod?.status?.containerStatuses || [])];
  return statuses.find((s) => s.name === name)?.restartCount ?? 0;
}

export function logsPanel(namespace, podName, pod) {
  let containers = podContainers(pod);
  let container = defaultContainer(pod, containers);
  let source = null;
  let lines = [];
  let pending = [];
  let frame = 0;
  let received = 0;
  let state = 'idle';
  let currentPod = pod;
  let lastRestarts = restartCount(pod, container);

  const select = h('select', {'aria-label': 'Container', class: 'container-select'});
  const tail = h('select', {'aria-label': 'Lines of history'},
    TAIL_CHOICES.map((n) => h('option', {value: n}, `last ${n} lines`)));
  tail.value = '200';
  const follow = h('input', {type: 'checkbox', checked: true});
  const wrap = h('input', {type: 'checkbox'});
  const toggle = h('button', {type: 'button', class: 'btn btn-small'}, 'Pause');
  const clear = h('button', {type: 'button', class: 'btn btn-small'}, 'Clear');
  const status = h('span', {class: 'log-status'});
  const view = h('pre', {class: 'log-view', testid: 'log-view', tabindex: '0', 'aria-label': 'Container log'});
  const el = h('section', {class: 'panel logs-panel', 'aria-label': 'Logs'},
    h('div', {class: 'panel-head'}, h('h2', {}, 'Logs'), status),
    h('div', {class: 'toolbar'}, select, tail,
      h('label', {class: 'check'}, follow, ' follow'), h('label', {class: 'check'}, wrap, ' wrap'), toggle, clear),
    view);

  function fillContainers() {
    select.replaceChildren(...containers.map((c) => h('option', {value: c.name}, c.label)));
    select.value = container;
    select.hidden = containers.length < 2;
  }

  function setState(next, text) {
    state = next;
    status.className = `log-status state-${next}`;
    setText(status, text);
    setText(toggle, next === 'streaming' || next === 'connecting' ? 'Pause' : 'Resume');
  }

  function flush() {
    frame = 0;
    if (!pending.length) return;
    const atBottom = view.scrollHeight - view.scrollTop - view.clientHeight < 40;
    lines.push(...pending);
    if (lines.length > MAX_LINES) {
      lines = lines.slice(-MAX_LINES);
      view.textContent = `${lines.join('\n')}\n`;
    } else {
      view.append(`${pending.join('\n')}\n`);
    }
    pending = [];
    if (atBottom) view.scrollTop = view.scrollHeight;
  }

  function stop() {
    if (source) {
      source.close();
      source = null;
    }
  }

  /** (Re)opens the stream; keep: append below what is shown (a restarted container's new run). */
  function start(keep = false) {
    stop();
    cancelAnimationFrame(frame);
    frame = 0;
    pending = [];
    received = 0;
    if (keep) {
      pending.push(`──────── ${container} restarted ────────`);
      frame = requestAnimationFrame(flush);
    } else {
      lines = [];
      view.textContent = '';
    }
    if (!container) {
      setState('error', 'this pod has no containers');
      return;
    }
    const url = apiPath(`/api/logs/${encodeURIComponent(namespace)}/${encodeURIComponent(podName)}`,
      {container, tailLines: tail.value, follow: follow.checked ? 'true' : 'false'});
    const es = new EventSource(url, {withCredentials: true});
    source = es;
    setState('connecting', 'connecting…');
    es.addEventListener('open', () => {
      if (source === es) setState('streaming', follow.checked ? 'streaming' : 'reading');
    });
    es.addEventListener('message', (event) => {
      if (source !== es) return;
      received++;
      pending.push(event.data);
      if (!frame) frame = requestAnimationFrame(flush);
    });
    es.addEventListener('end', () => {
      if (source !== es) return;
      stop();
      flush();
      setState('ended', received ? 'stream ended' : 'no log lines');
    });
    es.addEventListener('error', () => {
      if (source !== es) return;
      stop();
      flush();
      setState('error', 'disconnected');
      explain(url);
    });
  }

  /** An EventSource hides the error's body: ask once without follow to show the server's words. */
  async function explain(url) {
    const probe = url.replace('follow=true', 'follow=false').replace(/tailLines=\d+/, 'tailLines=1');
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 5000);
    try {
      const response = await fetch(probe, {credentials: 'same-origin', signal: controller.signal});
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        if (state === 'error') setState('error', body?.error || `${response.status} ${response.statusText}`);
      } else {
        await response.body?.cancel();
      }
    } catch {
      // The console itself is unreachable: 'disconnected' already says so.
    } finally {
      clearTimeout(timer);
    }
  }

  select.addEventListener('change', () => {
    container = select.value;
    lastRestarts = restartCount(currentPod, container);
    start();
  });
  tail.addEventListener('change', () => start());
  follow.addEventListener('change', () => start());
  wrap.addEventListener('change', () => view.classList.toggle('wrap', wrap.checked));
  clear.addEventListener('click', () => { lines = []; view.textContent = ''; });
  toggle.addEventListener('click', () => {
    if (state === 'streaming' || state === 'connecting') {
      stop();
      flush();
      setState('paused', 'paused');
    } else {
      start();
    }
  });

  fillContainers();
  start();

  return {
    el,
    /** The pod changed: new containers to offer; a stream that failed before any line is retried. */
    podChanged(nextPod) {
      currentPod = nextPod;
      const next = podContainers(nextPod);
      if (next.map((c) => c.label).join() !== containers.map((c) => c.label).join()) {
        containers = next;
        if (!containers.some((c) => c.name === container)) container = defaultContainer(nextPod, containers);
        fillContainers();
      }
      const restarts = restartCount(nextPod, container);
      if (state === 'error' && received === 0) start();
      else if (state === 'ended' && follow.checked && restarts > lastRestarts) start(true);
      lastRestarts = restarts;
    },
    destroy() {
      stop();
      cancelAnimationFrame(frame);
    },
  };
}
