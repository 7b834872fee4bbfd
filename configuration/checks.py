"""Startup checks: defaults, files and environment variables parse and satisfy the schemas; the secret keys work.

No database here (checks run before migrations): entries are validated when
they are saved, and config.validate() reports the full view at runtime. The
layers checked are the stack's own (configuration/stack.py) that need no
database: defaults, every file layer, every environment layer.
"""

from django.core.checks import Error, register

from configuration import layers, sealing, stack, validation


@register("configuration")
def check_configuration(app_configs=None, **kwargs):
    errors = [Error(problem, hint="Fix COURTSIDE_CONFIG_FILES / COURTSIDE_CONFIG_ENV_PREFIXES: path:priority, "
                                  "comma-separated.", id="configuration.E004")
              for problem in stack.configured()[1]]
    tree: dict = {}
    for layer in stack.all_layers():
        if isinstance(layer, stack.FilesLayer):
            try:
                layer_tree = layer.read()
            except (OSError, ValueError) as exc:
                errors.append(Error(str(exc), hint="Fix the file; the previous values stay live until then.",
                                    id="configuration.E001"))
                continue
        elif isinstance(layer, stack.DefaultsLayer):
            layer_tree = layers.load_defaults()
        elif isinstance(layer, stack.EnvironmentLayer):
            layer_tree = layers.load_environment(prefix=layer.prefix)
        else:
            continue  # the database's layers are validated when they are written
        tree = layers.deep_merge(tree, layer_tree)
    for message in validation.validate_tree(tree, layers.load_code_schemas()):
        errors.append(Error(message, hint="Defaults, config/ files or a COURTSIDE_* variable break a schema.",
                            id="configuration.E002"))
    problem = sealing.check_keys()
    if problem:
        errors.append(Error(problem, hint="Set COURTSIDE_SECRET_KEYS to Fernet keys, newest first.",
                            id="configuration.E003"))
    return errors
