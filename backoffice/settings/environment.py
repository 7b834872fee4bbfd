"""The one environ.Env() of the project; every settings module reads the environment through it."""

import environ

env = environ.Env()
