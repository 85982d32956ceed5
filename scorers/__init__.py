"""Built-in scorer plugins, one module per family; each module registers its scorers on import."""
