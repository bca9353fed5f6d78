"""``kyb console``: a live web console that shows the architecture at work (issue 16).

The contract is CONSOLE.md's (HTTP API, token and cookie, the model); no deviations. Additions,
which the contract allows as extra fields: list answers carry ``synced``; journey stages carry
``steps`` (their dated parts) and the answer ``focus`` (the pod whose stages are shown);
``scheduling`` nodes carry ``plugin`` and the block ``explanation`` (the scheduler's own summary).

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
