"""``kyb console``: a live web console that shows the architecture at work (issue 16).

The contract is CONSOLE.md's (HTTP API, token and cookie, the model); no deviations. Additions
(extra fields) and readings of what it leaves open:

- List answers carry ``synced`` (false while the first list is still loading). ``sort`` is a
  column key (or ``name``/``namespace``); none sorts by namespace, then name; ``age`` and
  ``lastSeen`` sort by their timestamps (ascending age: newest first). ``q`` is a label selector
  when it holds ``=``, `` in `` or starts with ``!``, else a case-insensitive name substring.
  Rows hold every printer column (wide ones too); ``columns`` names those a list shows.
- A user who may list a resource in one namespace only gets it with ``namespace=`` that
  namespace; without it (all namespaces) the answer is ``forbidden: true``.
- Journey stages carry ``steps`` (their dated parts: events, conditions, managers, children);
  the answer carries ``focus`` (the pod whose scheduled/kubelet/endpoints/proxy stages are
  shown: the pod itself, or the workload's first pod not ready, else its newest);
  ``scheduling.nodes[]`` carry ``plugin``, ``scheduling`` carries ``explanation`` (the scheduler's
  summary line when no FailedScheduling event exists, ``message`` is the event's).
- Problems of crash-looping containers carry ``container`` and ``restarts``; Deployments'
  ``unavailable``.
- ``kyb server`` prints its console hint on stderr, after the kubeconfig line (stdout stays the
  one ``export KUBECONFIG=...`` line scripts read).

::

    cmd           ``kyb console``: kubeconfig, token, the one URL line on stdout
    server        the aiohttp app: token/cookie auth, routes, the event stream, static files
    cache         the watch-fed model: informers as the user, rows and problems per change
    rows          list rows as ``kubectl get`` prints them (the API server's printers)
    architecture  the background scraper (/metrics, /readyz, Leases) and the overview
    journey       an object's path through the system, from cached objects
    problems      what is wrong now, per object
    logs          pods/log relayed as server-sent events
    static/       the browser side (no build step, no CDN)
"""
