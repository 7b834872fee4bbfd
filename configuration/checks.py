"""Startup checks: defaults, files and COURTSIDE_* variables parse and satisfy the schemas; the secret keys work.

No database here (checks run before migrations): entries are validated when
they are saved, and config.validate() reports the full view at runtime.
"""

from django.core.checks import Error, register

from configuration import layers, sealing, validation


@register("configuration")
def check_configuration(app_configs=None, **kwargs):
    errors = []
    try:
        files = layers.load_files(layers.config_dir(), layers.current_environment())
    except (OSError, ValueError) as exc:
        errors.append(Error(str(exc), hint="Fix the file; the previous values stay live until then.",
                            id="configuration.E001"))
        files = {}
    tree = layers.deep_merge(layers.deep_merge(layers.load_defaults(), files), layers.load_environment())
    for message in validation.validate_tree(tree, layers.load_code_schemas()):
        errors.append(Error(message, hint="Defaults, config/ files or a COURTSIDE_* variable break a schema.",
                            id="configuration.E002"))
    problem = sealing.check_keys()
    if problem:
        errors.append(Error(problem, hint="Set COURTSIDE_SECRET_KEYS to Fernet keys, newest first.",
                            id="configuration.E003"))
    return errors
