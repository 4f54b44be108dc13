import logging
import platform
import socket

import django
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

log = logging.getLogger(__name__)


def index(request):
    return render(request, "hello/index.html", {"name": "world", "visits": 1234567})


def hello(request, name):
    log.info("hello view: name=%s", name)
    return render(request, "hello/index.html", {"name": name, "visits": 1234567})


def info(request):
    # a query through the ORM's connection: the sqlite3 backend (imported by name) and the _sqlite3 extension
    with connection.cursor() as cursor:
        cursor.execute("select sqlite_version()")
        (sqlite,) = cursor.fetchone()
    return JsonResponse({
        "framework": "django",
        "django": django.get_version(),
        "python": platform.python_version(),
        "sqlite": sqlite,
        "host": socket.gethostname(),
        "time_zone": timezone.get_current_timezone_name(),
        "now": timezone.localtime().isoformat(),
        "hello_url": reverse("hello", args=["you"]),
    })
