"""A minimal Django project: one view, no database, no admin, no static
files. Served as `runicorn --chdir examples/python mysite.wsgi:application`
(DJANGO_SETTINGS_MODULE defaults to this module; `--env
DJANGO_SETTINGS_MODULE=...` picks another)."""

SECRET_KEY = "runicorn-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

# No database, no sessions, no auth: nothing needs a file or a server.
DATABASES = {}
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
TEMPLATES = []

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
