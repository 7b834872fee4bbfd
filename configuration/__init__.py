"""Layered configuration: `from configuration import config`."""


def __getattr__(name):
    # Lazy, so importing the package (as INSTALLED_APPS does) loads no Django machinery early.
    if name == "config":
        from configuration.conf import config

        return config
    raise AttributeError(name)
