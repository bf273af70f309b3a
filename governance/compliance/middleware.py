from governance.compliance.audit_context import bind_request


class AuditContextMiddleware:
    """Makes the current request's client address and agent available to audit entries."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with bind_request(request):
            return self.get_response(request)
