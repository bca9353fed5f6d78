"""Tests of kybernetes.client: REST, informers, work queues, leader election, events."""
