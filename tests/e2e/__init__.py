"""End-to-end tests: a whole ``kyb server`` with hollow nodes, driven by the stock kubectl."""
