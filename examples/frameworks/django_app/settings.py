"""The least Django needs to serve views and a Channels consumer: no database, no templates."""

SECRET_KEY = "only-for-the-example"  # set your own, from the environment, in production
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ROOT_URLCONF = "examples.frameworks.django_app.urls"
INSTALLED_APPS = ["channels"]
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets the process time zone (TZ) to this, gateway's log times included
