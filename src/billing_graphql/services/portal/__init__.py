"""The billing portal's services: its links (``sessions``), what its pages read (``pages``) and
the few use cases only it composes (``cards``). Everything it changes goes through the services
the GraphQL mutations call."""
