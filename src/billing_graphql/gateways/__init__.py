"""Payment processors behind one protocol; ``get_gateway(name, settings)`` picks one."""
