"""Root fields, one module per aggregate; ``schema.py`` merges their Query and Mutation classes."""
