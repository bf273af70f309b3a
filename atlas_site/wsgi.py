import os

from django.core.wsgi import get_wsgi_application

# A WSGI server is a deployment: production settings unless told otherwise (bin/run uses
# manage.py with the local ones), so the development keys are never picked up by default.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas_site.settings.production")
application = get_wsgi_application()
