"""The core: contract, records, manager, session, tokens, serializers, errors, middleware."""
