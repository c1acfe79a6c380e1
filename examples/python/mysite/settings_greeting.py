"""The same project with another greeting, selected with
`--env DJANGO_SETTINGS_MODULE=mysite.settings_greeting`."""

from mysite.settings import *  # noqa: F401,F403

GREETING = "Bonjour from Django"
