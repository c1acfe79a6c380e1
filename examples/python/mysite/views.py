from django.conf import settings
from django.http import JsonResponse


def index(request):
    return JsonResponse(
        {
            "greeting": getattr(settings, "GREETING", "Hello from Django"),
            "settings": settings.SETTINGS_MODULE,
            "path": request.path,
            "method": request.method,
            "query": request.GET.dict(),
        }
    )
