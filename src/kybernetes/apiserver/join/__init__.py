"""Node join, the API server's side: the token store (:mod:`.tokens`) and the endpoint that signs
node credentials (:mod:`.service`). The protocol, and what the agent shares of it, is
:mod:`kybernetes.join`; the agent's side is :mod:`kybernetes.agent`."""
