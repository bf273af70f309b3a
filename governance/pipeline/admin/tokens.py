"""API tokens in the admin (explore.admin_ingest.ApiTokenAdmin): issuing shows the token
once and stores its digest; revoking is an action."""

from django.contrib import admin

from explore.admin_ingest import ApiTokenAdmin
from governance.pipeline.models import ApiToken

admin.site.register(ApiToken, ApiTokenAdmin)
