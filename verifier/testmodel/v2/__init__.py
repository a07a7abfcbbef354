"""The v2 conformance world: a hesitant checkpoint, eleven tools, structured outputs, effort several-fold."""
