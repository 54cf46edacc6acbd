"""URLs of the "Connect Omnisend" flow; include them under any prefix::

    path("omnisend/", include("django_omnisend.urls"))

The callback's full URL (e.g. ``https://example.com/omnisend/callback/``) is what you register
with Omnisend and put into ``OMNISEND["REDIRECT_URI"]``.
"""

from django.urls import path

from . import views

app_name = "django_omnisend"

urlpatterns = [
    path("connect/", views.connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path("confirm/<int:pk>/", views.confirm, name="confirm"),
    path("disconnect/", views.disconnect, name="disconnect"),
]
